"""Single-cell profiles: the real shrunken backend, the compartment join, streaming, CSV exports."""

from __future__ import annotations

import sqlite3

import pyarrow as pa
import pytest

from imaging_assets.core.errors import InputError
from imaging_assets.jump.profiles import (
    cell_profiles_schema_from_sqlite,
    iter_cell_profiles,
    iter_cell_profiles_from_csv,
)


def test_real_shrunken_sqlite(real_fixtures):
    """Image and Nuclei only (2 images, 20 nuclei): the cell row is the nucleus."""
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
    assert len(set(table["cell_id"].to_pylist())) == 20
    assert table["object_number"].to_pylist()[:3] == [1, 2, 3]
    assert set(table["well"].to_pylist()) == {"A01"}
    assert table.schema.field("Nuclei_Location_Center_X").type == pa.float64()
    assert not [c for c in table.column_names if c.startswith(("Cells_", "Cytoplasm_"))]
    schema = cell_profiles_schema_from_sqlite(path)
    assert table.schema == schema
    assert schema.metadata[b"imaging_assets:cell_compartment"] == b"Nuclei"


def _backend(path, image_numbers=(1, 2), cells=3):
    """Per_ naming, all four tables; parents point at the reversed object of the same image."""
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE Per_Image (TableNumber, ImageNumber, Image_Metadata_Well, "
        "Image_Metadata_Site, Image_MD5Digest_OrigDNA)"
    )
    db.execute(
        "CREATE TABLE Per_Cells (TableNumber, ImageNumber, ObjectNumber, Cells_Parent_Nuclei, "
        "Cells_AreaShape_Area, Cells_AreaShape_BoundingBoxMinimum_X, Cells_Location_Center_X)"
    )
    db.execute(
        "CREATE TABLE Per_Nuclei (TableNumber, ImageNumber, ObjectNumber, Nuclei_AreaShape_Area)"
    )
    db.execute(
        "CREATE TABLE Per_Cytoplasm (TableNumber, ImageNumber, ObjectNumber, "
        "Cytoplasm_Parent_Cells, Cytoplasm_Parent_Nuclei, Cytoplasm_AreaShape_Area)"
    )
    for image in image_numbers:
        db.execute(
            "INSERT INTO Per_Image VALUES (1, ?, 'A01', ?, ?)", (image, image, f"md5-{image}")
        )
        for obj in range(1, cells + 1):
            parent = cells + 1 - obj
            db.execute(
                "INSERT INTO Per_Cells VALUES (1, ?, ?, ?, ?, ?, ?)",
                (image, obj, obj, 1000 * image + obj, obj - 1, obj + 0.5),
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


def _read(path, **kwargs):
    return pa.Table.from_batches(
        list(iter_cell_profiles(path, str(path), source="s", batch="b", plate="P", **kwargs))
    )


def test_cytoplasm_joins_its_parents_within_the_image(tmp_path):
    path = tmp_path / "backend.sqlite"
    _backend(path)
    table = _read(path)
    assert table.num_rows == 6
    for row in table.to_pylist():
        image, obj = row["image_number"], row["object_number"]
        parent = 4 - obj
        assert row["cell_id"] == f"s__P__A01__{image}__{obj}"
        assert row["Cytoplasm_AreaShape_Area"] == 10 * image + obj
        assert row["Cells_AreaShape_Area"] == 1000 * image + parent  # same image, right parent
        assert row["Nuclei_AreaShape_Area"] == 100 * image + parent
        assert row["Cells_ObjectNumber"] == parent and row["Nuclei_ObjectNumber"] == parent
        assert row["Image_MD5Digest_OrigDNA"] == f"md5-{image}"
        assert row["Cells_Location_Center_X"] == parent + 0.5
    names = table.column_names
    assert "Cells_AreaShape_BoundingBoxMinimum_X" in names
    assert not [c for c in names if c.endswith(("_x", "_y"))]
    assert "ObjectNumber" not in names and "ImageNumber" not in names
    assert table.schema.metadata[b"imaging_assets:cell_compartment"] == b"Cytoplasm"


def test_streaming_cuts_batches_at_whole_images_with_one_schema(tmp_path):
    path = tmp_path / "backend.sqlite"
    _backend(path, image_numbers=range(1, 11), cells=5)
    batches = list(
        iter_cell_profiles(path, str(path), source="s", batch="b", plate="P", images_per_batch=3)
    )
    assert [b.num_rows for b in batches] == [15, 15, 15, 5]
    assert [sorted(set(b["image_number"].to_pylist())) for b in batches][0] == [1, 2, 3]
    assert {b.schema for b in batches} == {cell_profiles_schema_from_sqlite(path)}
    again = _read(path, images_per_batch=4)
    assert again["cell_id"].to_pylist() == pa.Table.from_batches(batches)["cell_id"].to_pylist()
    db = sqlite3.connect(path)  # an open connection works too, and is left open
    from_db = pa.Table.from_batches(
        list(iter_cell_profiles(db, "x", source="s", batch="b", plate="P", images_per_batch=3))
    )
    assert from_db.equals(pa.Table.from_batches(batches))
    assert db.execute("SELECT count(*) FROM Per_Image").fetchone() == (10,)
    db.close()


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
    db.close()
    from_sqlite = _read(path)
    from_csv = pa.Table.from_batches(
        list(iter_cell_profiles_from_csv(folder, "x", source="s", batch="b", plate="P"))
    )
    columns = ["cell_id", "Cells_AreaShape_Area", "Nuclei_AreaShape_Area", "Image_Metadata_Site"]
    assert from_csv.select(columns).equals(from_sqlite.select(columns))


def test_cells_of_another_plate_name_file_and_value(real_fixtures):
    path = real_fixtures / "cpg0016_BR00126114" / "test_BR00126114.sqlite"
    with pytest.raises(InputError, match="BR00126114") as error:
        list(iter_cell_profiles(path, "backend.sqlite", source="s", batch="b", plate="OTHER"))
    assert "backend.sqlite" in str(error.value) and "Image_Metadata_Plate" in str(error.value)
