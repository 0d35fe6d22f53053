"""A dependency-free progress bar for CLI tools (stderr, one line, throughput included)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressBar:
    """Call with (done, total); redraws at most ten times a second and always at the end."""

    def __init__(self, label: str, stream: TextIO | None = None, width: int = 30) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.width = width
        self.started = time.perf_counter()
        self._last_draw = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.perf_counter()
        if done < total and now - self._last_draw < 0.1:
            return
        self._last_draw = now
        fraction = done / total if total else 1.0
        filled = int(fraction * self.width)
        elapsed = now - self.started
        rate = done / elapsed if elapsed > 0 else 0.0
        bar = "#" * filled + "-" * (self.width - filled)
        end = "\n" if done >= total else ""
        self.stream.write(
            f"\r{self.label} [{bar}] {done}/{total} ({rate:.1f}/s, {elapsed:.1f} s){end}"
        )
        self.stream.flush()
