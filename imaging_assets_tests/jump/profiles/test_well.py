"""Per-well profiles: keys, Metadata_* as text, features as float64 with nulls kept, bad input."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from imaging_assets.core.errors import InputError
from imaging_assets.jump.profiles import read_well_profiles, well_profiles_vector


def _parquet(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def test_typing_keys_and_nulls():
    data = _parquet(
        pa.table(
            {
                "Metadata_Plate": ["P1", "P1"],
                "Metadata_Well": ["A01", "A02"],
                "Metadata_Site_Count": [4, 4],
                "Cells_AreaShape_Area": pa.array([1, None], pa.int32()),
                "Nuclei_Intensity_Mean": pa.array([0.5, 0.25], pa.float32()),
            }
        )
    )
    out = read_well_profiles(data, "p.parquet", source="s", batch="b", plate="P1")
    assert out.column_names[:5] == ["well_key", "source", "batch", "plate", "well"]
    assert out["well_key"].to_pylist() == ["s__P1__A01", "s__P1__A02"]
    assert out["well"].to_pylist() == ["A01", "A02"]
    assert out["batch"].to_pylist() == ["b", "b"]
    assert out.schema.field("Metadata_Site_Count").type == pa.string()
    assert out["Metadata_Site_Count"].to_pylist() == ["4", "4"]
    assert out.schema.field("Cells_AreaShape_Area").type == pa.float64()
    assert out["Cells_AreaShape_Area"].to_pylist() == [1.0, None]
    assert out["Nuclei_Intensity_Mean"].to_pylist() == [0.5, 0.25]


def test_another_plate_names_file_and_value():
    data = _parquet(pa.table({"Metadata_Plate": ["P9"], "Metadata_Well": ["A01"]}))
    with pytest.raises(InputError, match="p.parquet") as error:
        read_well_profiles(data, "p.parquet", source="s", batch="b", plate="P1")
    assert "P9" in str(error.value) and "Metadata_Plate" in str(error.value)


def test_non_numeric_feature_names_file_and_column():
    data = _parquet(
        pa.table({"Metadata_Plate": ["P1"], "Metadata_Well": ["A01"], "Cells_Texture_X": ["high"]})
    )
    with pytest.raises(InputError, match="Cells_Texture_X") as error:
        read_well_profiles(data, "p.parquet", source="s", batch="b", plate="P1")
    assert "p.parquet" in str(error.value)
    with pytest.raises(InputError, match="not a readable parquet"):
        read_well_profiles(b"not parquet", "q.parquet", source="s", batch="b", plate="P1")


def test_vector_layout_of_well_profiles():
    data = _parquet(
        pa.table(
            {
                "Metadata_Plate": ["P1", "P1"],
                "Metadata_Well": ["A01", "A02"],
                "Cells_AreaShape_Area": pa.array([1, None], pa.int32()),
                "Nuclei_Intensity_Mean": pa.array([0.5, 0.25], pa.float64()),
            }
        )
    )
    table, feature_set = well_profiles_vector(data, "p.parquet", source="s", batch="b", plate="P1")
    assert table.column_names == [
        "well_key", "source", "batch", "plate", "well", "Metadata_Plate", "Metadata_Well",
        "feature_set", "features",
    ]  # fmt: skip
    assert feature_set.names == ("Cells_AreaShape_Area", "Nuclei_Intensity_Mean")
    assert feature_set.compartments == ("Cells", "Nuclei")
    assert table["feature_set"].to_pylist() == [feature_set.id] * 2
    vectors = table["features"].to_pylist()
    assert vectors[0] == [1.0, 0.5] and vectors[1][1] == 0.25 and vectors[1][0] != vectors[1][0]
