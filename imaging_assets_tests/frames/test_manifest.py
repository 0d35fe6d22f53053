import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from imaging_assets.core.errors import InputError
from imaging_assets.frames.manifest import parse_manifest

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


def test_a_missing_parent_is_refused_naming_the_row():
    with pytest.raises(InputError, match=r"row 1.*parent dataset ISP-2021-03-09-15-30-00-0001"):
        parse_manifest(csv_bytes(B), "m.csv")


def test_a_registered_parent_is_accepted():
    manifest = parse_manifest(csv_bytes(B), "m.csv", {"ISP-2021-03-09-15-30-00-0001": "x"})
    assert len(manifest.new) == 1


def test_an_id_twice_with_different_content_is_refused():
    changed = A.replace("first", "changed")
    with pytest.raises(InputError, match=r"rows 1 and 2 with different content.*description"):
        parse_manifest(csv_bytes(A, changed), "m.csv")
    assert len(parse_manifest(csv_bytes(A, A), "m.csv").entries) == 1


def test_an_id_registered_with_different_content_is_refused():
    registered = {
        e.dataset_id: e.content_sha256() for e in parse_manifest(csv_bytes(A), "m").entries
    }
    assert parse_manifest(csv_bytes(A), "m.csv", registered).new == ()
    with pytest.raises(InputError, match="already registered with different content"):
        parse_manifest(csv_bytes(A.replace("first", "other")), "m.csv", registered)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (A.replace("frames", "pixels"), "unknown upload type 'pixels'"),
        (A.replace("ome-tiff", "czi"), "unknown frames format 'czi'"),
        (A.replace("raw/a.ome.tif", ""), "no file or folder given"),
        (A.replace("-0001", "-1"), "serial '1' is not 4 digits"),
        (
            "ISP-2021-03-09-15-30-00-0001,a,,,p.tif,,file,\n",
            "positions are only for multi-file OME-TIFF",
        ),
        (
            "ISP-2021-03-09-15-30-00-0001,a,,ISP-2021-03-09-15-30-00-0001,,,frames,\n",
            "is its own parent",
        ),
    ],
)
def test_bad_rows_are_refused_with_file_column_and_row(row, message):
    with pytest.raises(InputError) as error:
        parse_manifest(csv_bytes(row), "m.csv")
    assert message in str(error.value)
    assert "m.csv" in str(error.value) and "row 1" in str(error.value)


def test_missing_or_unknown_columns_are_refused():
    with pytest.raises(InputError, match="missing column"):
        parse_manifest(b"dataset_id,file\nISP-2021-03-09-15-30-00-0001,a\n", "m.csv")
    with pytest.raises(InputError, match="unknown column.*microscop"):
        parse_manifest(b"dataset_id,file,upload_type,microscop\n", "m.csv")
    with pytest.raises(InputError, match="empty"):
        parse_manifest(b"", "m.csv")
