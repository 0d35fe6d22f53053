"""Single cells in the vector layout: real width, the join outside SQLite, bounded batches, errors."""

from __future__ import annotations

import sqlite3
import tracemalloc

import numpy as np
import pyarrow as pa
import pytest

from imaging_assets.core.errors import InputError
from imaging_assets.jump.profiles import (
    FEATURE_SET,
    FEATURES,
    iter_cell_profile_batches,
    iter_cell_profile_batches_from_csv,
    iter_cell_profiles,
    plan_cell_profiles,
)
from imaging_assets_tests.jump.profiles.synthetic_backend import real_schema, write_backend
from imaging_assets_tests.jump.profiles.test_single_cell import _backend


def _cells(path, **kwargs) -> pa.Table:
    batches = iter_cell_profile_batches(
        path, str(path), source="s", batch="b", plate="P1", **kwargs
    )
    return pa.Table.from_batches(list(batches), schema=plan_cell_profiles(path).schema)


def _matrix(table: pa.Table) -> np.ndarray:
    vectors = table[FEATURES].combine_chunks()
    return vectors.values.to_numpy().reshape(table.num_rows, -1)


@pytest.fixture(scope="module")
def real_width(tmp_path_factory, real_fixtures):
    """3 images x 4 cells in JUMP's real schema: 5,792 object columns over three compartments."""
    path = tmp_path_factory.mktemp("real_width") / "backend.sqlite"
    return write_backend(path, real_schema(real_fixtures), images=3, cells_per_image=4)


def test_real_width_loads_past_sqlites_column_limit(real_width):
    """The former single SQL join failed here: 'too many columns in result set' (> 2,000)."""
    db = sqlite3.connect(real_width)
    columns = {
        t: [r[1] for r in db.execute(f"PRAGMA table_info({t})")]
        for t in ("Per_Cells", "Per_Cytoplasm", "Per_Nuclei")
    }
    assert sum(len(c) for c in columns.values()) > 5000
    cyto = dict(zip(columns["Per_Cytoplasm"], db.execute(
        "SELECT * FROM Per_Cytoplasm WHERE ImageNumber = 2 AND ObjectNumber = 1").fetchone(),
        strict=True))  # fmt: skip
    cells = dict(zip(columns["Per_Cells"], db.execute(
        "SELECT * FROM Per_Cells WHERE ImageNumber = 2 AND ObjectNumber = 4").fetchone(),
        strict=True))  # fmt: skip
    db.close()
    assert cyto["Cytoplasm_Parent_Cells"] == 4  # reversed parents: a positional join would fail

    wide = pa.Table.from_batches(
        list(iter_cell_profiles(real_width, "b", source="s", batch="b", plate="P1"))
    )
    table = _cells(real_width)
    assert table.num_rows == wide.num_rows == 12
    plan = plan_cell_profiles(real_width)
    names = plan.feature_set.names
    assert len(names) > 5000 and len(table.schema) < 80
    assert set(plan.feature_set.compartments) == {"Cells", "Cytoplasm", "Nuclei"}
    row = table.filter(pa.compute.equal(table["cell_id"], "s__P1__A01__2__1")).slice(0, 1)
    values = dict(zip(names, _matrix(row)[0], strict=True))
    for name in ("Cytoplasm_AreaShape_Compactness", "Cytoplasm_Texture_SumVariance_RNA_10_03_256"):
        assert values[name] == cyto[name]
    for name in ("Cells_AreaShape_Area", "Cells_Intensity_MeanIntensity_DNA"):
        assert values[name] == cells[name]
    assert row["Cells_ObjectNumber"][0].as_py() == 4
    wide_row = wide.filter(pa.compute.equal(wide["cell_id"], "s__P1__A01__2__1")).to_pylist()[0]
    assert [wide_row[n] for n in names] == list(values.values())


def test_vector_layout_holds_what_the_wide_layout_held(tmp_path):
    path = tmp_path / "backend.sqlite"
    _backend(path, image_numbers=range(1, 5), cells=4)
    wide = pa.Table.from_batches(
        list(iter_cell_profiles(path, "b", source="s", batch="b", plate="P1"))
    )
    table = _cells(path)
    plan = plan_cell_profiles(path)
    assert table[FEATURE_SET].unique().to_pylist() == [plan.feature_set.id]
    assert plan.feature_set.compartments == ("Cytoplasm", "Cells", "Cells", "Cells", "Nuclei")
    for j, name in enumerate(plan.feature_set.names):
        assert _matrix(table)[:, j].tolist() == wide[name].to_pylist()
    for name in (
        "cell_id",
        "Cells_ObjectNumber",
        "Cytoplasm_Parent_Nuclei",
        "Image_MD5Digest_OrigDNA",
    ):
        assert table[name].equals(wide[name])
    assert table["Cells_Location_Center_X"].equals(wide["Cells_Location_Center_X"])
    assert table.schema.metadata[b"imaging_assets:cell_compartment"] == b"Cytoplasm"


def test_batches_are_whole_images_within_every_limit(tmp_path):
    path = tmp_path / "backend.sqlite"
    _backend(path, image_numbers=range(1, 11), cells=5)
    sizes = [b.num_rows for b in iter_cell_profile_batches(path, "b", source="s", batch="b", plate="P1", cells_per_batch=12)]  # fmt: skip
    assert sizes == [10, 10, 10, 10, 10]
    width = len(plan_cell_profiles(path).feature_set) + 6 + 4
    by_bytes = iter_cell_profile_batches(
        path, "b", source="s", batch="b", plate="P1", max_batch_bytes=8 * width * 15
    )
    assert [b.num_rows for b in by_bytes] == [15, 15, 15, 5]
    tiny = iter_cell_profile_batches(
        path, "b", source="s", batch="b", plate="P1", cells_per_batch=1
    )
    assert [b.num_rows for b in tiny] == [5] * 10  # an image is never split


def test_rows_in_any_order_join_the_same(tmp_path):
    """Objects inserted image-interleaved and in reverse: many runs per image, same cells."""
    ordered, shuffled = tmp_path / "ordered.sqlite", tmp_path / "shuffled.sqlite"
    _backend(ordered, image_numbers=range(1, 5), cells=3)
    db = sqlite3.connect(shuffled)
    db.execute(f"ATTACH '{ordered}' AS o")
    for table in ("Per_Image", "Per_Cells", "Per_Nuclei", "Per_Cytoplasm"):
        db.execute(f"CREATE TABLE {table} AS SELECT * FROM o.{table} WHERE 0")
        db.execute(
            f"INSERT INTO {table} SELECT * FROM o.{table} ORDER BY "
            + ("ImageNumber DESC" if table == "Per_Image" else "ObjectNumber DESC, ImageNumber")
        )
    db.commit()
    db.close()
    assert _cells(shuffled, images_per_batch=3).equals(_cells(ordered, images_per_batch=3))


def test_csv_exports_in_the_vector_layout(tmp_path):
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
    from_csv = pa.Table.from_batches(
        list(iter_cell_profile_batches_from_csv(folder, "x", source="s", batch="b", plate="P1"))
    )
    from_sqlite = _cells(path)
    for name in ("cell_id", FEATURE_SET, FEATURES, "Cells_Parent_Nuclei"):
        assert from_csv[name].equals(from_sqlite[name])


def _broken(tmp_path, sql: str, params=()):
    path = tmp_path / "backend.sqlite"
    _backend(path)
    db = sqlite3.connect(path)
    db.execute(sql, params)
    db.commit()
    db.close()
    return path


def test_a_value_that_is_not_a_number_names_table_column_and_row(tmp_path):
    path = _broken(tmp_path, "UPDATE Per_Nuclei SET Nuclei_AreaShape_Area = 'big' WHERE rowid = 4")
    with pytest.raises(InputError) as error:
        _cells(path)
    assert error.value.column == "Per_Nuclei.Nuclei_AreaShape_Area" and error.value.row == 4
    assert "big" in str(error.value) and str(path) in str(error.value)


def test_empty_text_is_a_missing_value(tmp_path):
    path = _broken(tmp_path, "UPDATE Per_Nuclei SET Nuclei_AreaShape_Area = '' WHERE rowid = 4")
    table = _cells(path)
    nuclei = plan_cell_profiles(path).feature_set.position["Nuclei_AreaShape_Area"]
    assert np.isnan(_matrix(table)[:, nuclei]).sum() == 1


def test_an_object_listed_twice_names_table_and_row(tmp_path):
    path = _broken(tmp_path, "UPDATE Per_Cells SET ObjectNumber = 1 WHERE rowid = 2")
    with pytest.raises(InputError) as error:
        _cells(path)
    assert error.value.column == "Per_Cells.ObjectNumber" and error.value.row == 2


def test_an_image_listed_twice_names_the_row(tmp_path):
    path = _broken(tmp_path, "INSERT INTO Per_Image SELECT * FROM Per_Image WHERE rowid = 1")
    with pytest.raises(InputError) as error:
        _cells(path)
    assert error.value.column == "Per_Image.ImageNumber" and error.value.row == 3


def test_a_missing_parent_leaves_that_compartment_empty(tmp_path):
    path = _broken(tmp_path, "UPDATE Per_Cytoplasm SET Cytoplasm_Parent_Nuclei = 0 WHERE rowid = 1")
    table = _cells(path)
    position = plan_cell_profiles(path).feature_set.position
    first = _matrix(table)[0]
    assert np.isnan(first[position["Nuclei_AreaShape_Area"]])
    assert not np.isnan(first[position["Cells_AreaShape_Area"]])
    assert table["Nuclei_ObjectNumber"][0].as_py() is None


def test_real_shrunken_backend_in_the_vector_layout(real_fixtures):
    path = real_fixtures / "cpg0016_BR00126114" / "test_BR00126114.sqlite"
    batches = list(
        iter_cell_profile_batches(path, str(path), source="source_4", batch="b", plate="BR00126114")
    )
    table = pa.Table.from_batches(batches)
    plan = plan_cell_profiles(path)
    assert table.num_rows == 20 and plan.feature_set.names == (
        "Nuclei_Location_Center_X",
        "Nuclei_Location_Center_Y",
    )
    assert _matrix(table)[0, 0] == 943.512129380054  # stored as TEXT, read exactly
    assert table["Nuclei_Location_Center_X"][0].as_py() == 943.512129380054


@pytest.mark.slow
def test_memory_is_one_batch_whatever_the_cells_and_the_columns(tmp_path, real_fixtures):
    """Peak traced memory (numpy arrays and Python rows) with a 1 MB batch budget: 4x the cells
    or 6x the columns leave it within a batch's worth of the smallest backend's."""
    schema = real_schema(real_fixtures)
    peaks = {}
    for name, width, images in (("small", 100, 24), ("more_cells", 100, 96), ("wider", 600, 96)):
        path = write_backend(
            tmp_path / f"{name}.sqlite",
            schema.narrowed(width),
            images=images,
            cells_per_image=20,
            distinct_images=4,
        )
        tracemalloc.start()
        for batch in iter_cell_profile_batches(
            path,
            "b",
            source="s",
            batch="b",
            plate="P1",
            images_per_batch=1000,
            max_batch_bytes=2**20,
        ):
            del batch
        peaks[name] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peaks["more_cells"] < peaks["small"] + 2**20, peaks
    assert peaks["wider"] < peaks["small"] + 2 * 2**20, peaks
