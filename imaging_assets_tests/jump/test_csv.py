"""Arrow CSV errors become InputErrors naming the file and the row; large fields parse."""

from __future__ import annotations

import gzip

import pytest

from imaging_assets.core.errors import InputError
from imaging_assets.jump.csv import read_typed_csv
from imaging_assets.jump.load_data import normalize_load_data
from imaging_assets.jump.metadata import read_metadata_table

HEADER = "URL_OrigDNA,Metadata_Source,Metadata_Batch,Metadata_Plate,Metadata_Well,Metadata_Site\n"


def _row(well: str, site: int) -> str:
    return f"s3://b/source_1/{well}_{site}.tiff,source_1,b,P1,{well},{site}\n"


def test_invalid_utf8_names_file_column_and_row():
    data = (HEADER + _row("A01", 1)).encode() + b"s3://b/source_1/x.tiff,source_1,b,P1,A\xff02,1\n"
    with pytest.raises(InputError) as error:
        normalize_load_data(data, "ld.csv", "csv")
    assert error.value.file == "ld.csv"
    assert error.value.row == 2
    assert error.value.column == "Metadata_Well"
    assert "UTF-8" in str(error.value) and "ld.csv" in str(error.value)


def test_invalid_utf8_in_a_typed_column_is_located_too(real_fixtures):
    real = (real_fixtures / "jump_metadata" / "microscope_config.csv").read_bytes().splitlines()
    data = b"\n".join([real[0], real[1], real[2].replace(b",", b",\xfe", 1)]) + b"\n"
    with pytest.raises(InputError) as error:
        read_metadata_table("microscope_config", data, "microscope_config.csv")
    assert error.value.row == 2 and "microscope_config.csv" in str(error.value)


def test_invalid_utf8_in_the_header_is_named():
    data = b"a,b\xff\n1,2\n"
    with pytest.raises(InputError, match="header") as error:
        read_typed_csv(data, "h.csv", {})
    assert "h.csv" in str(error.value)


def test_short_row_names_file_and_row():
    data = (
        HEADER + _row("A01", 1) + _row("A01", 2) + "s3://b/source_1/x.tiff,source_1,b\n"
    ).encode()
    with pytest.raises(InputError) as error:
        normalize_load_data(data, "ld.csv", "csv")
    assert error.value.row == 3
    assert error.value.expected == "6 fields" and error.value.got == 3
    assert "ld.csv" in str(error.value)


def test_long_row_names_file_and_row():
    data = (HEADER + _row("A01", 1).rstrip("\n") + ",extra\n").encode()
    with pytest.raises(InputError) as error:
        normalize_load_data(data, "ld.csv", "csv")
    assert error.value.row == 1 and error.value.got == 7


def test_short_row_in_a_gzipped_metadata_table(tmp_path):
    text = "Metadata_Source,Metadata_Batch,Metadata_Plate,Metadata_PlateType\ns,b,P1,ORF\ns,b,P2\n"
    with pytest.raises(InputError) as error:
        read_metadata_table("plate", gzip.compress(text.encode()), "plate.csv.gz")
    assert error.value.row == 2 and "plate.csv.gz" in str(error.value)


def test_a_three_megabyte_field_parses():
    big = "x" * 3_000_000
    data = f'a,b\n1,{big}\n2,"{big[:-3]},\n,"\n3,small\n'.encode()
    table = read_typed_csv(data, "big.csv", {})
    assert table.num_rows == 3
    assert len(table["b"][0].as_py()) == 3_000_000
    assert table["b"][1].as_py().endswith(",\n,")
    assert table["b"][2].as_py() == "small"


def test_a_large_field_in_load_data_parses():
    notes = "n" * 3_000_000
    data = (
        HEADER.rstrip("\n") + ",Metadata_Notes\n" + _row("A01", 1).rstrip("\n") + f",{notes}\n"
    ).encode()
    table = normalize_load_data(data, "ld.csv", "csv")
    assert table.num_rows == 1
