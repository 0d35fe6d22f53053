"""Shared fixtures: paths of the real fixtures and the project root."""

from __future__ import annotations

from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
REAL_FIXTURES = PROJECT_ROOT.parent / "shared" / "fixtures" / "real"


@pytest.fixture(scope="session")
def real_fixtures() -> Path:
    """../shared/fixtures/real, read-only real Cell Painting files (see SOURCES.md there)."""
    if not REAL_FIXTURES.is_dir():
        pytest.fail(f"real fixtures not found at {REAL_FIXTURES}; clone with ../shared beside it")
    return REAL_FIXTURES
