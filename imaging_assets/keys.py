"""Deterministic keys that tie every derived row back to its plate, well, site and cell.

Partition key: "<source>__<plate>"; site_key: "<source>__<plate>__<well>__<site>";
cell_id: "<site_key>__<object number>". Re-runs produce the same keys.
"""

from __future__ import annotations

SEPARATOR = "__"
_FORBIDDEN_IN_PARTS = ("/", ",", SEPARATOR)


def _check_part(name: str, value: str) -> str:
    value = str(value)
    if not value:
        raise ValueError(f"{name} must not be empty")
    for bad in _FORBIDDEN_IN_PARTS:
        if bad in value:
            raise ValueError(f"{name} {value!r} must not contain {bad!r}")
    return value


def plate_partition_key(source: str, plate: str) -> str:
    """The dynamic partition key of one plate."""
    return _check_part("source", source) + SEPARATOR + _check_part("plate", plate)


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
            _check_part("source", source),
            _check_part("plate", plate),
            _check_part("well", well),
            _check_part("site", str(site)),
        )
    )


def cell_id(site: str, object_number: int) -> str:
    """The key of one segmented cell: its site_key and CellProfiler object number."""
    return f"{site}{SEPARATOR}{int(object_number)}"
