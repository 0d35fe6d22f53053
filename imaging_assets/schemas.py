"""The Arrow schemas of every table the code location writes.

One module so that a reader can see every table's columns in one place. Sections are grouped by
asset group; each section is owned by the module that builds those rows.
"""

from __future__ import annotations

import pyarrow as pa

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
)

# --- site_images, failed_images (imaging_assets.images) -----------------------------------------

# --- profiles (imaging_assets.profiles) ---------------------------------------------------------

__all__ = ["pa"]
