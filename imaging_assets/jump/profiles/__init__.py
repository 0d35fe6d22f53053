"""CellProfiler profiles as typed tables that carry site_images' keys; digests; cell crops.

Profiles are written in the vector layout (layout.py): keys and metadata as columns, features as
one float64 vector plus the id of its feature set (feature_sets.py). The functions of the former
wide layout (one column per feature) keep their names and behaviour.
"""

from imaging_assets.jump.profiles.cells import (
    CellProfilesPlan,
    iter_cell_profile_batches,
    iter_cell_profile_batches_from_csv,
    plan_cell_profiles,
    plan_cell_profiles_from_csv,
)
from imaging_assets.jump.profiles.crops import cell_crops_schema, crop_cells
from imaging_assets.jump.profiles.feature_sets import (
    FEATURE_SETS,
    FeatureSet,
    ensure_feature_set,
    load_feature_sets,
)
from imaging_assets.jump.profiles.layout import FEATURE_SET, FEATURES
from imaging_assets.jump.profiles.provenance import (
    digest_summary,
    image_digests,
    image_digests_from_merged,
    verify_digests,
)
from imaging_assets.jump.profiles.single_cell import (
    cell_profiles_schema_from_sqlite,
    iter_cell_profiles,
    iter_cell_profiles_from_csv,
)
from imaging_assets.jump.profiles.well import read_well_profiles, well_profiles_vector

__all__ = [
    "FEATURES",
    "FEATURE_SET",
    "FEATURE_SETS",
    "CellProfilesPlan",
    "FeatureSet",
    "cell_crops_schema",
    "cell_profiles_schema_from_sqlite",
    "crop_cells",
    "digest_summary",
    "ensure_feature_set",
    "image_digests",
    "image_digests_from_merged",
    "iter_cell_profile_batches",
    "iter_cell_profile_batches_from_csv",
    "iter_cell_profiles",
    "iter_cell_profiles_from_csv",
    "load_feature_sets",
    "plan_cell_profiles",
    "plan_cell_profiles_from_csv",
    "read_well_profiles",
    "verify_digests",
    "well_profiles_vector",
]
