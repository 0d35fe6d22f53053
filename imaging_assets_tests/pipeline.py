"""Helpers that run the real asset graph through `materialize` on a given source and lake."""

from __future__ import annotations

from dagster import DagsterInstance, materialize

from imaging_assets.defs.common.resources import (
    LakeResource,
    MetadataResource,
    ParquetLakeIOManager,
    SourceResource,
)
from imaging_assets.defs.jump.assets import ALL_ASSETS, PLATE_ASSETS, UNPARTITIONED_ASSETS
from imaging_assets.defs.jump.partitions import PLATES_PARTITIONS_NAME


def pipeline_resources(
    source_root: str,
    metadata_root: str,
    lake_root: str,
    endpoint_url: str | None = None,
    max_attempts: int = 8,
) -> dict:
    """The resources of the code location, pointed at explicit roots (local or S3)."""
    s3 = {"endpoint_url": endpoint_url, "max_attempts": max_attempts}
    lake = LakeResource(root=lake_root, **s3)
    return {
        "source": SourceResource(root=source_root, **s3),
        "jump_metadata_source": MetadataResource(root=metadata_root, **s3),
        "lake": lake,
        "io_manager": ParquetLakeIOManager(lake=lake),
    }


def materialize_metadata(instance: DagsterInstance, resources: dict):
    result = materialize(UNPARTITIONED_ASSETS, instance=instance, resources=resources)
    assert result.success
    return result


def plate_partitions(instance: DagsterInstance) -> list[str]:
    return sorted(instance.get_dynamic_partitions(PLATES_PARTITIONS_NAME))


def materialize_plate(
    instance: DagsterInstance,
    resources: dict,
    partition_key: str,
    selection=None,
    run_config: dict | None = None,
    raise_on_error: bool = True,
):
    """Every per-plate asset (or `selection`) for one plate; upstream tables load from the lake."""
    return materialize(
        ALL_ASSETS,
        selection=selection or PLATE_ASSETS,
        partition_key=partition_key,
        instance=instance,
        resources=resources,
        run_config=run_config,
        raise_on_error=raise_on_error,
    )
