"""Profiles: real shrunken SQLite, the compartment join, digests on real TIFFs, crops."""

from __future__ import annotations

import hashlib
import io
import shutil
import sqlite3

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from imaging_assets.errors import InputError
from imaging_assets.profiles import (
    cell_profiles_schema_from_sqlite,
    crop_cells,
    image_digests_from_merged,
    iter_cell_profiles,
    iter_cell_profiles_from_csv,
    read_well_profiles,
    verify_digests,
)


def test_real_shrunken_sqlite(real_fixtures):
    path = real_fixtures / "cpg0016_BR00126114" / "test_BR00126114.sqlite"
    batches = list(
        iter_cell_profiles(
            path, str(path), source="source_4", batch="b", plate="BR00126114", images_per_batch=1
        )
    )
    assert [b.num_rows for b in batches] == [10, 10]
    table = pa.Table.from_batches(batches)
    assert table["site_key"].unique().to_pylist() == [
        "source_4__BR00126114__A01__1",
        "source_4__BR00126114__A01__2",
    ]
    assert table["cell_id"][0].as_py() == "source_4__BR00126114__A01__1__1"
    assert table.schema.field("Nuclei_Location_Center_X").type == pa.float64()
    assert table.schema == cell_profiles_schema_from_sqlite(path)


def _backend(path, image_numbers=(1, 2), cells=3):
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE Per_Image (TableNumber, ImageNumber, Image_Metadata_Well, Image_Metadata_Site, Image_MD5Digest_OrigDNA)"
    )
    db.execute(
        "CREATE TABLE Per_Cells (TableNumber, ImageNumber, ObjectNumber, Cells_Parent_Nuclei, Cells_AreaShape_Area)"
    )
    db.execute(
        "CREATE TABLE Per_Nuclei (TableNumber, ImageNumber, ObjectNumber, Nuclei_AreaShape_Area)"
    )
    db.execute(
        "CREATE TABLE Per_Cytoplasm (TableNumber, ImageNumber, ObjectNumber, Cytoplasm_Parent_Cells, "
        "Cytoplasm_Parent_Nuclei, Cytoplasm_AreaShape_Area)"
    )
    for image in image_numbers:
        db.execute(
            "INSERT INTO Per_Image VALUES (1, ?, 'A01', ?, ?)", (image, image, f"md5-{image}")
        )
        for obj in range(1, cells + 1):
            # objects are numbered per image; parents point at the *reversed* object in the same image
            parent = cells + 1 - obj
            db.execute(
                "INSERT INTO Per_Cells VALUES (1, ?, ?, ?, ?)",
                (image, obj, obj, 1000 * image + obj),
            )
            db.execute(
                "INSERT INTO Per_Nuclei VALUES (1, ?, ?, ?)", (image, obj, 100 * image + obj)
            )
            db.execute(
                "INSERT INTO Per_Cytoplasm VALUES (1, ?, ?, ?, ?, ?)",
                (image, obj, parent, parent, 10 * image + obj),
            )
    db.commit()
    db.close()


def test_cytoplasm_joins_its_parents_within_the_image(tmp_path):
    path = tmp_path / "backend.sqlite"
    _backend(path)
    table = pa.Table.from_batches(
        list(iter_cell_profiles(path, str(path), source="s", batch="b", plate="P"))
    )
    assert table.num_rows == 6
    for row in table.to_pylist():
        image, obj = row["image_number"], row["object_number"]
        parent = 4 - obj
        assert row["Cytoplasm_AreaShape_Area"] == 10 * image + obj
        assert row["Cells_AreaShape_Area"] == 1000 * image + parent  # same image, right parent
        assert row["Nuclei_AreaShape_Area"] == 100 * image + parent
        assert row["Image_MD5Digest_OrigDNA"] == f"md5-{image}"
    assert not [c for c in table.column_names if c.endswith(("_x", "_y"))]


def test_streaming_cuts_batches_at_whole_images(tmp_path):
    path = tmp_path / "backend.sqlite"
    _backend(path, image_numbers=range(1, 11), cells=5)
    batches = list(
        iter_cell_profiles(path, str(path), source="s", batch="b", plate="P", images_per_batch=3)
    )
    assert [b.num_rows for b in batches] == [15, 15, 15, 5]
    assert len({b.schema for b in batches}) == 1


def test_csv_exports_give_the_same_rows(tmp_path):
    path = tmp_path / "backend.sqlite"
    _backend(path)
    folder = tmp_path / "csv"
    folder.mkdir()
    db = sqlite3.connect(path)
    for name in ("Image", "Cells", "Cytoplasm", "Nuclei"):
        cursor = db.execute(f"SELECT * FROM Per_{name}")
        header = [d[0] for d in cursor.description]
        lines = [",".join(header)] + [",".join(str(v) for v in row) for row in cursor]
        (folder / f"{name}.csv").write_text("\n".join(lines) + "\n")
    from_sqlite = pa.Table.from_batches(
        list(iter_cell_profiles(path, "x", source="s", batch="b", plate="P"))
    )
    from_csv = pa.Table.from_batches(
        list(iter_cell_profiles_from_csv(folder, "x", source="s", batch="b", plate="P"))
    )
    assert from_csv.select(["cell_id", "Cells_AreaShape_Area"]).equals(
        from_sqlite.select(["cell_id", "Cells_AreaShape_Area"])
    )


def test_well_profiles_typing_and_plate_check():
    table = pa.table(
        {
            "Metadata_Plate": ["P1", "P1"],
            "Metadata_Well": ["A01", "A02"],
            "Metadata_Site_Count": [4, 4],
            "Cells_AreaShape_Area": [1, 2],
        }
    )
    sink = io.BytesIO()
    pq.write_table(table, sink)
    out = read_well_profiles(sink.getvalue(), "p.parquet", source="s", batch="b", plate="P1")
    assert out.schema.field("Metadata_Site_Count").type == pa.string()
    assert out.schema.field("Cells_AreaShape_Area").type == pa.float64()
    assert out["well_key"].to_pylist() == ["s__P1__A01", "s__P1__A02"]
    with pytest.raises(InputError, match="P2"):
        read_well_profiles(sink.getvalue(), "p.parquet", source="s", batch="b", plate="P2")


def _site_images_from_tiffs(images_dir, site_key: str) -> pa.Table:
    channels = {"AGP": "ch2", "RNA": "ch3", "DNA": "ch5"}
    row = {"site_key": site_key}
    for channel, number in channels.items():
        data = (images_dir / f"r01c01f01p01-{number}sk1fk1fl1.tiff").read_bytes()
        row[f"{channel.lower()}_raw_md5"] = hashlib.md5(data).hexdigest()
    return pa.Table.from_pylist([row])


def test_real_profile_digests_match_the_real_tiffs_and_an_altered_copy_is_caught(
    real_fixtures, tmp_path
):
    fixture = real_fixtures / "cpg0000_BR00117006"
    merged = pq.read_table(fixture / "BR00117006_shrunken.parquet", columns=None)
    digests = image_digests_from_merged(merged, source="source_4")
    key = digests["site_key"][0].as_py()
    assert key == "source_4__BR00117006__A01__1"
    verified = verify_digests(digests, _site_images_from_tiffs(fixture / "images", key))
    assert verified["status"].to_pylist() == ["verified"]
    assert (
        verified["channels_checked"][0].as_py() == "AGP,DNA,RNA"
        or len(verified["channels_checked"][0].as_py().split(",")) == 3
    )

    altered = tmp_path / "images"
    shutil.copytree(fixture / "images", altered)
    tiff = altered / "r01c01f01p01-ch5sk1fk1fl1.tiff"
    data = bytearray(tiff.read_bytes())
    data[-1] ^= 0xFF
    tiff.write_bytes(bytes(data))
    contradicted = verify_digests(digests, _site_images_from_tiffs(altered, key))
    assert contradicted["status"].to_pylist() == ["contradicted"]
    assert contradicted["mismatched_channels"][0].as_py() == "DNA"
    absent = verify_digests(digests, pa.table({"site_key": pa.array([], pa.string())}))
    assert absent["status"].to_pylist() == ["unknown"]


def test_crops_are_centred_padded_and_flagged():
    image = np.arange(2 * 20 * 30, dtype=np.uint16).reshape(2, 20, 30)
    crops, touches = crop_cells(image, np.array([[15.4, 10.7], [0.0, 0.0], [29.9, 19.9]]), size=6)
    assert crops.shape == (3, 2, 6, 6)
    assert touches.tolist() == [False, True, True]
    assert crops[0, 0, 3, 3] == image[0, 10, 15]  # the pixel holding the centre sits at size // 2
    assert crops[1, :, :3, :].sum() == 0 and crops[1, 0, 3, 3] == image[0, 0, 0]
