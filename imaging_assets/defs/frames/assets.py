"""The frames domain in Dagster: `imaging_datasets` (registers datasets from the ingest manifest),
`frames` (one partition per dataset: its frames in `frames.lance`, or its file stored as is), an
asset check re-hashing a sample of frames after each ingest, a sensor for new manifest rows and
the jobs. The work is in imaging_assets.frames (no Dagster there).
"""

import os
from typing import Any

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    Config,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)
from pydantic import Field

from imaging_assets.core.errors import InputError, MissingObjectError
from imaging_assets.core.lance_tables import RemovalRefusedError
from imaging_assets.defs.common.catalog import OWNERS, tags
from imaging_assets.defs.common.lake_writes import RerunGuardConfig, run_alive_in, write_metadata
from imaging_assets.defs.common.stores import LakeResource, SourceResource
from imaging_assets.defs.frames.partitions import DATASETS_PARTITIONS_NAME, datasets_partitions
from imaging_assets.frames import verify
from imaging_assets.frames.lake import (
    ingest_dataset,
    register_manifest,
)
from imaging_assets.frames.schema import DATASETS, dataset_files_schema, frames_schema

GROUP = "frames"
DEFAULT_MANIFEST = os.environ.get("IMAGING_ASSETS_FRAMES_MANIFEST", "frames/manifest.csv")
CHECK_SAMPLE_FRAMES = 8


class ImagingDatasetsConfig(Config):
    manifest: str = Field(
        default=DEFAULT_MANIFEST,
        description=(
            "The ingest manifest (CSV or Parquet): a key under the source root, an absolute path "
            "or an s3:// URI ($IMAGING_ASSETS_FRAMES_MANIFEST)"
        ),
    )


@asset(
    group_name=GROUP,
    kinds={"lance"},
    owners=OWNERS,
    tags=tags("frames", "lance", modality="multidimensional"),
    code_version="1",
    description=(
        "Every dataset of the ingest manifest, validated (ids, parents, no id registered twice "
        "with different content) and registered in datasets.lance; adds the dynamic partitions "
        "`datasets`. A manifest with any bad row registers nothing."
    ),
)
def imaging_datasets(
    context: AssetExecutionContext,
    config: ImagingDatasetsConfig,
    source: SourceResource,
    lake: LakeResource,
) -> MaterializeResult:
    target = lake.handle()
    try:
        registration = register_manifest(
            target, source.store(), config.manifest, context.run.run_id
        )
    except (InputError, MissingObjectError) as error:
        raise Failure(description=f"manifest refused, nothing registered: {error}") from error
    ids = registration.manifest.ids()
    known = set(context.instance.get_dynamic_partitions(DATASETS_PARTITIONS_NAME))
    missing = [i for i in ids if i not in known]
    if missing:
        context.instance.add_dynamic_partitions(DATASETS_PARTITIONS_NAME, missing)
    context.log.info(
        f"{len(ids)} datasets in the manifest, {registration.inserted} newly registered, "
        f"{len(missing)} partitions added"
    )
    return MaterializeResult(
        metadata={
            "dataset_uri": MetadataValue.path(target.uri(DATASETS)),
            "manifest": config.manifest,
            "manifest_sha256": registration.manifest_sha256,
            "datasets_in_manifest": len(ids),
            "newly_registered": registration.inserted,
            "partitions_added": len(missing),
            "new_ids": MetadataValue.json([e.dataset_id for e in registration.manifest.new][:50]),
        }
    )


class FramesConfig(RerunGuardConfig):
    """A re-ingest that would remove frames (the file now yields fewer) is refused by default."""


@asset(
    group_name=GROUP,
    partitions_def=datasets_partitions,
    deps=[imaging_datasets],
    kinds={"lance"},
    owners=OWNERS,
    tags=tags("frames", "lance", modality="multidimensional"),
    code_version="1",
    check_specs=[AssetCheckSpec("sampled_frames_rehash", asset="frames")],
    description=(
        "One dataset (partition = dataset id): upload type `frames` is split into 2-D frames "
        "(frames.lance: c, z, t, p, channel, zstd pixels, sha256, per-frame metadata; the "
        "dataset's frames replaced in one commit); upload type `file` is stored as is with size "
        "and sha256 (dataset_files.lance). The summary goes on the dataset's row."
    ),
)
def frames(
    context: AssetExecutionContext,
    config: FramesConfig,
    source: SourceResource,
    lake: LakeResource,
) -> MaterializeResult:
    target = lake.handle()
    dataset_id = context.partition_key
    run_id = context.run.run_id
    try:
        result = ingest_dataset(
            target,
            source.store(),
            dataset_id,
            run_id,
            run_alive=run_alive_in(context.instance),
            max_removed_fraction=config.max_removed_fraction,
        )
    except (InputError, MissingObjectError, KeyError, RemovalRefusedError) as error:
        raise Failure(
            description=f"{dataset_id}: {error}; the dataset's frames are unchanged"
        ) from error
    metadata: dict[str, Any] = {
        "upload_type": result.upload_type,
        "seconds": round(result.seconds, 2),
        "summary": MetadataValue.json(result.summary),
    }
    checks = []
    if result.upload_type == "frames":
        metadata.update(
            {
                **write_metadata(result.written, frames_schema(), result.seconds, "frames"),
                "frames": result.frames,
            }
        )
        keys = verify.sample_frame_keys(
            target.root, dataset_id, target.storage_options, n=CHECK_SAMPLE_FRAMES
        )
        report = verify.verify_frames(target.root, target.storage_options, frame_keys=keys)
    else:
        metadata.update(
            {
                **write_metadata(result.written, dataset_files_schema(), result.seconds),
                "stored_uri": MetadataValue.path(target.resolve(result.stored.stored_uri)),
            }
        )
        report = verify.verify_files(
            target.root, target.store, target.storage_options, [dataset_id]
        )
    checks.append(
        AssetCheckResult(
            check_name="sampled_frames_rehash",
            passed=report.ok,
            severity=AssetCheckSeverity.ERROR,
            metadata={
                "frames_checked": report.frames_checked,
                "files_checked": report.files_checked,
                "mismatches": MetadataValue.json([m.describe() for m in report.mismatches]),
            },
        )
    )
    context.log.info(f"{dataset_id}: {result.upload_type} ingested in {result.seconds:.2f} s")
    return MaterializeResult(metadata=metadata, check_results=checks)


FRAMES_ASSETS = [imaging_datasets, frames]
