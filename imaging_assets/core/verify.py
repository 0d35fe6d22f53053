"""Integrity reports shared by every domain's verify: what was re-hashed, what differed, and which
requested partitions (plates, specimens, datasets) the lake does not know.

A verify re-reads bytes (the raw objects where they were read, or the bytes stored in the lake)
and compares them with the digests recorded when the rows were written. The CLI prints the
mismatches and exits 0 (all equal), 1 (something differs) or 2 (a requested key is unknown).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Mismatch:
    partition: str  # plate, specimen or dataset
    kind: str  # what was checked: "raw object", "stored pixels", "frame", "file", ...
    where: str  # a URI, a row key, or "c=0 z=3 t=1 p=0"
    expected: str | None
    actual: str | None  # None: the bytes could not be read at all
    detail: str = ""

    def describe(self) -> str:
        what = f"{self.partition} {self.kind} {self.where}"
        if self.actual is None:
            return f"{what}: unreadable ({self.detail})"
        extra = f" ({self.detail})" if self.detail else ""
        return f"{what}: {self.actual} != recorded {self.expected}{extra}"


@dataclass
class VerifyReport:
    checked: Counter = field(default_factory=Counter)  # what -> how many were re-hashed
    mismatches: list[Mismatch] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)  # requested keys the lake does not hold

    @property
    def ok(self) -> bool:
        return not self.mismatches and not self.unknown

    def merge(self, other: VerifyReport) -> VerifyReport:
        self.checked.update(other.checked)
        self.mismatches.extend(other.mismatches)
        self.unknown.extend(other.unknown)
        return self

    def summary(self) -> str:
        counts = ", ".join(f"{n:,} {what}" for what, n in sorted(self.checked.items())) or "nothing"
        return f"{counts} checked, {len(self.mismatches)} differ"

    def exit_code(self) -> int:
        return 2 if self.unknown else 1 if self.mismatches else 0


def digests(data: bytes) -> tuple[str, str]:
    """(md5, sha256) of a byte string."""
    return hashlib.md5(data).hexdigest(), hashlib.sha256(data).hexdigest()


def spread_sample(keys: list[str], n: int | None) -> list[str]:
    """Every key (n None), or n keys spread evenly over the sorted keys: deterministic."""
    keys = sorted(keys)
    if n is None or len(keys) <= n:
        return keys
    step = len(keys) / n
    return [keys[int(i * step)] for i in range(n)]
