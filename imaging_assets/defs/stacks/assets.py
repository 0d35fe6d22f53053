"""Group `stacks`: specimen z-stacks and skeletons, one partition per specimen.

    specimen_manifest (registers partitions "specimens")
        ├─► zstack_slices (per specimen) ─► zstack_projections (per specimen)
        └─► skeletons (per specimen)

The logic lives in imaging_assets/stacks/ (no Dagster there); these assets wire it to the
collection and lake resources, hold the specimen's lease while writing, and report metadata.
"""

import base64
import datetime as dt
import hashlib
import time

import pyarrow as pa
from dagster import (
    AssetExecutionContext,
    Config,
    MaterializeResult,
    MetadataValue,
    asset,
)
from pydantic import Field

from imaging_assets.core import lance_tables
from imaging_assets.core.lease import partition_lease
from imaging_assets.defs.common.catalog import OWNERS, markdown_table, tags
from imaging_assets.defs.common.lake_writes import RerunGuardConfig, run_alive_in
from imaging_assets.defs.common.stores import LakeResource
from imaging_assets.defs.stacks.partitions import SPECIMENS_PARTITIONS_NAME, specimens_partitions
from imaging_assets.defs.stacks.resources import StackCollectionResource
from imaging_assets.processing import codecs
from imaging_assets.stacks import projection as proj
from imaging_assets.stacks import reading
from imaging_assets.stacks.commit import replace_specimen
from imaging_assets.stacks.layout import SKELETON, SLICE
from imaging_assets.stacks.manifest import (
    list_specimen,
    load_manifest,
    locate_specimen,
    save_manifest,
    scan,
)
from imaging_assets.stacks.projection import PROJECTIONS_SCHEMA
from imaging_assets.stacks.slices import PACKAGE_VERSION, SLICES_SCHEMA, SliceStream
from imaging_assets.stacks.swc import parse_swc, skeleton_schema, with_provenance

GROUP = "stacks"
EXPORT_IN_METADATA_MAX_KEYS = 20_000


def lake_root(lake: LakeResource) -> str:
    return lake.root.rstrip("/") if lake.is_s3 else lake.store().root


def _specimen_files(collection: StackCollectionResource, lake: LakeResource, specimen: str):
    """The specimen's folder and its files, listed now (one listing of its prefix)."""
    store, rules = collection.store(), collection.rules()
    folder = locate_specimen(store, rules, specimen, load_manifest(lake.store(), collection.name))
    files, _ = list_specimen(store, rules, folder)
    return folder, files


# -- assets ------------------------------------------------------------------------------------


class ManifestConfig(Config):
    refresh: bool = Field(
        default=False, description="List every specimen again (default: only unseen specimens)"
    )
    max_new_specimens: int = Field(
        default=0, ge=0, description="List at most this many unseen specimens now (0: all)"
    )


@asset(
    group_name=GROUP,
    kinds={"parquet"},
    owners=OWNERS,
    tags=tags("stacks", "parquet", modality="brightfield-zstack"),
    code_version="1",
    description=(
        "One row per file (specimen, split, key, size, ETag, last modified, role, z) and one per "
        "specimen (files, bytes, slices, skeleton key, split), from delimiter listings, "
        "incrementally. Registers each specimen as a partition of `specimens`."
    ),
)
def specimen_manifest(
    context: AssetExecutionContext,
    config: ManifestConfig,
    stack_collection: StackCollectionResource,
    lake: LakeResource,
) -> MaterializeResult:
    store = stack_collection.store()
    started = time.perf_counter()
    previous = load_manifest(lake.store(), stack_collection.name)
    result = scan(
        store,
        stack_collection.rules(),
        previous,
        refresh=config.refresh,
        max_new=config.max_new_specimens,
    )
    manifest = result.manifest
    export = manifest.export_json()
    export_uri = save_manifest(lake.store(), stack_collection.name, manifest, export)
    known = set(context.instance.get_dynamic_partitions(SPECIMENS_PARTITIONS_NAME))
    added = [name for name in manifest.specimen_names if name not in known]
    if added:
        context.instance.add_dynamic_partitions(SPECIMENS_PARTITIONS_NAME, added)
    seconds = time.perf_counter() - started
    context.log.info(
        f"{stack_collection.name}: {len(result.listed)} specimens listed in {result.requests} "
        f"requests ({len(result.new)} new, {len(result.gone)} gone), {len(added)} partitions added"
    )
    keys = manifest.files.num_rows
    return MaterializeResult(
        metadata={
            "specimens": manifest.specimens.num_rows,
            "files": keys,
            "bytes": int(sum(manifest.specimens["bytes"].to_pylist())),
            "specimens_listed": len(result.listed),
            "specimens_new": MetadataValue.json(result.new[:200]),
            "specimens_gone": MetadataValue.json(result.gone[:200]),
            "partitions_added": len(added),
            "listing_requests": result.requests,
            "seconds": round(seconds, 3),
            "sizes": MetadataValue.md(
                markdown_table(
                    manifest.size_table(), ["specimen", "split", "files", "slices", "bytes"]
                )
            ),
            "totals_by_split": MetadataValue.json(manifest.totals_by_split()),
            "export_uri": MetadataValue.path(export_uri),
            "export": MetadataValue.json(
                export
                if keys <= EXPORT_IN_METADATA_MAX_KEYS
                else {"truncated": True, "see": export_uri, **dict(list(export.items())[:5])}
            ),
        }
    )


class SlicesConfig(RerunGuardConfig):
    tolerate_failures: bool = Field(
        default=False,
        description="Write the good slices and record failed ones (default: fail the specimen)",
    )
    reference_uncompressed: bool = Field(
        default=False,
        description=(
            "Store uncompressed contiguous TIFF pages of a local collection as references to the "
            "original bytes instead of copies"
        ),
    )


def _guard(lease, existing: int, max_removed_fraction: float, specimen: str):
    def before_commit(preview: lance_tables.CommitResult) -> None:
        lease.assert_held()
        dropped = max(0, existing - preview.rows_written)
        if dropped > lance_tables.allowed_removals(existing, max_removed_fraction):
            raise lance_tables.RemovalRefusedError(
                f"{specimen}: this run would leave {preview.rows_written} rows where {existing} "
                "were; nothing was committed. Re-run with config max_removed_fraction: 1.0 to "
                "allow it."
            )

    return before_commit


def _existing_rows(uri: str, options, specimen: str) -> int:
    dataset = lance_tables.open_dataset(uri, options)
    return (
        0
        if dataset is None
        else dataset.count_rows(filter=f"specimen = {lance_tables.quote(specimen)}")
    )


@asset(
    group_name=GROUP,
    partitions_def=specimens_partitions,
    deps=[specimen_manifest],
    kinds={"lance"},
    owners=OWNERS,
    tags=tags("stacks", "lance", modality="brightfield-zstack"),
    code_version="1",
    description=(
        "One row per slice: specimen, z, shape, dtype, TIFF compression, raw URI, size, ETag, md5, "
        "sha256, and the pixels in a Lance blob v2 column (windows are read without reading the "
        "slice). One commit per specimen, under the specimen's lease."
    ),
)
def zstack_slices(
    context: AssetExecutionContext,
    config: SlicesConfig,
    stack_collection: StackCollectionResource,
    lake: LakeResource,
) -> MaterializeResult:
    specimen, run_id = context.partition_key, context.run_id
    folder, files = _specimen_files(stack_collection, lake, specimen)
    stream = SliceStream(
        store=stack_collection.store(),
        specimen=specimen,
        split=folder.split,
        slice_files=[f for f in files if f["role"] == SLICE],
        run_id=run_id,
        reference=config.reference_uncompressed,
        tolerate_failures=config.tolerate_failures,
    )
    uri, options = lake.dataset_uri(reading.SLICES), lake.storage_options()
    started = time.perf_counter()
    with partition_lease(
        lake.store(), reading.SLICES, specimen, run_id, run_alive=run_alive_in(context.instance)
    ) as lease:
        existing = _existing_rows(uri, options, specimen)
        commit = replace_specimen(
            uri,
            stream.batches(),
            SLICES_SCHEMA,
            specimen,
            storage_options=options,
            properties={"dagster_run_id": run_id, "partition": specimen},
            before_commit=_guard(lease, existing, config.max_removed_fraction, specimen),
            allow_external_blobs=config.reference_uncompressed,
        )
    seconds = time.perf_counter() - started
    lance_tables.ensure_key_index(uri, "specimen", options)
    for failure in stream.failures:
        context.log.warning(f"{specimen} z={failure.z} {failure.kind}: {failure.detail}")
    height, width = stream.shape or (0, 0)
    return MaterializeResult(
        metadata={
            "dataset_uri": MetadataValue.path(uri),
            "dataset_version": commit.version,
            "slices": stream.slices_written,
            "rows_removed": commit.rows_deleted,
            "height": height,
            "width": width,
            "dtype": stream.dtype or "",
            "tiff_compression": ", ".join(sorted(stream.compressions)),
            "raw_bytes_read": stream.bytes_read,
            "mb_per_second": round(stream.bytes_read / 1e6 / seconds, 1) if seconds else 0.0,
            "seconds": round(seconds, 2),
            "failures": len(stream.failures),
            "failed_slices": MetadataValue.json([f.as_dict() for f in stream.failures[:200]]),
        }
    )


class ProjectionConfig(Config):
    max_side: int = Field(default=256, ge=16, le=4096, description="Longest side of the projection")
    kind: str = Field(
        default="max", description="'max' (default) or 'min' (dark brightfield neurites)"
    )


@asset(
    group_name=GROUP,
    partitions_def=specimens_partitions,
    deps=[zstack_slices],
    kinds={"lance"},
    owners=OWNERS,
    tags=tags("stacks", "lance", modality="brightfield-zstack"),
    code_version="1",
    description=(
        "A downsampled intensity projection per specimen (a few hundred pixels a side), into "
        "zstack_projections.lance and as an image in the materialization's metadata."
    ),
)
def zstack_projections(
    context: AssetExecutionContext,
    config: ProjectionConfig,
    lake: LakeResource,
) -> MaterializeResult:
    specimen, run_id = context.partition_key, context.run_id
    options = lake.storage_options()
    stack = reading.open_stack(lake_root(lake), specimen, options)
    nz, height, width = stack.shape
    projection = proj.Projection(height, width, config.max_side, config.kind)
    for position in range(nz):
        projection.add(stack.slice(position))
    array = projection.array
    png = proj.to_png(array)
    pixels = codecs.encode(array.astype(array.dtype.newbyteorder("<"), copy=False), codecs.ZSTD)
    row = {
        "specimen": specimen,
        "kind": config.kind,
        "slices": nz,
        "height": height,
        "width": width,
        "factor": projection.factor,
        "proj_height": array.shape[0],
        "proj_width": array.shape[1],
        "dtype": str(array.dtype),
        "pixels": pixels.data,
        "pixels_codec": pixels.codec,
        "png": png,
        "slices_dataset_version": stack.dataset.version,
        "package_version": PACKAGE_VERSION,
        "dagster_run_id": run_id,
        "written_at": dt.datetime.now(dt.UTC),
    }
    batch = pa.RecordBatch.from_pylist([row], schema=PROJECTIONS_SCHEMA)
    uri = lake.dataset_uri(reading.PROJECTIONS)
    with partition_lease(
        lake.store(),
        reading.PROJECTIONS,
        specimen,
        run_id,
        run_alive=run_alive_in(context.instance),
    ) as lease:
        commit = replace_specimen(
            uri,
            [batch],
            PROJECTIONS_SCHEMA,
            specimen,
            storage_options=options,
            properties={"dagster_run_id": run_id, "partition": specimen},
            before_commit=lambda _preview: lease.assert_held(),
        )
    encoded = base64.b64encode(png).decode()
    return MaterializeResult(
        metadata={
            "dataset_uri": MetadataValue.path(uri),
            "dataset_version": commit.version,
            "slices_dataset_version": stack.dataset.version,
            "projection": MetadataValue.md(
                f"![{config.kind} projection of {specimen}](data:image/png;base64,{encoded})"
            ),
            "shape": MetadataValue.json(list(array.shape)),
            "factor": projection.factor,
        }
    )


@asset(
    group_name=GROUP,
    partitions_def=specimens_partitions,
    deps=[specimen_manifest],
    kinds={"lance"},
    owners=OWNERS,
    tags=tags("stacks", "lance", modality="brightfield-zstack"),
    code_version="1",
    description=(
        "One row per SWC node of the specimen's skeleton (exactly the file's rows), with the SWC's "
        "raw URI, size and sha256 on every row; per-specimen stats in the metadata. A specimen "
        "without a skeleton has no rows."
    ),
)
def skeletons(
    context: AssetExecutionContext,
    stack_collection: StackCollectionResource,
    lake: LakeResource,
) -> MaterializeResult:
    specimen, run_id = context.partition_key, context.run_id
    folder, files = _specimen_files(stack_collection, lake, specimen)
    swcs = sorted((f for f in files if f["role"] == SKELETON), key=lambda f: f["key"])
    schema = skeleton_schema()
    stats, table, source = None, schema.empty_table(), None
    if swcs:
        source = swcs[0]
        fetched = stack_collection.store().read(source["key"])
        nodes, stats = parse_swc(fetched.data.decode("utf-8-sig"), fetched.uri)
        table = with_provenance(
            nodes,
            specimen,
            folder.split,
            {
                "raw_uri": stack_collection.store().uri(source["key"]),
                "raw_size": len(fetched.data),
                "raw_etag": fetched.etag or source.get("etag"),
                "raw_sha256": hashlib.sha256(fetched.data).hexdigest(),
                "package_version": PACKAGE_VERSION,
                "dagster_run_id": run_id,
            },
        )
    uri = lake.dataset_uri(reading.SKELETONS)
    with partition_lease(
        lake.store(), reading.SKELETONS, specimen, run_id, run_alive=run_alive_in(context.instance)
    ) as lease:
        commit = replace_specimen(
            uri,
            table.to_batches(max_chunksize=65_536),
            schema,
            specimen,
            storage_options=lake.storage_options(),
            properties={"dagster_run_id": run_id, "partition": specimen},
            before_commit=lambda _preview: lease.assert_held(),
        )
    if len(swcs) > 1:
        context.log.warning(f"{specimen}: {len(swcs)} SWC files; used {swcs[0]['key']}")
    return MaterializeResult(
        metadata={
            "dataset_uri": MetadataValue.path(uri),
            "dataset_version": commit.version,
            "nodes": table.num_rows,
            "skeleton_key": source["key"] if source else "none",
            "stats": MetadataValue.json(stats.as_dict() if stats else {}),
        }
    )


STACKS_ASSETS = [specimen_manifest, zstack_slices, zstack_projections, skeletons]
