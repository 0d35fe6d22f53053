"""The Arrow schemas of every table the code location writes.

One module so that a reader can see every table's columns in one place. Sections are grouped by
asset group; each section is owned by the module that builds those rows.
"""

from __future__ import annotations

import pyarrow as pa

from imaging_assets.core.lance_tables import addable
from imaging_assets.processing.quality import FEATURES as QUALITY_FEATURES
from imaging_assets.processing.quality import QualityConfig, feature_name

# --- metadata tables (imaging_assets.jump.metadata) -------------------------------------------
# Column names exactly as in jump-cellpainting/datasets' metadata/ folder; ids are text.

_S = pa.string()
_F = pa.float64()
_I32 = pa.int32()


def _fields(*names: str, type_: pa.DataType = _S) -> list[pa.Field]:
    return [pa.field(name, type_) for name in names]


def _filter_fields() -> list[pa.Field]:
    fields = _fields("Metadata_Filter_Configuration")
    for edge in ("Excitation_Low", "Excitation_High", "Emission_Low", "Emission_High"):
        fields += _fields(
            *(f"Metadata_{edge}_{ch}" for ch in ("DNA", "ER", "RNA", "AGP", "Mito")), type_=_F
        )
    return fields + _fields("Metadata_FPBase_Config")


METADATA_SCHEMAS: dict[str, pa.Schema] = {
    "plate": pa.schema(
        _fields("Metadata_Source", "Metadata_Batch", "Metadata_Plate", "Metadata_PlateType")
    ),
    "well": pa.schema(
        _fields("Metadata_Source", "Metadata_Plate", "Metadata_Well", "Metadata_JCP2022")
    ),
    "compound": pa.schema(
        _fields("Metadata_JCP2022", "Metadata_InChIKey", "Metadata_InChI", "Metadata_SMILES")
    ),
    "compound_source": pa.schema(_fields("Metadata_Compound_Source", "Metadata_JCP2022")),
    "orf": pa.schema(
        _fields(
            "Metadata_JCP2022",
            "Metadata_broad_sample",
            "Metadata_Name",
            "Metadata_Vector",
            "Metadata_Transcript",
            "Metadata_Symbol",
            "Metadata_NCBI_Gene_ID",
            "Metadata_Taxon_ID",
            "Metadata_Gene_Description",
        )
        + _fields("Metadata_Prot_Match", type_=_F)
        + _fields("Metadata_Insert_Length", type_=pa.int64())
        + _fields("Metadata_pert_type")
    ),
    "crispr": pa.schema(_fields("Metadata_JCP2022", "Metadata_NCBI_Gene_ID", "Metadata_Symbol")),
    "perturbation_control": pa.schema(
        _fields("Metadata_JCP2022", "Metadata_pert_type", "Metadata_Name", "Metadata_modality")
    ),
    "microscope_config": pa.schema(
        _fields(
            "Metadata_Source",
            "Metadata_Microscope_Name",
            "Metadata_Widefield_vs_Confocal",
            "Metadata_Excitation_Type",
        )
        + _fields("Metadata_Objective_NA", type_=_F)
        + _fields(
            "Metadata_N_Brightfield_Planes_Min", "Metadata_N_Brightfield_Planes_Max", type_=_I32
        )
        + _fields("Metadata_Distance_Between_Z_Microns", type_=_F)
        + _fields("Metadata_Sites_Per_Well", type_=_I32)
        + _fields("Metadata_Filter_Configuration")
        + _fields("Metadata_Pixel_Size_Microns", type_=_F)
    ),
    "microscope_filter": pa.schema(_filter_fields()),
    "cellprofiler_version": pa.schema(_fields("Metadata_Source", "Metadata_CellProfiler_Version")),
}

WELL_METADATA_SCHEMA = pa.schema(
    _fields(
        "source",
        "batch",
        "plate",
        "well",
        "plate_type",
        "jcp2022",
        "modality",
        "control_role",
        "control_name",
        "symbol",
        "inchikey",
    )
)

# --- plate index, load_data, sampled_sites (imaging_assets.jump) --------------------------------

PLATE_INDEX_SCHEMA = pa.schema(
    _fields(
        "source",
        "batch",
        "plate",
        "plate_type",
        "partition_key",
        "load_data_key",
        "load_data_format",
    )
)

LOAD_DATA_SCHEMA = pa.schema(
    _fields(
        "source",
        "batch",
        "plate",
        "well",
        "site",
        "channel",
        "uri",
        "illum_uri",
        "site_key",
    )
    + [pa.field("frame", pa.int32())]  # page of a multi-page TIFF (LoadData's Frame_Orig{Ch})
)

# --- site_images, failed_images (imaging_assets.jump.images) -----------------------------------------

ZSTD_LEVEL_1 = {"lance-encoding:compression": "zstd", "lance-encoding:compression-level": "1"}
SITE_KEY_COLUMNS = ("site_key", "source", "batch", "plate", "well", "site")
SITE_METADATA_COLUMNS = ("jcp2022", "modality", "control_role", "plate_type")
CHANNELS_METADATA_KEY = b"imaging_assets:channels"


def channel_prefix(channel: str) -> str:
    """Column prefix of a channel: "DNA" -> "dna", "Brightfield_H" -> "brightfield_h"."""
    return channel.lower()


# CellProfiler names the images it measures after their load_data columns (OrigDNA, OrigAGP...):
# the quality columns carry exactly the names CellProfiler's Image table gives them.
QUALITY_IMAGE_PREFIX = "Orig"
QUALITY_CONFIG = QualityConfig()  # spatial scale 20, CellProfiler's default (part of two names)


def quality_column(feature: str, channel: str) -> str:
    """The site_images column of one CellProfiler MeasureImageQuality feature of one channel:
    CellProfiler's own measurement name, e.g. ImageQuality_PowerLogLogSlope_OrigDNA or
    ImageQuality_Correlation_OrigDNA_20 (imaging_assets.processing.quality.feature_name)."""
    return feature_name(feature, f"{QUALITY_IMAGE_PREFIX}{channel}", QUALITY_CONFIG)


def quality_fields(channels: list[str] | tuple[str, ...]) -> list[pa.Field]:
    """Every feature of every channel (null where not computed), then the metric set's name and
    version and the intensity scale the values are on. Added in 0.5: older lakes gain them."""
    fields = [
        addable(pa.field(quality_column(feature, channel), _F))
        for channel in channels
        for feature in QUALITY_FEATURES
    ]
    return fields + [
        # "cellprofiler.MeasureImageQuality/1" (processing.quality METRIC_SET/METRIC_SET_VERSION)
        addable(pa.field("qc_metric_set", _S)),
        # the divisor: features are of raw / qc_scale, as CellProfiler loads the image (65535
        # for uint16); null when no feature was computed
        addable(pa.field("qc_scale", _F)),
    ]


def site_images_schema(channels: list[str] | tuple[str, ...]) -> pa.Schema:
    """One row per site: keys, well metadata, per-channel pixels and provenance, the raw images'
    CellProfiler quality features, run provenance."""
    fields = _fields(*SITE_KEY_COLUMNS, *SITE_METADATA_COLUMNS)
    for channel in channels:
        c = channel_prefix(channel)
        fields += [
            # no column compression (since 0.4, with the zstd/1 codec): the cell's codec
            # compresses; datasets created earlier keep their column zstd (their raw/1 rows
            # rely on it) and their new rows are written the same way
            pa.field(f"{c}_pixels", pa.large_binary()),
            # how {c}_pixels is encoded, "name/version" (imaging_assets.processing.codecs); added
            # in 0.3: older lakes gain it (null = "raw/1", the array's C-order bytes)
            addable(pa.field(f"{c}_codec", _S)),
            # sha256 of the stored cell bytes (added later: null before), so a verify can tell
            # that the lake still holds what was written
            addable(pa.field(f"{c}_pixels_sha256", _S)),
            pa.field(f"{c}_shape", pa.list_(pa.int32())),
            pa.field(f"{c}_dtype", _S),
            pa.field(f"{c}_raw_uri", _S),  # the URI the load data names (canonical)
            # where the bytes were read (mirror, bucket, server); added in 0.2, older lakes gain it
            addable(pa.field(f"{c}_read_uri", _S)),
            pa.field(f"{c}_raw_size", pa.int64()),
            pa.field(f"{c}_raw_md5", _S),
            pa.field(f"{c}_raw_sha256", _S),
            pa.field(f"{c}_raw_etag", _S),
            pa.field(f"{c}_raw_shape", pa.list_(pa.int32())),
            pa.field(f"{c}_crop_offset", pa.list_(pa.int32())),
            pa.field(f"{c}_low", _F),
            pa.field(f"{c}_high", _F),
            pa.field(f"{c}_illum_uri", _S),
        ]
    fields += quality_fields(channels)
    fields += _fields(
        "recipe_name", "recipe_version", "recipe_params", "package_version", "dagster_run_id"
    )
    fields.append(pa.field("written_at", pa.timestamp("us", tz="UTC")))
    return pa.schema(fields, metadata={CHANNELS_METADATA_KEY: ",".join(channels).encode()})


def failed_images_schema() -> pa.Schema:
    """One row per raw image that could not be used, replaced per plate like the images.

    uri is the canonical URI the load data names, read_uri where it was (or would have been) read;
    message names the URI and the kind of failure, never content of the object.
    """
    return pa.schema(
        _fields("failure_key", "uri")
        + [addable(pa.field("read_uri", _S))]  # added in 0.2: older lakes gain it (null)
        + _fields(
            "site_key",
            "source",
            "plate",
            "channel",
            "error_kind",
            "message",
            "dagster_run_id",
        )
        + [pa.field("failed_at", pa.timestamp("us", tz="UTC"))]
        + [addable(pa.field("package_version", _S))]  # added later: null in older rows
    )


# --- profiles (imaging_assets.jump.profiles) ---------------------------------------------------------

CROP_SIZE_METADATA_KEY = b"imaging_assets:crop_size"


def cell_crops_schema(channels: list[str] | tuple[str, ...], size: int) -> pa.Schema:
    """One row per cell: keys, centre, border flag, one zstd-1 crop per channel, provenance.

    Each {ch}_crop is the raw C-order bytes of one (size, size) plane in `dtype`; crop_shape is
    [size, size].
    site_images_version is the Lance version of site_images the pixels were read from.
    """
    fields = _fields("cell_id", "site_key", "source", "plate", "well", "site")
    fields += [
        pa.field("object_number", pa.int64()),
        pa.field("center_x", _F),
        pa.field("center_y", _F),
        pa.field("touches_border", pa.bool_()),
    ]
    fields += [
        pa.field(f"{channel_prefix(c)}_crop", pa.large_binary(), metadata=ZSTD_LEVEL_1)
        for c in channels
    ]
    fields += [
        pa.field("crop_shape", pa.list_(_I32)),
        pa.field("dtype", _S),
        pa.field("site_images_version", pa.int64()),
        pa.field("recipe_name", _S),
        # run provenance, added later: older lakes gain it (null for crops written before)
        addable(pa.field("package_version", _S)),
        addable(pa.field("dagster_run_id", _S)),
        addable(pa.field("written_at", pa.timestamp("us", tz="UTC"))),
    ]
    return pa.schema(fields, metadata={CROP_SIZE_METADATA_KEY: str(size).encode()})
