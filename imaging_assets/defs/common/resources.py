"""Resources: the source, metadata and lake stores, and the Parquet IO manager."""

from imaging_assets.core.settings import (
    default_lake_root,
    default_metadata_root,
    default_source_root,
)
from imaging_assets.defs.common.io_manager import ParquetLakeIOManager
from imaging_assets.defs.common.stores import (
    LakeResource,
    MetadataResource,
    SourceResource,
    lake_from_env,
    metadata_from_env,
    source_from_env,
)


def default_resources() -> dict:
    """Resources as configured by the environment, defaulting to the embedded demo."""
    lake = lake_from_env(default_lake_root())
    return {
        "source": source_from_env(default_source_root()),
        "jump_metadata_source": metadata_from_env(default_metadata_root()),
        "lake": lake,
        "io_manager": ParquetLakeIOManager(lake=lake),
    }


__all__ = [
    "LakeResource",
    "MetadataResource",
    "ParquetLakeIOManager",
    "SourceResource",
    "default_resources",
]
