"""Deterministic keys that tie every derived row back to its plate, well, site and cell.

Partition key: "<source>__<plate>"; site_key: "<source>__<plate>__<well>__<site>";
cell_id: "<site_key>__<object number>". Re-runs produce the same keys.
"""

from __future__ import annotations

import unicodedata

SEPARATOR = "__"
_FORBIDDEN_IN_PARTS = ("/", ",", SEPARATOR)
KEY_PART_RULE = (
    "a non-empty key part without '__', '/', ',' or control characters, "
    "not starting or ending with '_'"
)


def key_part_problem(value: object) -> str | None:
    """Why a value cannot be a key part (source, plate, well, site), or None when it can.

    The rule, the same for every part: not empty; no separator `__` (a part holding it would
    make two different sites one key, and one of them would be lost); no `/` or `,` (keys are
    used in paths and in Dagster's partition selections); no control character (a newline, tab,
    NUL or any other Unicode "Cc" character: invisible in logs and UIs, often a parsing
    accident); and no `_` at either end, since "P_" + "__" + "A01" reads as "P" + "__" + "_A01".
    """
    text = "" if value is None else str(value)
    if not text:
        return "is empty"
    for bad in _FORBIDDEN_IN_PARTS:
        if bad in text:
            return f"contains {bad!r}"
    control = next((c for c in text if unicodedata.category(c) == "Cc"), None)
    if control is not None:
        return f"contains the control character {control!r}"
    if text.startswith("_") or text.endswith("_"):
        return "starts or ends with '_'"
    return None


def check_key_part(name: str, value: object) -> str:
    """The value as text when it may be a key part; ValueError naming the part and why if not."""
    problem = key_part_problem(value)
    if problem is not None:
        raise ValueError(f"{name} {value!r} {problem}; a key part must be {KEY_PART_RULE}")
    return str(value)


def plate_partition_key(source: str, plate: str) -> str:
    """The dynamic partition key of one plate."""
    return check_key_part("source", source) + SEPARATOR + check_key_part("plate", plate)


def parse_plate_partition_key(key: str) -> tuple[str, str]:
    """(source, plate) of a partition key; raises ValueError naming the key when malformed."""
    parts = key.split(SEPARATOR)
    if len(parts) != 2 or not all(parts):
        raise ValueError(f"partition key {key!r} is not of the form '<source>__<plate>'")
    return parts[0], parts[1]


def site_key(source: str, plate: str, well: str, site: str | int) -> str:
    """The key of one imaged site (field of view)."""
    return SEPARATOR.join(
        (
            check_key_part("source", source),
            check_key_part("plate", plate),
            check_key_part("well", well),
            check_key_part("site", str(site)),
        )
    )


def cell_id(site: str, object_number: int) -> str:
    """The key of one segmented cell: its site_key and CellProfiler object number."""
    return f"{site}{SEPARATOR}{int(object_number)}"
