"""The JUMP metadata tables: the real files parse with their schemas; bad files fail clearly."""

from __future__ import annotations

import gzip

import pyarrow as pa
import pytest

from imaging_assets.core.errors import InputError
from imaging_assets.jump.metadata import FILE_NAMES, read_metadata_table, well_metadata

REAL_ROWS = {"plate": 2525, "perturbation_control": 18, "microscope_config": 13}


@pytest.mark.parametrize("name", [n for n in FILE_NAMES if n not in ("well", "compound")])
def test_real_tables_parse_with_their_schema(real_fixtures, name):
    path = real_fixtures / "jump_metadata" / FILE_NAMES[name]
    table = read_metadata_table(name, path.read_bytes(), str(path))
    assert table.num_rows > 0
    if name in REAL_ROWS:
        assert table.num_rows == REAL_ROWS[name]
    if name == "microscope_config":
        assert table.schema.field("Metadata_Objective_NA").type == pa.float64()
        assert table.schema.field("Metadata_Sites_Per_Well").type == pa.int32()
    if name == "orf":
        assert table.schema.field("Metadata_NCBI_Gene_ID").type == pa.string()


def _write(tmp_path, name: str, text: str, gz: bool = False):
    data = text.encode()
    path = tmp_path / (name + (".csv.gz" if gz else ".csv"))
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def test_missing_column_names_file_and_column(tmp_path):
    path = _write(
        tmp_path, "plate", "Metadata_Source,Metadata_Batch,Metadata_Plate\ns,b,p\n", gz=True
    )
    with pytest.raises(InputError) as error:
        read_metadata_table("plate", path.read_bytes(), str(path))
    message = str(error.value)
    assert str(path) in message and "Metadata_PlateType" in message


def test_renamed_column_is_a_missing_column(tmp_path):
    path = _write(
        tmp_path, "well", "Metadata_Source,Metadata_Plate,Well,Metadata_JCP2022\ns,p,A01,J\n"
    )
    with pytest.raises(InputError, match="Metadata_Well"):
        read_metadata_table("well", path.read_bytes(), str(path))


def test_unparseable_value_names_column_and_row(real_fixtures, tmp_path):
    real = (real_fixtures / "jump_metadata" / "microscope_config.csv").read_text().splitlines()
    bad = real[2].split(",")
    bad[4] = "one point zero"  # Metadata_Objective_NA
    path = _write(
        tmp_path, "microscope_config", "\n".join([real[0], real[1], ",".join(bad)]) + "\n"
    )
    with pytest.raises(InputError) as error:
        read_metadata_table("microscope_config", path.read_bytes(), str(path))
    assert error.value.column == "Metadata_Objective_NA"
    assert error.value.row == 2
    assert "one point zero" in str(error.value)


def test_empty_file_and_gzip_garbage(tmp_path):
    with pytest.raises(InputError, match="empty"):
        read_metadata_table("plate", b"", "plate.csv.gz")
    with pytest.raises(InputError, match="gzip"):
        read_metadata_table("plate", b"\x1f\x8bnot really gzip", "plate.csv.gz")


def test_well_metadata_roles_from_perturbation_control(real_fixtures):
    root = real_fixtures / "jump_metadata"
    controls = read_metadata_table(
        "perturbation_control", (root / "perturbation_control.csv").read_bytes(), "pc"
    )
    plates = pa.table(
        {
            "Metadata_Source": ["source_4"],
            "Metadata_Batch": ["b1"],
            "Metadata_Plate": ["P1"],
            "Metadata_PlateType": ["COMPOUND"],
        }
    )
    wells = pa.table(
        {
            "Metadata_Source": ["source_4"] * 4,
            "Metadata_Plate": ["P1"] * 4,
            "Metadata_Well": ["A01", "A02", "A03", "A04"],
            "Metadata_JCP2022": ["JCP2022_033924", "JCP2022_037716", "JCP2022_000123", None],
        }
    )
    table = well_metadata(wells, plates, controls)
    roles = dict(zip(table["well"].to_pylist(), table["control_role"].to_pylist(), strict=True))
    assert roles == {"A01": "negcon", "A02": "poscon", "A03": "trt", "A04": None}
    assert not [c for c in table.column_names if c.endswith(("_x", "_y"))]
    assert set(table["modality"].to_pylist()) == {"compound"}


def test_well_on_unknown_plate_is_an_error():
    plates = pa.table(
        {
            "Metadata_Source": ["s"],
            "Metadata_Batch": ["b"],
            "Metadata_Plate": ["P1"],
            "Metadata_PlateType": ["ORF"],
        }
    )
    wells = pa.table(
        {
            "Metadata_Source": ["s"],
            "Metadata_Plate": ["P9"],
            "Metadata_Well": ["A01"],
            "Metadata_JCP2022": ["J"],
        }
    )
    controls = pa.table(
        {
            n: pa.array([], pa.string())
            for n in [
                "Metadata_JCP2022",
                "Metadata_pert_type",
                "Metadata_Name",
                "Metadata_modality",
            ]
        }
    )
    with pytest.raises(InputError, match="P9"):
        well_metadata(wells, plates, controls)
