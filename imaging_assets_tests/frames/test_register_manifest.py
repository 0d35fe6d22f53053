"""register_manifest with imagingDB's files_for_upload.csv and with bad rows (lenient and strict)."""

from __future__ import annotations

import lance
import pandas as pd
import pyarrow as pa
import pytest

from imaging_assets.core.errors import InputError
from imaging_assets.core.lake import Lake
from imaging_assets.core.stores import LocalStore
from imaging_assets.demo.gallery.frames import generate_frame_samples
from imaging_assets.frames.lake import ingest_dataset, register_manifest
from imaging_assets.frames.manifest import ManifestRefusedError
from imaging_assets.frames.schema import datasets_schema

OME = "DEMO-2024-05-01-10-00-00-0001"  # registered first, from the demo's own manifest
MULTI = "ISP-2018-06-08-15-45-00-0001"
FILE = "ISP-2018-06-08-15-45-00-0002"
CHILD = "ISP-2018-06-08-15-45-00-0003"
OF_REGISTERED = "ISP-2018-06-08-15-45-00-0004"


@pytest.fixture
def source(tmp_path):
    generate_frame_samples(tmp_path / "source")
    return LocalStore(tmp_path / "source")


def write_imagingdb_csv(path) -> None:
    """A files_for_upload.csv as imagingDB users write it: pandas' to_csv, index column and all."""
    rows = {
        "dataset_id": [MULTI, FILE, CHILD, OF_REGISTERED],
        "file_name": [
            "frames/multipos",
            "frames/files/cell_counts.csv",
            "frames/plain/DEMO-2024-05-01-12-00-00-0002.tif",
            "frames/folder/OTHER-2024-06-10-14-00-00-0002",
        ],
        "description": ["positions 0 and 2 of 3", "cell counts", None, "a z-stack"],
        "upload_type": ["frames", "file", "frames", "frames"],
        "frames_format": ["ome_tiff", None, "tif_id", "tif_folder"],
        "microscope": ["Zeiss-LSM980", None, "Nikon-Ti2", None],
        "meta_schema": [None, None, None, "metadata_schema.json"],
        "positions": [[0, 2], None, None, None],
        "parent_dataset_id": [None, None, MULTI, OME],
    }
    pd.DataFrame(rows).to_csv(path)


def datasets_by_id(lake: Lake) -> dict[str, dict]:
    table = lance.dataset(lake.uri("datasets")).to_table()
    return {r["dataset_id"]: r for r in table.to_pylist()}


def test_an_imagingdb_csv_registers_with_imagingdb_meanings(tmp_path, source):
    lake = Lake.open(tmp_path / "lake")
    first = register_manifest(lake, source, "frames/manifest.csv", "r0")
    assert first.inserted == 5 and first.manifest.problems == ()
    write_imagingdb_csv(tmp_path / "source" / "files_for_upload.csv")
    text = (tmp_path / "source" / "files_for_upload.csv").read_text()
    assert text.startswith(",dataset_id,file_name") and '"[0, 2]"' in text

    registration = register_manifest(lake, source, "files_for_upload.csv", "r1")
    assert registration.manifest.problems == ()
    assert registration.manifest.dialect.name == "imagingDB"
    assert registration.manifest.ignored_columns == ("meta_schema",)
    assert registration.inserted == 4
    rows = datasets_by_id(lake)
    multi, file, child, of_registered = (rows[i] for i in (MULTI, FILE, CHILD, OF_REGISTERED))
    assert (multi["upload_type"], multi["format"], multi["microscope"]) == (
        "frames",
        "ome-tiff",
        "Zeiss-LSM980",
    )
    assert multi["position_indices"] == [0, 2] and multi["positions"] is None
    assert multi["source_uri"].endswith("/frames/multipos") and multi["parent_id"] is None
    assert (file["upload_type"], file["format"], file["microscope"]) == ("file", None, None)
    assert (child["parent_id"], child["format"], child["description"]) == (MULTI, "tiff", "")
    assert (of_registered["parent_id"], of_registered["format"]) == (OME, "tiff-folder")
    assert all(rows[i]["position_indices"] is None for i in (FILE, CHILD, OF_REGISTERED, OME))

    again = register_manifest(lake, source, "files_for_upload.csv", "r2")
    assert (again.inserted, again.manifest.problems) == (0, ())
    assert ingest_dataset(lake, source, FILE, "r3").upload_type == "file"


BAD_ROWS = (
    "BAD-2024-01-01-00-00-00-01,frames/ome/x.tif,,,,,frames,\n",  # a malformed id
    "BAD-2024-01-01-00-00-00-0002,frames/nowhere.tif,,,,,frames,\n",  # a file that does not exist
    "BAD-2024-01-01-00-00-00-0003,frames/files/cell_counts.csv,,,,,csv,\n",  # an upload type
)


def manifest_with_bad_rows(source_root) -> str:
    """The demo manifest with three bad rows among its five good ones (data rows 2, 4 and 7)."""
    lines = (source_root / "frames" / "manifest.csv").read_text().splitlines(keepends=True)
    header, good = lines[0], lines[1:]
    rows = [good[0], BAD_ROWS[0], good[1], BAD_ROWS[1], good[2], good[3], BAD_ROWS[2], good[4]]
    (source_root / "bad_rows.csv").write_text(header + "".join(rows))
    return "bad_rows.csv"


def test_every_bad_row_is_named_and_the_good_ones_register(tmp_path, source):
    lake = Lake.open(tmp_path / "lake")
    key = manifest_with_bad_rows(tmp_path / "source")
    registration = register_manifest(lake, source, key, "r1")
    manifest = registration.manifest
    assert registration.inserted == 5 and len(datasets_by_id(lake)) == 5
    assert manifest.bad_rows() == [2, 4, 7]
    texts = [str(p) for p in manifest.problems]
    assert "column 'dataset_id', row 2: dataset id 'BAD-2024-01-01-00-00-00-01'" in texts[0]
    assert "column 'file', row 4: " in texts[1] and "nowhere.tif does not exist" in texts[1]
    assert "column 'upload_type', row 7: unknown upload type 'csv'" in texts[2]
    assert all(t.startswith(str(tmp_path / "source" / key)) for t in texts)


def test_strict_registers_nothing_and_names_every_bad_row(tmp_path, source):
    lake = Lake.open(tmp_path / "lake")
    key = manifest_with_bad_rows(tmp_path / "source")
    with pytest.raises(ManifestRefusedError) as refused:
        register_manifest(lake, source, key, "r1", strict=True)
    message = str(refused.value)
    assert "3 bad row(s) (rows 2, 4, 7); strict, nothing registered" in message
    for needle in ("row 2: dataset id", "row 4: ", "nowhere.tif", "row 7: unknown upload type"):
        assert needle in message
    assert [p.row for p in refused.value.problems] == [2, 4, 7]
    assert isinstance(refused.value, InputError)
    assert not (tmp_path / "lake" / "datasets.lance").exists() or not datasets_by_id(lake)


def test_a_manifest_of_only_bad_rows_fails_even_when_lenient(tmp_path, source):
    header = (tmp_path / "source" / "frames" / "manifest.csv").read_text().splitlines()[0]
    (tmp_path / "source" / "all_bad.csv").write_text(header + "\n" + "".join(BAD_ROWS))
    with pytest.raises(ManifestRefusedError, match=r"rows 1, 2, 3\); no good row"):
        register_manifest(Lake.open(tmp_path / "lake"), source, "all_bad.csv", "r1")


def test_a_lake_registered_before_position_indices_gains_the_column(tmp_path, source):
    lake = Lake.open(tmp_path / "lake")
    older = pa.schema([f for f in datasets_schema() if f.name != "position_indices"])
    lance.write_dataset(older.empty_table(), lake.uri("datasets"))
    write_imagingdb_csv(tmp_path / "source" / "files_for_upload.csv")
    text = (tmp_path / "source" / "files_for_upload.csv").read_text()
    (tmp_path / "source" / "two.csv").write_text("".join(text.splitlines(keepends=True)[:3]))
    assert register_manifest(lake, source, "two.csv", "r1").inserted == 2
    assert "position_indices" in lance.dataset(lake.uri("datasets")).schema.names
    assert datasets_by_id(lake)[MULTI]["position_indices"] == [0, 2]
