"""Errors for bad input that say exactly where the problem is.

A user facing 2,500 plates needs the file, the column (or key) and the row, and what was
expected, not a pandas traceback.
"""

from __future__ import annotations


class InputError(ValueError):
    """Input that does not match what the pipeline expects.

    The message always names the file; column, row and expected are added when known.
    """

    def __init__(
        self,
        file: str,
        problem: str,
        *,
        column: str | None = None,
        row: int | None = None,
        expected: str | None = None,
        got: object = None,
    ) -> None:
        self.file = file
        self.column = column
        self.row = row
        self.expected = expected
        self.got = got
        where = [file]
        if column is not None:
            where.append(f"column {column!r}")
        if row is not None:
            where.append(f"row {row}")
        message = f"{', '.join(where)}: {problem}"
        if expected is not None:
            message += f" (expected {expected}"
            message += f", got {got!r})" if got is not None else ")"
        super().__init__(message)


class MissingObjectError(FileNotFoundError):
    """A raw object or input file that the source store does not have."""

    def __init__(self, uri: str, detail: str = "") -> None:
        self.uri = uri
        super().__init__(f"{uri}: object not found" + (f" ({detail})" if detail else ""))
