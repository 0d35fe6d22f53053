"""Group `stacks`: specimen z-stacks and skeletons, one partition per specimen.

    specimen_manifest (registers partitions "specimens")
        ├─► zstack_slices (per specimen) ──────► zstack_projections (per specimen)
        └─► skeletons (per specimen) ──────────┘ (the skeleton drawn over the projection)

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

from imaging_assets.core.units import human_bytes
from imaging_assets.defs.common.catalog import OWNERS, markdown_table, table_catalog, tags
from imaging_assets.defs.common.lake_writes import RerunGuardConfig, write, write_metadata
from imaging_assets.defs.common.stores import LakeResource
from imaging_assets.defs.stacks.partitions import SPECIMENS_PARTITIONS_NAME, specimens_partitions
from imaging_assets.defs.stacks.resources import StackCollectionResource
from imaging_assets.processing import codecs
from imaging_assets.stacks import projection as proj
from imaging_assets.stacks import quality, reading, render
from imaging_assets.stacks.datasets import (
    PROJECTIONS,
    SKELETONS,
    SLICE_FAILURES,
    SLICE_FAILURES_SCHEMA,
    SLICES,
    slice_failures_table,
    specimen_partition,
)
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
SLICES_PER_FILE = 64  # large blob slices: several data files per specimen, each a few GB at most


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
            **table_catalog(manifest.files.schema, keys),  # the files table, one row per file
            "specimens": manifest.specimens.num_rows,
            "files": keys,
            "size": human_bytes(sum(manifest.specimens["bytes"].to_pylist())),
            "specimens_listed": len(result.listed),
            "specimens_new": MetadataValue.json(result.new[:200]),
            "specimens_gone": MetadataValue.json(result.gone[:200]),
            "partitions_added": len(added),
            "listing_requests": result.requests,
            "seconds": round(seconds, 3),
            "sizes": MetadataValue.md(
                markdown_table(
                    [{**r, "size": human_bytes(r["bytes"])} for r in manifest.size_table()],
                    ["specimen", "split", "files", "slices", "size"],
                )
            ),
            "totals_by_split": MetadataValue.json(
                {
                    split: {k: human_bytes(v) if k == "bytes" else v for k, v in totals.items()}
                    for split, totals in manifest.totals_by_split().items()
                }
            ),
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
    measure_quality: bool = Field(
        default=True,
        description=(
            "Measure CellProfiler's image-quality features of every slice while it is ingested "
            "(columns `ImageQuality_FocusScore_Slice`, ...; about 40 ms CPU per 2048x2048 slice, on a "
            "worker thread)"
        ),
    )


@asset(
    group_name=GROUP,
    partitions_def=specimens_partitions,
    deps=[specimen_manifest],
    kinds={"lance"},
    owners=OWNERS,
    tags=tags("stacks", "lance", modality="brightfield-zstack"),
    code_version="2",
    description=(
        "One row per slice: specimen, z, shape, dtype, TIFF compression, raw URI, size, ETag, md5, "
        "sha256, CellProfiler's image-quality features (`ImageQuality_FocusScore_Slice`, ..., measured "
        "while the slice is ingested), and the pixels in a Lance blob v2 column (windows are read "
        "without reading the slice). One commit per specimen, under the specimen's lease; the "
        "best-focused slice (highest FocusScore) in the metadata."
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
        measure_quality=config.measure_quality,
    )
    started = time.perf_counter()
    try:
        written = write(
            context,
            lake,
            specimen_partition(SLICES, specimen),
            SLICES_SCHEMA,
            stream.batches(),
            max_removed_fraction=config.max_removed_fraction,
            max_rows_per_file=SLICES_PER_FILE,
            allow_external_blobs=config.reference_uncompressed,
            index_columns=("specimen",),
        )
    finally:  # failures are recorded whether the specimen was written or refused
        _record_slice_failures(context, stack_collection, lake, stream)
    seconds = time.perf_counter() - started
    for failure in stream.failures:
        context.log.warning(f"{specimen} z={failure.z} {failure.kind}: {failure.detail}")
    height, width = stream.shape or (0, 0)
    best = stream.best_focus_z
    return MaterializeResult(
        metadata={
            **write_metadata(written, SLICES_SCHEMA, seconds, "slices"),
            "bytes_written": human_bytes(written.bytes_staged),
            "slices": stream.slices_written,
            "height": height,
            "width": width,
            "dtype": stream.dtype or "",
            "tiff_compression": ", ".join(sorted(stream.compressions)),
            "raw_read": human_bytes(stream.bytes_read),
            "mb_per_second": round(stream.bytes_read / 1e6 / seconds, 1) if seconds else 0.0,
            "seconds": round(seconds, 2),
            "failures": len(stream.failures),
            "failed_slices": MetadataValue.json([f.as_dict() for f in stream.failures[:200]]),
            **_focus_metadata(stream, best),
        }
    )


def _focus_metadata(stream: SliceStream, best: int | None) -> dict:
    """The best-focused slice, the FocusScore of every slice and what measuring cost."""
    if not stream.focus:
        return {"best_focus_z": "not measured"}
    return {
        "best_focus_z": best,
        "best_focus_feature": quality.FOCUS_COLUMN,
        "quality_metric_set": quality.METRIC_SET_NAME,
        "focus_by_z": MetadataValue.json(
            {str(z): float(f"{score:.6g}") for z, score in sorted(stream.focus.items())}
        ),
        "quality_ms_per_slice": round(
            stream.quality_cpu_seconds * 1000 / max(stream.slices_written, 1), 1
        ),
    }


def _record_slice_failures(
    context: AssetExecutionContext,
    stack_collection: StackCollectionResource,
    lake: LakeResource,
    stream: SliceStream,
) -> None:
    """Make the specimen's rows of zstack_slice_failures exactly this run's failed slices (by
    kind and z), so a gap in a stack can be queried later; nothing changes, nothing commits."""
    store = stack_collection.store()
    table = slice_failures_table(stream.failures, store.uri, PACKAGE_VERSION, context.run_id)
    write(
        context,
        lake,
        specimen_partition(SLICE_FAILURES, context.partition_key),
        SLICE_FAILURES_SCHEMA,
        table.to_batches(),
        max_removed_fraction=None,  # failures that no longer occur are meant to go
    )


class ProjectionConfig(Config):
    max_side: int = Field(
        default=512,
        ge=16,
        le=4096,
        description=(
            "Longest side of the projection (the stack is reduced by blocks to fit) and of its "
            "picture (a smaller projection is enlarged by an integer factor to reach it)"
        ),
    )
    kind: str = Field(
        default="auto",
        description=(
            "'auto' (default: 'min' when the stack has a bright background, as brightfield "
            "stacks do, else 'max'), 'min' (dark brightfield neurites) or 'max' (fluorescence)"
        ),
    )
    swc_units_per_pixel: float = Field(
        default=1.0,
        gt=0,
        description=(
            "SWC x, y units per stack pixel, to draw the skeleton: 1 when the SWC is in pixels "
            "(as the sample collection's), the pixel size in um when the SWC is in um"
        ),
    )


@asset(
    group_name=GROUP,
    partitions_def=specimens_partitions,
    deps=[zstack_slices, "skeletons"],
    kinds={"lance"},
    owners=OWNERS,
    tags=tags("stacks", "lance", modality="brightfield-zstack"),
    code_version="2",
    description=(
        "An intensity projection per specimen (minimum for brightfield stacks, up to 512 px a "
        "side), contrast-stretched, with the specimen's skeleton drawn over it: into "
        "zstack_projections.lance (pixels and PNG) and as an image in the materialization's "
        "metadata, with the best-focused slice."
    ),
)
def zstack_projections(
    context: AssetExecutionContext,
    config: ProjectionConfig,
    lake: LakeResource,
) -> MaterializeResult:
    specimen, run_id = context.partition_key, context.run_id
    options = lake.storage_options()
    root = lake.handle().root
    stack = reading.open_stack(root, specimen, options)
    nz, height, width = stack.shape
    projection = proj.Projection(height, width, config.max_side, config.kind)
    for position in range(nz):
        projection.add(stack.slice(position))
    array, choice = projection.array, projection.choice
    try:
        nodes = reading.skeleton(root, specimen, options)
    except KeyError:
        nodes = None  # a specimen without a skeleton: the projection alone
    picture = render.render(
        array,
        projection.factor,
        (height, width),
        nodes,
        display_side=config.max_side,
        units_per_pixel=config.swc_units_per_pixel,
    )
    best = stack.best_focus_z
    pixels = codecs.encode(array.astype(array.dtype.newbyteorder("<"), copy=False), codecs.ZSTD)
    row = {
        "specimen": specimen,
        "kind": choice.kind,
        "kind_reason": choice.reason,
        "slices": nz,
        "height": height,
        "width": width,
        "factor": projection.factor,
        "proj_height": array.shape[0],
        "proj_width": array.shape[1],
        "dtype": str(array.dtype),
        "pixels": pixels.data,
        "pixels_codec": pixels.codec,
        "png": picture.png,
        "png_scale": picture.scale,
        "skeleton_nodes_drawn": picture.nodes_drawn,
        "best_focus_z": best,
        "best_focus_feature": quality.FOCUS_COLUMN if best is not None else None,
        "slices_dataset_version": stack.dataset.version,
        "package_version": PACKAGE_VERSION,
        "dagster_run_id": run_id,
        "written_at": dt.datetime.now(dt.UTC),
    }
    batch = pa.RecordBatch.from_pylist([row], schema=PROJECTIONS_SCHEMA)
    written = write(
        context,
        lake,
        specimen_partition(PROJECTIONS, specimen),
        PROJECTIONS_SCHEMA,
        [batch],
        max_removed_fraction=None,  # derived from the slices: always recomputable
        # the slices' version moves with every other specimen's commit; the projection does not
        volatile=("dagster_run_id", "written_at", "slices_dataset_version"),
    )
    encoded = base64.b64encode(picture.png).decode()
    title = f"{choice.kind} projection of {specimen}" + (
        " with its skeleton" if picture.nodes_drawn else ""
    )
    caption = (
        f"{choice.kind} projection of {nz} slices of {width}x{height}, shown at "
        f"{picture.width}x{picture.height} px; {picture.note}; best focus: "
        + (f"z={best}" if best is not None else "not measured")
    )
    return MaterializeResult(
        metadata={
            **write_metadata(written, PROJECTIONS_SCHEMA),
            "bytes_written": human_bytes(written.bytes_staged),
            "slices_dataset_version": stack.dataset.version,
            "projection": MetadataValue.md(
                f"![{title}](data:image/png;base64,{encoded})\n\n{caption}"
            ),
            "kind": choice.kind,
            "kind_reason": choice.reason,
            "skeleton": picture.note,
            "best_focus_z": best if best is not None else "not measured",
            "shape": MetadataValue.json(list(array.shape)),
            "factor": projection.factor,
            "png_size": f"{picture.width}x{picture.height} px, {human_bytes(len(picture.png))}",
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
                "read_uri": fetched.uri,
                "raw_size": len(fetched.data),
                "raw_etag": fetched.etag or source.get("etag"),
                "raw_sha256": hashlib.sha256(fetched.data).hexdigest(),
                "package_version": PACKAGE_VERSION,
                "dagster_run_id": run_id,
            },
        )
    written = write(
        context,
        lake,
        specimen_partition(SKELETONS, specimen),
        schema,
        table.to_batches(max_chunksize=65_536),
        max_removed_fraction=None,  # exactly the file's rows: a changed file replaces them
    )
    if len(swcs) > 1:
        context.log.warning(f"{specimen}: {len(swcs)} SWC files; used {swcs[0]['key']}")
    metadata = {
        **write_metadata(written, schema),
        "bytes_written": human_bytes(written.bytes_staged),
    }
    if source is None:  # said plainly, not as "nodes 0"
        return MaterializeResult(metadata={**metadata, "skeleton": "no skeleton"})
    size = human_bytes(len(fetched.data))
    return MaterializeResult(
        metadata={
            **metadata,
            "skeleton": f"{table.num_rows:,} nodes from {source['key']} ({size})",
            "nodes": table.num_rows,
            "skeleton_key": source["key"],
            "skeleton_size": size,
            "stats": MetadataValue.json(stats.as_dict()),
        }
    )


STACKS_ASSETS = [specimen_manifest, zstack_slices, zstack_projections, skeletons]
