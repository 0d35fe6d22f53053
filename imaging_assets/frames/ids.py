"""Dataset ids `<PROJECT>-YYYY-MM-DD-HH-MM-SS-<NNNN>`: project, acquisition time, 4-digit serial.

A malformed id is an InputError that names the id and the rule it breaks. The id is also the
partition key of the `frames` asset, so it never holds `/` or `,`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from imaging_assets.core.errors import InputError

PROJECT_RULE = "a project of letters, digits and '_' (starting with a letter, at most 40)"
_PROJECT = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,39}")
_SHAPE = re.compile(
    r"^(?P<project>.+)-(?P<time>\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2})-(?P<serial>.+)$"
)
ID_FORMAT = "<PROJECT>-YYYY-MM-DD-HH-MM-SS-<NNNN>"


@dataclass(frozen=True)
class DatasetId:
    """A parsed dataset id. `acquired_at` is naive (the acquisition's local time, as written)."""

    text: str
    project: str
    acquired_at: datetime
    serial: int

    def __str__(self) -> str:
        return self.text


def parse_dataset_id(
    value: object, *, file: str = "dataset id", column: str | None = None, row: int | None = None
) -> DatasetId:
    """The parsed id, or an InputError naming the id and the rule it breaks."""

    def fail(problem: str, expected: str) -> InputError:
        return InputError(file, problem, column=column, row=row, expected=expected, got=value)

    if not isinstance(value, str) or not value.strip():
        raise fail("the dataset id is empty", ID_FORMAT)
    text = value.strip()
    if text != value:
        raise fail(f"dataset id {value!r} has surrounding spaces", ID_FORMAT)
    match = _SHAPE.match(text)
    if match is None:
        raise fail(
            f"dataset id {text!r} does not have the form {ID_FORMAT}",
            f"{ID_FORMAT}, e.g. ISP-2021-03-09-15-30-00-0001",
        )
    project, stamp, serial = match.group("project", "time", "serial")
    if not _PROJECT.fullmatch(project):
        raise fail(f"dataset id {text!r}: project {project!r} is not valid", PROJECT_RULE)
    if not re.fullmatch(r"\d{4}", serial):
        raise fail(f"dataset id {text!r}: serial {serial!r} is not 4 digits", "NNNN, e.g. 0001")
    try:
        acquired_at = datetime.strptime(stamp, "%Y-%m-%d-%H-%M-%S")
    except ValueError as error:
        raise fail(
            f"dataset id {text!r}: {stamp!r} is not a valid date and time ({error})",
            "a real date YYYY-MM-DD and time HH-MM-SS",
        ) from error
    return DatasetId(text=text, project=project, acquired_at=acquired_at, serial=int(serial))


def is_dataset_id(value: object) -> bool:
    try:
        parse_dataset_id(value)
    except InputError:
        return False
    return True


def make_dataset_id(project: str, acquired_at: datetime, serial: int) -> str:
    """The id of (project, time, serial); validated by parsing it back."""
    text = f"{project}-{acquired_at:%Y-%m-%d-%H-%M-%S}-{serial:04d}"
    return parse_dataset_id(text).text
