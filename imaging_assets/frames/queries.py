"""Filters for the datasets and frames tables, written so Lance pushes them down to its indexes.

Datasets: project (BITMAP), acquisition time range (BTREE), microscope (BITMAP), description
substring (`contains`, NGRAM), parent (BTREE). Frames: dataset_id (BTREE) and c, z, t, p (BITMAP).
Index selectors: an int, a list of ints, a range, or (for the CLI) text such as "2", "0,2", "4-7".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime

from imaging_assets.core.lance_tables import quote

Selector = int | str | Iterable[int | str] | range | None


def _timestamp(value: date | datetime | str, end: bool) -> str:
    if isinstance(value, str):
        text = value.strip()
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError as error:
            raise ValueError(
                f"{value!r} is not a date or time (expected YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS)"
            ) from error
        if len(text) == 10 and end:  # a bare end date includes that whole day
            parsed = parsed.replace(hour=23, minute=59, second=59, microsecond=999999)
        value = parsed
    elif isinstance(value, date) and not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day, *((23, 59, 59, 999999) if end else ()))
    return f"TIMESTAMP '{value.replace(tzinfo=None).isoformat(sep=' ')}'"


def _in(column: str, values: Sequence[str]) -> str:
    if len(values) == 1:
        return f"{column} = {quote(values[0])}"
    return f"{column} IN ({', '.join(quote(v) for v in values)})"


def _texts(value: str | Iterable[str]) -> list[str]:
    return [value] if isinstance(value, str) else [str(v) for v in value]


def datasets_filter(
    *,
    project: str | Iterable[str] | None = None,
    start: date | datetime | str | None = None,
    end: date | datetime | str | None = None,
    microscope: str | Iterable[str] | None = None,
    description: str | None = None,
    dataset_id: str | Iterable[str] | None = None,
    parent_id: str | Iterable[str] | None = None,
    frames: bool | None = None,
) -> str | None:
    """A Lance SQL filter over `datasets` (None: every dataset). `end` is inclusive."""
    parts = []
    if dataset_id is not None:
        parts.append(_in("dataset_id", _texts(dataset_id)))
    if project is not None:
        parts.append(_in("project", _texts(project)))
    if start is not None:
        parts.append(f"acquired_at >= {_timestamp(start, end=False)}")
    if end is not None:
        parts.append(f"acquired_at <= {_timestamp(end, end=True)}")
    if microscope is not None:
        parts.append(_in("microscope", _texts(microscope)))
    if description:
        parts.append(f"contains(description, {quote(description)})")
    if parent_id is not None:
        parts.append(_in("parent_id", _texts(parent_id)))
    if frames is not None:
        parts.append(f"upload_type = {quote('frames' if frames else 'file')}")
    return " AND ".join(parts) or None


def parse_selector(text: str | None) -> list[int | str] | None:
    """CLI text to a selector: "2" -> [2], "0,2" -> [0, 2], "4-7" -> [4, 5, 6, 7]; names stay."""
    if text is None or not str(text).strip():
        return None
    values: list[int | str] = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        low, sep, high = part.partition("-")
        if sep and low.strip().isdigit() and high.strip().isdigit():
            a, b = int(low), int(high)
            if b < a:
                raise ValueError(f"range {part!r} runs backwards (expected low-high)")
            values.extend(range(a, b + 1))
        elif part.lstrip("-").isdigit():
            values.append(int(part))
        else:
            values.append(part)
    return values


def indices(
    selector: Selector, names: Sequence[str | None] = (), axis: str = "c"
) -> list[int] | None:
    """Sorted distinct ints of a selector (channel names resolved with `names`); None: all."""
    if selector is None:
        return None
    items = [selector] if isinstance(selector, int | str) else list(selector)
    out: set[int] = set()
    for item in items:
        if isinstance(item, str) and not item.lstrip("-").isdigit():
            if axis != "c" or item not in names:
                known = ", ".join(str(n) for n in names if n) or "none"
                raise ValueError(
                    f"{axis}={item!r}: not an index"
                    + (f" nor a channel name ({known})" if axis == "c" else "")
                )
            out.add(list(names).index(item))
        else:
            value = int(item)
            if value < 0:
                raise ValueError(f"{axis}={value}: indices start at 0")
            out.add(value)
    return sorted(out)


def _int_condition(column: str, values: list[int]) -> str:
    if len(values) == 1:
        return f"{column} = {values[0]}"
    if values == list(range(values[0], values[-1] + 1)):
        return f"{column} BETWEEN {values[0]} AND {values[-1]}"
    return f"{column} IN ({', '.join(str(v) for v in values)})"


def frames_filter(
    dataset_id: str,
    c: list[int] | None = None,
    z: list[int] | None = None,
    t: list[int] | None = None,
    p: list[int] | None = None,
) -> str:
    """The frames of one dataset with the given indices (each a sorted list, or None: all)."""
    parts = [f"dataset_id = {quote(dataset_id)}"]
    for column, values in (("c", c), ("z", z), ("t", t), ("p", p)):
        if values is not None:
            if not values:
                parts.append("false")
            else:
                parts.append(_int_condition(column, values))
    return " AND ".join(parts)
