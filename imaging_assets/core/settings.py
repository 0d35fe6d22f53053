"""Default locations: the embedded demo (sample gallery, local lake), overridable by environment.

IMAGING_ASSETS_HOME (default ".demo") holds gallery/, lake/ and dagster_home/; the roots can also be
set one by one: IMAGING_ASSETS_SOURCE_ROOT, IMAGING_ASSETS_METADATA_ROOT, IMAGING_ASSETS_LAKE.
"""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "IMAGING_ASSETS_HOME"
DEFAULT_HOME = ".demo"


def home() -> Path:
    return Path(os.environ.get(HOME_ENV, DEFAULT_HOME))


def default_source_root() -> str:
    return str(home() / "gallery" / "cpg0016-jump")


def default_metadata_root() -> str:
    return str(home() / "gallery" / "metadata")


def default_lake_root() -> str:
    return str(home() / "lake")
