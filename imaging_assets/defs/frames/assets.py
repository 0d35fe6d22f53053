"""The frames domain in Dagster: `imaging_datasets` (registers datasets from the ingest manifest),
`frames` (one partition per dataset: its frames in `frames.lance`, or its file stored as is), an
asset check re-hashing a sample of frames after each ingest, a sensor for new manifest rows and
the jobs. The work is in imaging_assets.frames (no Dagster there).
"""

import os
from collections.abc import Sequence
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
from imaging_assets.core.lance_tables import RemovalRefusedError, open_dataset
from imaging_assets.defs.common.catalog import OWNERS, table_catalog, tags
from imaging_assets.defs.common.lake_writes import RerunGuardConfig, run_alive_in, write_metadata
from imaging_assets.defs.common.stores import LakeResource, SourceResource
from imaging_assets.defs.frames.partitions import DATASETS_PARTITIONS_NAME, datasets_partitions
from imaging_assets.frames import verify
from imaging_assets.frames.lake import (
    ingest_dataset,
    register_manifest,
)
from imaging_assets.frames.schema import (
    DATASETS,
    dataset_files_schema,
    datasets_schema,
    frames_schema,
)

GROUP = "frames"
DEFAULT_MANIFEST = os.environ.get("IMAGING_ASSETS_FRAMES_MANIFEST", "frames/manifest.csv")
CHECK_SAMPLE_FRAMES = 8


class ImagingDatasetsConfig(Config):
    manifest: str = Field(
        default=DEFAULT_MANIFEST,
        description=(
            "The ingest manifest (CSV or Parquet; this project's columns or imagingDB's "
            "files_for_upload.csv): a key under the source root, an absolute path or an s3:// URI "
            "($IMAGING_ASSETS_FRAMES_MANIFEST)"
        ),
    )
    strict: bool = Field(
        default=False,
        description=(
            "Register nothing when any row is bad (and fail naming every bad row). By default "
            "the good rows register and the bad ones are reported in the metadata and the log"
        ),
    )


MAX_LISTED_PROBLEMS = 200


def problems_metadata(problems: Sequence[InputError]) -> list[dict]:
    """The bad rows as the materialization lists them: row, column and the whole message."""
    return [
        {"row": p.row, "column": p.column, "problem": str(p)}
        for p in problems[:MAX_LISTED_PROBLEMS]
    ]


@asset(
    group_name=GROUP,
    kinds={"lance"},
    owners=OWNERS,
    tags=tags("frames", "lance", modality="multidimensional"),
    code_version="2",
    description=(
        "Every dataset of the ingest manifest (this project's columns or imagingDB's "
        "files_for_upload.csv), validated (ids, parents, files, no id registered twice with "
        "different content) and registered in datasets.lance; adds the dynamic partitions "
        "`datasets`. Every bad row is reported with its row number; the good rows register "
        "unless config `strict` is set, and the run fails when no row can register."
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
            target, source.store(), config.manifest, context.run.run_id, strict=config.strict
        )
    except (InputError, MissingObjectError) as error:
        problems = getattr(error, "problems", ())
        raise Failure(
            description=f"manifest refused, nothing registered: {error}",
            metadata={
                "bad_rows": MetadataValue.json(problems_metadata(problems)),
                "bad_row_count": len({p.row for p in problems}),
            },
        ) from error
    manifest = registration.manifest
    ids = manifest.ids()
    known = set(context.instance.get_dynamic_partitions(DATASETS_PARTITIONS_NAME))
    missing = [i for i in ids if i not in known]
    if missing:
        context.instance.add_dynamic_partitions(DATASETS_PARTITIONS_NAME, missing)
    context.log.info(
        f"{len(ids)} good datasets in the manifest ({manifest.dialect.name} format), "
        f"{registration.inserted} newly registered, {len(missing)} partitions added"
    )
    if manifest.problems:
        listed = "".join(f"\n  - {p}" for p in manifest.problems[:MAX_LISTED_PROBLEMS])
        context.log.warning(
            f"{len(manifest.bad_rows())} bad row(s) of {manifest.rows} not registered "
            f"(rows {', '.join(map(str, manifest.bad_rows()))}):{listed}"
        )
    registry = open_dataset(target.uri(DATASETS), target.storage_options)
    return MaterializeResult(
        metadata={
            # the registry as it now is: every registered dataset, one row each
            **table_catalog(datasets_schema(), registry.count_rows() if registry else 0),
            "dataset_uri": MetadataValue.path(target.uri(DATASETS)),
            "manifest": config.manifest,
            "manifest_sha256": registration.manifest_sha256,
            "manifest_format": manifest.dialect.name,
            "rows_in_manifest": manifest.rows,
            "datasets_in_manifest": len(ids),
            "newly_registered": registration.inserted,
            "partitions_added": len(missing),
            "new_ids": MetadataValue.json([e.dataset_id for e in manifest.new][:50]),
            "bad_row_count": len(manifest.bad_rows()),
            "bad_rows": MetadataValue.json(problems_metadata(manifest.problems)),
            "ignored_columns": MetadataValue.json(list(manifest.ignored_columns)),
        }
    )


class FramesConfig(RerunGuardConfig):
    """A re-ingest that would remove frames (the file now yields fewer) is refused by default."""

    measure_quality: bool = Field(
        default=True,
        description=(
            "Measure CellProfiler's image-quality features of every uint8/uint16 frame while it "
            "is ingested (columns `ImageQuality_FocusScore_Frame`, ...; the columns stay null "
            "when off)"
        ),
    )


@asset(
    group_name=GROUP,
    partitions_def=datasets_partitions,
    deps=[imaging_datasets],
    kinds={"lance"},
    owners=OWNERS,
    tags=tags("frames", "lance", modality="multidimensional"),
    code_version="1",
    check_specs=[
        AssetCheckSpec(
            "sampled_frames_rehash",
            asset="frames",
            description=(
                "A sample of the dataset's frames (or its stored file), read back from the lake, "
                "still has the sha256 recorded at ingest."
            ),
        )
    ],
    description=(
        "One dataset (partition = dataset id): upload type `frames` is split into 2-D frames "
        "(frames.lance: c, z, t, p, channel, zstd pixels, sha256, per-frame metadata, "
        "CellProfiler's image-quality features (`ImageQuality_FocusScore_Frame`, ...); the "
        "dataset's frames replaced in one commit, none when unchanged); upload type `file` is "
        "stored as is with size and sha256 (dataset_files.lance). A source that cannot be used "
        "is recorded in dataset_failures.lance. The summary goes on the dataset's row."
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
            measure_quality=config.measure_quality,
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
