"""plate.csv: a duplicated plate, an empty value or a malformed key part fails with the rows named."""

from __future__ import annotations

import gzip

import pytest

from imaging_assets.core.errors import InputError
from imaging_assets.jump.metadata import read_metadata_table

HEADER = "Metadata_Source,Metadata_Batch,Metadata_Plate,Metadata_PlateType\n"


def _plates(*rows: str) -> bytes:
    return gzip.compress((HEADER + "".join(f"{r}\n" for r in rows)).encode())


def test_duplicated_plate_names_both_rows():
    data = _plates("source_1,b1,P1,ORF", "source_1,b1,P2,ORF", "source_1,b2,P1,COMPOUND")
    with pytest.raises(InputError) as error:
        read_metadata_table("plate", data, "plate.csv.gz")
    assert error.value.row == 3
    assert error.value.column == "Metadata_Source, Metadata_Plate"
    message = str(error.value)
    assert "plate.csv.gz" in message and "rows 1 and 3" in message and "P1" in message


def test_same_plate_name_in_two_sources_is_two_plates():
    data = _plates("source_1,b1,P1,ORF", "source_2,b1,P1,ORF")
    assert read_metadata_table("plate", data, "plate.csv.gz").num_rows == 2


@pytest.mark.parametrize(
    ("row", "column"),
    [
        ("source_1,b1,P2,", "Metadata_PlateType"),
        ('source_1,b1,P2,""', "Metadata_PlateType"),
        ("source_1,,P2,ORF", "Metadata_Batch"),
        ("source_1,b1,,ORF", "Metadata_Plate"),
        (",b1,P2,ORF", "Metadata_Source"),
    ],
)
def test_empty_value_names_file_column_and_row(row, column):
    data = _plates("source_1,b1,P1,ORF", row)
    with pytest.raises(InputError) as error:
        read_metadata_table("plate", data, "plate.csv.gz")
    assert error.value.column == column and error.value.row == 2
    assert "plate.csv.gz" in str(error.value)


@pytest.mark.parametrize("plate", ["P1__x", "P/1", "P_"])
def test_plate_that_cannot_be_a_key_names_file_column_and_row(plate):
    data = _plates("source_1,b1,P0,ORF", f"source_1,b1,{plate},ORF")
    with pytest.raises(InputError) as error:
        read_metadata_table("plate", data, "plate.csv.gz")
    assert error.value.column == "Metadata_Plate" and error.value.row == 2


def test_the_real_plate_table_passes(real_fixtures):
    path = real_fixtures / "jump_metadata" / "plate.csv.gz"
    assert read_metadata_table("plate", path.read_bytes(), str(path)).num_rows == 2525


def test_duplicated_well_names_both_rows():
    text = (
        "Metadata_Source,Metadata_Plate,Metadata_Well,Metadata_JCP2022\n"
        "s,P1,A01,J1\ns,P1,A02,J2\ns,P1,A02,J3\n"
    )
    with pytest.raises(InputError) as error:
        read_metadata_table("well", text.encode(), "well.csv.gz")
    assert error.value.row == 3 and "rows 2 and 3" in str(error.value)
