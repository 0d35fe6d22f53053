"""Both load_data formats on the real files, rebasing, the well join, and strict errors."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from imaging_assets.core.errors import InputError
from imaging_assets.jump.load_data import join_well_metadata, normalize_load_data, resolve_uris
from imaging_assets.jump.plates import choose_load_data, plate_index


def test_current_url_format(real_fixtures):
    path = real_fixtures / "cpg0016_BR00117035_load_data" / "load_data_with_illum.csv"
    table = normalize_load_data(path.read_bytes(), str(path), "csv")
    assert table.num_rows == 8  # one site, 8 channels
    assert set(table["channel"].to_pylist()) == {
        "DNA",
        "AGP",
        "ER",
        "Mito",
        "RNA",
        "Brightfield",
        "Brightfield_H",
        "Brightfield_L",
    }
    row = table.filter(pa.compute.equal(table["channel"], "DNA")).to_pylist()[0]
    assert row["site"] == "1" and row["site_key"] == "source_4__BR00117035__A01__1"
    assert row["uri"].startswith("s3://cellpainting-gallery/cpg0016-jump/source_4/images/")
    assert row["illum_uri"].endswith("BR00117035_IllumDNA.npy")


def test_older_parquet_format_joins_path_and_file(real_fixtures):
    path = real_fixtures / "cpg0016_BR00126114" / "test_BR00126114_load_data_with_illum.parquet"
    table = normalize_load_data(path.read_bytes(), str(path), "parquet")
    assert table.num_rows == 10  # 2 sites x 5 channels
    assert "//" not in table["uri"][0].as_py().removeprefix("s3://")
    assert table["illum_uri"][0].as_py().endswith("/BR00126114_IllumAGP.npy")


def test_phenix_csv_without_source_takes_it_from_the_caller(real_fixtures):
    path = real_fixtures / "phenix_site_v1" / "load_data_version1.csv"
    with pytest.raises(InputError, match="Metadata_Source"):
        normalize_load_data(path.read_bytes(), str(path), "csv")
    table = normalize_load_data(path.read_bytes(), str(path), "csv", source="source_x", batch="b")
    assert set(table["source"].to_pylist()) == {"source_x"}
    assert table.num_rows == 6


def test_resolve_uris_rebases_onto_any_root(real_fixtures):
    path = real_fixtures / "cpg0016_BR00117035_load_data" / "load_data_with_illum.csv"
    table = resolve_uris(
        normalize_load_data(path.read_bytes(), str(path), "csv"), "/mirror/cpg0016-jump/"
    )
    uri = table["uri"][0].as_py()
    assert uri.startswith("/mirror/cpg0016-jump/source_4/images/2021_04_26_Batch1/")
    assert table["load_data_uri"][0].as_py().startswith("s3://cellpainting-gallery/")


def test_metadata_stays_text_and_duplicates_and_gaps_fail(tmp_path):
    csv = (
        "URL_OrigDNA,Metadata_Source,Metadata_Batch,Metadata_Plate,Metadata_Well,Metadata_Site\n"
        "s3://b/source_1/x.tiff,source_1,b,P1,A01,01\n"
    )
    table = normalize_load_data(csv.encode(), "ld.csv", "csv")
    assert table["site"].to_pylist() == ["01"]
    duplicated = csv + "s3://b/source_1/y.tiff,source_1,b,P1,A01,01\n"
    with pytest.raises(InputError) as error:
        normalize_load_data(duplicated.encode(), "ld.csv", "csv")
    assert error.value.row == 2 and "ld.csv" in str(error.value)
    gap = csv + "s3://b/source_1/z.tiff,source_1,b,P1,,02\n"
    with pytest.raises(InputError) as error:
        normalize_load_data(gap.encode(), "ld.csv", "csv")
    assert error.value.column == "Metadata_Well" and error.value.row == 2


def test_filename_without_pathname_is_named():
    csv = "FileName_OrigDNA,Metadata_Source,Metadata_Batch,Metadata_Plate,Metadata_Well,Metadata_Site\nx.tiff,s,b,P,A01,1\n"
    with pytest.raises(InputError, match="PathName_OrigDNA"):
        normalize_load_data(csv.encode(), "ld.csv", "csv")


def test_unreadable_parquet_names_the_file():
    with pytest.raises(InputError, match="ld.parquet"):
        normalize_load_data(b"PAR1 nope", "ld.parquet", "parquet")


def test_wells_without_metadata_are_kept_and_flagged(real_fixtures):
    path = real_fixtures / "cpg0016_BR00126114" / "test_BR00126114_load_data_with_illum.parquet"
    table = normalize_load_data(path.read_bytes(), str(path), "parquet")
    wells = pa.table(
        {
            "source": ["source_4"],
            "plate": ["OTHER"],
            "well": ["A01"],
            "jcp2022": ["J"],
            "modality": ["compound"],
            "control_role": ["trt"],
            "control_name": [None],
            "plate_type": ["COMPOUND"],
        }
    )
    joined = join_well_metadata(table, wells)
    assert joined.num_rows == table.num_rows
    assert joined["has_metadata"].to_pylist() == [False] * table.num_rows


def test_plate_index_prefers_csv_with_illum_then_csv_then_parquet():
    found = [
        "source_1/workspace/load_data_csv_orig/b/P1/load_data_with_illum.parquet",
        "source_1/workspace/load_data_csv/b/P1/load_data.csv",
        "source_1/workspace/load_data_csv/b/P1/load_data_with_illum.csv",
        "source_1/workspace/load_data_csv_orig/b/P2/load_data_with_illum.parquet",
    ]
    chosen = choose_load_data(found)
    assert chosen[("source_1", "b", "P1")][0].endswith("load_data_with_illum.csv")
    assert chosen[("source_1", "b", "P2")][1] == "parquet"
    plates = pa.table(
        {
            "Metadata_Source": ["source_1"] * 3,
            "Metadata_Batch": ["b"] * 3,
            "Metadata_Plate": ["P1", "P2", "P3"],
            "Metadata_PlateType": ["ORF"] * 3,
        }
    )
    index = plate_index(plates, chosen)
    assert index["partition_key"].to_pylist() == ["source_1__P1", "source_1__P2", "source_1__P3"]
    assert index["load_data_key"][2].as_py() is None


def test_parquet_metadata_integers_become_text():
    table = pa.table(
        {
            "FileName_OrigDNA": ["a.tiff"],
            "PathName_OrigDNA": ["s3://x/source_1/"],
            "Metadata_Source": ["source_1"],
            "Metadata_Batch": ["b"],
            "Metadata_Plate": ["P"],
            "Metadata_Well": ["A01"],
            "Metadata_Site": [3],
        }
    )
    sink = io.BytesIO()
    pq.write_table(table, sink)
    out = normalize_load_data(sink.getvalue(), "ld.parquet", "parquet")
    assert out["site"].to_pylist() == ["3"]


def test_frames_of_multi_page_tiffs():
    csv = (
        "URL_OrigDNA,Frame_OrigDNA,Metadata_Source,Metadata_Batch,Metadata_Plate,Metadata_Well,Metadata_Site\n"
        "s3://b/source_1/stack.tiff,2,source_1,b,P1,A01,1\n"
        "s3://b/source_1/stack.tiff,,source_1,b,P1,A01,2\n"
    )
    table = normalize_load_data(csv.encode(), "ld.csv", "csv")
    assert table["frame"].to_pylist() == [2, 0]
    bad = csv.replace(",2,source_1", ",two,source_1")
    with pytest.raises(InputError) as error:
        normalize_load_data(bad.encode(), "ld.csv", "csv")
    assert error.value.column == "Frame_OrigDNA" and error.value.row == 1
