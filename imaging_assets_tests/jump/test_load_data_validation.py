"""load_data that would lose or misplace sites fails with the file, column and row named.

The partition's plate and source, the key parts (no separator, slash, comma or control
character), and image locations that must stay under the source root.
"""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from imaging_assets.core.errors import InputError
from imaging_assets.jump import keys
from imaging_assets.jump.load_data import normalize_load_data, resolve_uris

COLUMNS = ["URL_OrigDNA", "URL_IllumDNA"] + [
    f"Metadata_{n}" for n in ("Source", "Batch", "Plate", "Well", "Site")
]
CANONICAL = "s3://cellpainting-gallery/cpg0016-jump"


def _csv(*rows: dict) -> bytes:
    """A URL_ load_data CSV; each row overrides the defaults of a valid row."""
    lines = [",".join(COLUMNS)]
    for index, overrides in enumerate(rows, start=1):
        row = {
            "URL_OrigDNA": f"{CANONICAL}/source_1/images/b/images/P1/r{index}.tiff",
            "URL_IllumDNA": f"{CANONICAL}/source_1/images/b/illum/P1/P1_IllumDNA.npy",
            "Metadata_Source": "source_1",
            "Metadata_Batch": "b",
            "Metadata_Plate": "P1",
            "Metadata_Well": "A01",
            "Metadata_Site": str(index),
            **overrides,
        }
        lines.append(",".join(_quote(row[c]) for c in COLUMNS))
    return ("\n".join(lines) + "\n").encode()


def _quote(value: str) -> str:
    if any(c in value for c in ',"\n\r'):
        return '"' + value.replace('"', '""') + '"'
    return value


# --- 1. the partition's plate and source ---------------------------------------------------------


def test_load_data_of_another_plate_names_file_column_row_and_both_plates():
    data = _csv({}, {"Metadata_Plate": "P2"})
    with pytest.raises(InputError) as error:
        normalize_load_data(data, "ld.csv", "csv", source="source_1", plate="P1")
    assert error.value.column == "Metadata_Plate" and error.value.row == 2
    assert error.value.expected == "'P1'" and error.value.got == "P2"
    assert "ld.csv" in str(error.value) and "P2" in str(error.value)


def test_load_data_of_another_source_names_file_column_row_and_both_sources():
    data = _csv({}, {}, {"Metadata_Source": "source_9"})
    with pytest.raises(InputError) as error:
        normalize_load_data(data, "ld.csv", "csv", source="source_1", plate="P1")
    assert error.value.column == "Metadata_Source" and error.value.row == 3
    assert error.value.got == "source_9" and "source_1" in str(error.value)


def test_load_data_of_the_partition_passes():
    table = normalize_load_data(_csv({}, {}), "ld.csv", "csv", source="source_1", plate="P1")
    assert table.num_rows == 2


# --- 2. key parts ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["A__01", "A/01", "A,01", "A01\n", "A\r01", "A\t01", "A\x0001", "A\x7f01", "_A01", "A01_", ""],
)
def test_key_part_rule_rejects(value):
    with pytest.raises(ValueError):
        keys.check_key_part("well", value)


@pytest.mark.parametrize(
    "value", ["A01", "source_4", "BR00117035", "Dest210823-174240", "0", "P 1"]
)
def test_key_part_rule_accepts(value):
    assert keys.check_key_part("well", value) == value


def test_site_key_uses_the_rule():
    with pytest.raises(ValueError, match="control"):
        keys.site_key("s", "P", "A01\n", 1)
    with pytest.raises(ValueError):
        keys.plate_partition_key("s", "P_")


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("Metadata_Well", "A01__1"),
        ("Metadata_Well", "A/01"),
        ("Metadata_Well", "A,01"),
        ("Metadata_Well", "A01\n"),
        ("Metadata_Well", "A\x0701"),
        ("Metadata_Site", "1__2"),
        ("Metadata_Site", "1\r"),
        ("Metadata_Plate", "P1/x"),
        ("Metadata_Source", "source,1"),
    ],
)
def test_bad_key_part_in_load_data_names_column_and_row(column, value):
    data = _csv({}, {}, {column: value})
    with pytest.raises(InputError) as error:
        normalize_load_data(data, "ld.csv", "csv")
    assert error.value.column == column and error.value.row == 3
    assert error.value.got == value and "ld.csv" in str(error.value)


def test_colliding_keys_fail_instead_of_losing_a_site():
    # "A01__1" + site "2" and "A01" + site "1__2" would both be ..__A01__1__2 .
    data = _csv({"Metadata_Well": "A01__1", "Metadata_Site": "2"}, {"Metadata_Site": "1__2"})
    with pytest.raises(InputError) as error:
        normalize_load_data(data, "ld.csv", "csv")
    assert error.value.row == 1 and error.value.column == "Metadata_Well"


def test_bad_key_part_given_by_the_caller_is_named():
    data = _csv({}).replace(b"Metadata_Source,", b"Metadata_Other,")
    with pytest.raises(InputError) as error:
        normalize_load_data(data, "ld.csv", "csv", source="bad/source")
    assert error.value.column == "Metadata_Source"


# --- 3. locations under the source root --------------------------------------------------------

ROOT = "/mirror/cpg0016-jump"


def _resolved(data: bytes, root: str = ROOT, fmt: str = "csv") -> pa.Table:
    return resolve_uris(normalize_load_data(data, "ld.csv", fmt), root)


@pytest.mark.parametrize(
    "uri",
    [
        "/etc/hostname",
        "s3://another-bucket/images/r1.tiff",
        f"{CANONICAL}/source_1/../../../etc/hostname",
        "../outside/r1.tiff",
        "images/../../outside.tiff",
        "file:///etc/hostname",
        "https://example.org/r1.tiff",
        "/mirror/cpg0016-jump-other/r1.tiff",
    ],
)
def test_image_outside_the_source_root_is_rejected(uri):
    data = _csv({}, {"URL_OrigDNA": uri})
    with pytest.raises(InputError) as error:
        _resolved(data)
    assert error.value.column == "URL_OrigDNA" and error.value.row == 2
    assert ROOT in str(error.value) and "ld.csv" in str(error.value)
    assert error.value.got == uri


def test_another_bucket_holding_the_source_folder_is_refused_not_rebased():
    """Only the collection the root mirrors (the Cell Painting Gallery by default) is rebased;
    a URI of another bucket that happens to hold the source folder is refused."""
    uri = "s3://someone-elses-bucket/cpg0016-jump/source_1/images/b/images/P1/r1.tiff"
    with pytest.raises(InputError) as error:
        _resolved(_csv({}, {"URL_OrigDNA": uri}))
    assert error.value.column == "URL_OrigDNA" and error.value.got == uri


def test_a_missing_channel_column_is_named_with_the_file():
    data = _csv({})
    with pytest.raises(InputError) as error:
        normalize_load_data(data, "ld.csv", "csv", channels=("DNA", "Mito"))
    assert error.value.column == "URL_OrigMito" and "ld.csv" in str(error.value)
    assert "Mito" in str(error.value)
    assert normalize_load_data(data, "ld.csv", "csv", channels=("DNA",)).num_rows > 0


def test_illumination_outside_the_source_root_is_rejected():
    data = _csv({"URL_IllumDNA": "/etc/passwd"})
    with pytest.raises(InputError) as error:
        _resolved(data)
    assert error.value.column == "URL_IllumDNA" and error.value.row == 1


def test_s3_root_rejects_other_buckets_and_sibling_prefixes():
    root = "s3://mirror/cpg0016-jump"
    ok = _csv({"URL_OrigDNA": "s3://mirror/cpg0016-jump/extra/r1.tiff"})
    assert _resolved(ok, root)["uri"][0].as_py() == "s3://mirror/cpg0016-jump/extra/r1.tiff"
    for uri in ("s3://mirror/cpg0016-jump2/r1.tiff", "s3://other/cpg0016-jump/r1.tiff"):
        with pytest.raises(InputError, match="s3://mirror/cpg0016-jump"):
            _resolved(_csv({"URL_OrigDNA": uri}), root)


def test_locations_under_the_root_resolve_and_keep_the_canonical_uri():
    data = _csv(
        {},
        {"URL_OrigDNA": "source_1/images/b/images/P1/relative.tiff"},
        {"URL_OrigDNA": f"{ROOT}/source_1/images/b/images/P1/absolute.tiff"},
    )
    table = _resolved(data, ROOT + "/")
    uris = table["uri"].to_pylist()
    assert uris[0] == f"{ROOT}/source_1/images/b/images/P1/r1.tiff"
    assert uris[1] == f"{ROOT}/source_1/images/b/images/P1/relative.tiff"
    assert uris[2] == f"{ROOT}/source_1/images/b/images/P1/absolute.tiff"
    assert table["load_data_uri"][0].as_py() == f"{CANONICAL}/source_1/images/b/images/P1/r1.tiff"
    assert table["load_data_uri"][1].as_py() == "source_1/images/b/images/P1/relative.tiff"


def test_path_format_outside_the_root_names_the_pathname_column():
    table = pa.table(
        {
            "FileName_OrigDNA": ["a.tiff", "b.tiff"],
            "PathName_OrigDNA": [f"{CANONICAL}/source_1/images/", "/etc/"],
            "Metadata_Source": ["source_1"] * 2,
            "Metadata_Batch": ["b"] * 2,
            "Metadata_Plate": ["P"] * 2,
            "Metadata_Well": ["A01"] * 2,
            "Metadata_Site": ["1", "2"],
        }
    )
    sink = io.BytesIO()
    pq.write_table(table, sink)
    with pytest.raises(InputError) as error:
        _resolved(sink.getvalue(), fmt="parquet")
    assert error.value.column == "PathName_OrigDNA" and error.value.row == 2


def test_parquet_column_that_cannot_be_text_is_named():
    table = pa.table(
        {
            "FileName_OrigDNA": ["a.tiff"],
            "PathName_OrigDNA": [f"{CANONICAL}/source_1/images/"],
            "Metadata_Source": ["source_1"],
            "Metadata_Batch": ["b"],
            "Metadata_Plate": ["P"],
            "Metadata_Well": [["A01"]],  # a list: no text form
            "Metadata_Site": ["1"],
        }
    )
    sink = io.BytesIO()
    pq.write_table(table, sink)
    with pytest.raises(InputError) as error:
        normalize_load_data(sink.getvalue(), "ld.parquet", "parquet")
    assert error.value.column == "Metadata_Well" and "ld.parquet" in str(error.value)
