"""A dependency-free progress bar for CLI tools (stderr, throughput included).

On a terminal it redraws one line in place; when the output is a log or a pipe (no terminal) it
prints only the final line, so logs stay readable. The total may be unknown (None): then it counts.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressBar:
    """Call with (done, total); redraws at most ten times a second, and always once at the end
    (call `finish()` when the total was unknown)."""

    def __init__(self, label: str, stream: TextIO | None = None, width: int = 30) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.width = width
        self.started = time.perf_counter()
        self.interactive = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last_draw = 0.0
        self._done = 0
        self._finished = False

    def __call__(self, done: int, total: int | None) -> None:
        self._done = done
        final = total is not None and done >= total
        now = time.perf_counter()
        if not final and (not self.interactive or now - self._last_draw < 0.1):
            return
        self._last_draw = now
        self._draw(done, total, final)

    def finish(self) -> None:
        """The final line for a count whose total was not known in advance."""
        if not self._finished:
            self._draw(self._done, None, True)

    def _draw(self, done: int, total: int | None, final: bool) -> None:
        elapsed = time.perf_counter() - self.started
        rate = done / elapsed if elapsed > 0 else 0.0
        if total is None:
            text = f"{self.label}: {done:,}"
        else:
            filled = int((done / total if total else 1.0) * self.width)
            bar = "#" * filled + "-" * (self.width - filled)
            text = f"{self.label} [{bar}] {done:,}/{total:,}"
        text += f" ({rate:,.1f}/s, {elapsed:.1f} s)"
        if final:
            self._finished = True
            self.stream.write(("\r" if self.interactive else "") + text + "\n")
        else:
            self.stream.write("\r" + text)
        self.stream.flush()
