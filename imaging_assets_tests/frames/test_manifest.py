import io
import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from imaging_assets.core.errors import InputError
from imaging_assets.frames.manifest import parse_manifest, refusal

HEADER = "dataset_id,file,description,parent_id,positions,microscope,upload_type,format\n"
A = "ISP-2021-03-09-15-30-00-0001,raw/a.ome.tif,first,,,Nikon-Ti2,frames,ome-tiff\n"
B = "ISP-2021-03-10-15-30-00-0001,raw/b.csv,derived,ISP-2021-03-09-15-30-00-0001,,,file,csv\n"


def csv_bytes(*rows: str, header: str = HEADER) -> bytes:
    return (header + "".join(rows)).encode()


def test_a_csv_manifest_is_parsed_with_defaults_and_links():
    manifest = parse_manifest(csv_bytes(A, B), "m.csv")
    a, b = manifest.entries
    assert a.dataset_id == "ISP-2021-03-09-15-30-00-0001"
    assert (a.upload_type, a.format, a.microscope, a.parent_id) == (
        "frames",
        "ome-tiff",
        "Nikon-Ti2",
        None,
    )
    assert (b.upload_type, b.parent_id) == ("file", a.dataset_id)
    assert [e.dataset_id for e in manifest.new] == manifest.ids()


def test_a_parquet_manifest_reads_the_same():
    table = pa.table(
        {
            "dataset_id": ["ISP-2021-03-09-15-30-00-0001"],
            "file": ["s3://bucket/raw/a"],
            "upload_type": ["frames"],
            "positions": ["p0.ome.tif;p1.ome.tif"],
        }
    )
    sink = io.BytesIO()
    pq.write_table(table, sink)
    (entry,) = parse_manifest(sink.getvalue(), "m.parquet").entries
    assert entry.positions == ("p0.ome.tif", "p1.ome.tif")
    assert entry.format == "auto"


def problems(manifest) -> list[str]:
    return [str(p) for p in manifest.problems]


def test_a_missing_parent_is_a_bad_row_naming_it():
    manifest = parse_manifest(csv_bytes(B), "m.csv")
    assert manifest.entries == ()
    (problem,) = problems(manifest)
    assert re.search(
        r"m\.csv, column 'parent_id', row 1: parent dataset ISP-2021-03-09-15", problem
    )


def test_a_registered_parent_is_accepted():
    manifest = parse_manifest(csv_bytes(B), "m.csv", {"ISP-2021-03-09-15-30-00-0001": "x"})
    assert len(manifest.new) == 1 and manifest.problems == ()


def test_an_id_twice_with_different_content_makes_every_row_of_it_bad():
    changed = A.replace("first", "changed")
    manifest = parse_manifest(csv_bytes(A, changed), "m.csv")
    assert manifest.entries == () and manifest.bad_rows() == [1, 2]
    assert all(
        re.search(r"rows 1 and 2 with different content.*description", p)
        for p in problems(manifest)
    )
    assert len(parse_manifest(csv_bytes(A, A), "m.csv").entries) == 1


def test_an_id_registered_with_different_content_is_a_bad_row():
    registered = {
        e.dataset_id: e.content_sha256() for e in parse_manifest(csv_bytes(A), "m").entries
    }
    assert parse_manifest(csv_bytes(A), "m.csv", registered).new == ()
    manifest = parse_manifest(csv_bytes(A.replace("first", "other")), "m.csv", registered)
    assert manifest.entries == ()
    assert "already registered with different content" in problems(manifest)[0]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (
            A.replace("frames", "pixels"),
            "column 'upload_type', row 1: unknown upload type 'pixels'",
        ),
        (A.replace("ome-tiff", "czi"), "column 'format', row 1: unknown frames format 'czi'"),
        (A.replace("raw/a.ome.tif", ""), "column 'file', row 1: no file or folder given"),
        (A.replace("-0001", "-1"), "column 'dataset_id', row 1: dataset id"),
        (
            "ISP-2021-03-09-15-30-00-0001,a,,,p.tif,,file,\n",
            "positions are only for multi-file OME-TIFF",
        ),
        (
            "ISP-2021-03-09-15-30-00-0001,a,,ISP-2021-03-09-15-30-00-0001,,,frames,\n",
            "is its own parent",
        ),
        ("ISP-2021-03-09-15-30-00-0001,a,,,,,frames,,extra\n", "row 1: row has 9 fields"),
    ],
)
def test_bad_rows_are_reported_with_file_column_and_row(row, message):
    manifest = parse_manifest(csv_bytes(row), "m.csv")
    assert manifest.entries == ()
    assert any(message in p and p.startswith("m.csv") for p in problems(manifest)), problems(
        manifest
    )


def test_every_bad_row_is_reported_and_the_good_ones_kept():
    good_c = A.replace("-09-15-30-00-0001", "-11-15-30-00-0001").replace(",first,", ",c,")
    bad_id = A.replace("-0001", "-01")
    bad_type = good_c.replace("-11-", "-12-").replace(",frames,", ",pixels,")
    orphan = B.replace("-10-15-", "-13-15-").replace("-09-15-30-00-0001", "-09-15-30-00-0009")
    child_of_bad = B.replace("-10-15-", "-14-15-").replace(
        "ISP-2021-03-09-15-30-00-0001", "ISP-2021-03-12-15-30-00-0001", 1
    )
    manifest = parse_manifest(
        csv_bytes(A, bad_id, good_c, bad_type, orphan, child_of_bad, B), "m.csv"
    )
    assert [e.row for e in manifest.entries] == [1, 3, 7]
    assert manifest.bad_rows() == [2, 4, 5, 6]
    texts = problems(manifest)
    assert "row 2: dataset id 'ISP-2021-03-09-15-30-00-01'" in texts[0]
    assert "row 4: unknown upload type 'pixels'" in texts[1]
    assert "row 5: parent dataset ISP-2021-03-09-15-30-00-0009" in texts[2]
    assert "row 6: parent dataset ISP-2021-03-12-15-30-00-0001 (row 4) is a bad row" in texts[3]


def test_a_row_collects_all_of_its_problems():
    row = "ISP-2021-03-09-15-30-00-1,,,,,,pixels,\n"
    manifest = parse_manifest(csv_bytes(row), "m.csv")
    columns = [p.column for p in manifest.problems]
    assert columns == ["dataset_id", "file", "upload_type"]


def test_missing_or_unknown_columns_are_refused():
    with pytest.raises(InputError, match="missing column"):
        parse_manifest(b"dataset_id,file\nISP-2021-03-09-15-30-00-0001,a\n", "m.csv")
    with pytest.raises(InputError, match="unknown column.*microscop"):
        parse_manifest(b"dataset_id,file,upload_type,microscop\n", "m.csv")
    with pytest.raises(InputError, match="empty"):
        parse_manifest(b"", "m.csv")


def test_strict_refuses_any_bad_row_and_lenient_only_when_none_is_good():
    manifest = parse_manifest(csv_bytes(A, A.replace("-0001", "-01")), "m.csv")
    assert refusal(manifest, strict=False) is None
    error = refusal(manifest, strict=True)
    assert isinstance(error, InputError) and "1 bad row(s) (rows 2); strict" in str(error)
    none_good = parse_manifest(csv_bytes(B), "m.csv")
    assert "no good row" in str(refusal(none_good, strict=False))
    assert refusal(parse_manifest(csv_bytes(A), "m.csv"), strict=True) is None


# -- imagingDB's files_for_upload.csv ---------------------------------------------------------------

IMAGINGDB_CSV = (
    ",dataset_id,file_name,description,positions,parent_dataset_id\n"
    '0,ISP-2018-06-08-15-45-00-0001,data/multi.ome.tif,two of three positions,"[0, 2]",\n'
    "1,ISP-2018-06-08-15-45-00-0002,data/plain.tif,one position,1.0,None\n"
    "2,ISP-2018-06-08-15-45-00-0003,data/folder,derived,,ISP-2018-06-08-15-45-00-0001\n"
)


def test_an_imagingdb_csv_is_read_with_its_meanings():
    manifest = parse_manifest(IMAGINGDB_CSV.encode(), "files_for_upload.csv")
    assert manifest.problems == () and manifest.dialect.name == "imagingDB"
    multi, plain, derived = manifest.entries
    assert (multi.file, multi.position_indices, multi.positions) == (
        "data/multi.ome.tif",
        (0, 2),
        (),
    )
    assert (multi.upload_type, multi.format, multi.parent_id) == ("frames", "auto", None)
    assert plain.position_indices == (1,) and plain.parent_id is None
    assert derived.parent_id == multi.dataset_id and derived.position_indices == ()


def test_imagingdb_formats_and_ignored_columns():
    text = (
        "dataset_id,file_name,upload_type,frames_format,microscope,meta_schema\n"
        "ML-2018-04-05-08-55-00-0001,a.lif,file,None,None,None\n"
        "ML-2018-04-05-08-55-00-0002,d,frames,tif_folder,Leica,schema.json\n"
        "ML-2018-04-05-08-55-00-0003,b.tif,frames,tif_id,,\n"
        "ML-2018-04-05-08-55-00-0004,c.ome.tif,frames,ome_tif,,\n"
    )
    manifest = parse_manifest(text.encode(), "f.csv")
    assert [(e.upload_type, e.format, e.microscope) for e in manifest.entries] == [
        ("file", "", ""),
        ("frames", "tiff-folder", "Leica"),
        ("frames", "tiff", ""),
        ("frames", "ome-tiff", ""),
    ]
    assert manifest.ignored_columns == ("meta_schema",)


@pytest.mark.parametrize(
    ("positions", "message"),
    [
        ('"[0, x]"', "is not a list of position indices"),
        ('"[0, -1]"', "position index -1 is out of range"),
        ('"[1, 1]"', "a position is listed twice"),
        ("0.5", "is not a position index"),
    ],
)
def test_bad_imagingdb_positions_name_the_column_and_row(positions, message):
    text = f"dataset_id,file_name,positions\nISP-2018-06-08-15-45-00-0001,a.tif,{positions}\n"
    (problem,) = parse_manifest(text.encode(), "f.csv").problems
    assert problem.column == "positions" and problem.row == 1 and message in str(problem)


def test_imagingdb_positions_only_for_frames_with_positions():
    text = (
        "dataset_id,file_name,positions,upload_type,frames_format\n"
        'ISP-2018-06-08-15-45-00-0001,a.csv,"[0]",file,\n'
        'ISP-2018-06-08-15-45-00-0002,d,"[0]",frames,tif_folder\n'
    )
    manifest = parse_manifest(text.encode(), "f.csv")
    assert manifest.bad_rows() == [1, 2]
    assert all("only for multi-position acquisitions" in str(p) for p in manifest.problems)


def test_imagingdb_columns_are_named_as_imagingdb_names_them():
    text = "dataset_id,file_name,parent_dataset_id\nISP-2018-06-08-15-45-00-0001,,bad\n"
    columns = [p.column for p in parse_manifest(text.encode(), "f.csv").problems]
    assert columns == ["file_name", "parent_dataset_id"]
    with pytest.raises(InputError, match="unknown column.*parent_id for the imagingDB format"):
        parse_manifest(b"dataset_id,file_name,parent_id\n", "f.csv")


def test_position_indices_change_the_content_only_when_given():
    (native,) = parse_manifest(csv_bytes(A), "m.csv").entries
    assert "position_indices" not in native.content()
    text = 'dataset_id,file_name,positions\nISP-2018-06-08-15-45-00-0001,a.tif,"[0, 2]"\n'
    (entry,) = parse_manifest(text.encode(), "f.csv").entries
    assert entry.content()["position_indices"] == [0, 2]
