"""What every benchmark prints and needs: the machine it ran on, and the real fixtures' folder.

Figures are only comparable with the machine beside them, and a benchmark that needs the real
Cell Painting TIFFs must say where they come from instead of failing somewhere inside.
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

REAL_FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "real"


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo (what platform.processor() leaves empty)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def load_average(separator: str = ", ") -> str:
    """The 1, 5 and 15 minute load averages (figures taken under load are not comparable)."""
    try:
        return separator.join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def describe_machine() -> str:
    """One line: CPU, usable cores, RAM, load average, Python: the context of every figure."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    load = load_average()
    return (
        f"machine: {platform.machine()}, {cpu_model()}, {cores} cores, {memory:.0f} GiB RAM, "
        f"load avg {load}; Python {platform.python_version()}"
    )


def require_real_fixtures(*parts: str) -> Path:
    """The real fixtures' folder (or a file under it), or exit with a message naming it."""
    path = REAL_FIXTURES.joinpath(*parts)
    if not path.exists():
        sys.exit(
            f"{Path(sys.argv[0]).name}: needs the real Cell Painting fixtures at {path} "
            "(../shared/fixtures/real beside this checkout; SOURCES.md there says where each file "
            "comes from). Run it from a checkout with ../shared beside it."
        )
    return path
