"""A backend whose ImageNumber / ObjectNumber cannot join fails instead of dropping cells.

Small SQLite files built here (the Per_ layout of test_single_cell), each broken in one place.
"""

from __future__ import annotations

import sqlite3

import pyarrow as pa
import pytest

from imaging_assets.core.errors import InputError
from imaging_assets.jump.profiles import iter_cell_profiles, iter_cell_profiles_from_csv
from imaging_assets_tests.jump.profiles.test_single_cell import _backend


def _read(path):
    return pa.Table.from_batches(
        list(iter_cell_profiles(path, "backend.sqlite", source="s", batch="b", plate="P"))
    )


def _broken(tmp_path, sql: str, params=()):
    path = tmp_path / "backend.sqlite"
    _backend(path)  # 2 images x 3 objects in each of Cells, Nuclei, Cytoplasm
    db = sqlite3.connect(path)
    db.execute(sql, params)
    db.commit()
    db.close()
    return path


def _error(path) -> InputError:
    with pytest.raises(InputError) as error:
        _read(path)
    assert "backend.sqlite" in str(error.value)
    return error.value


@pytest.mark.parametrize("table", ["Per_Cytoplasm", "Per_Cells", "Per_Nuclei"])
@pytest.mark.parametrize("value", [None, "two", "2.5", ""])
def test_bad_image_number_of_an_object_names_table_column_and_row(tmp_path, table, value):
    path = _broken(tmp_path, f"UPDATE {table} SET ImageNumber = ? WHERE rowid = 5", (value,))
    error = _error(path)
    assert error.column == f"{table}.ImageNumber" and error.row == 5
    assert "ObjectNumber 2" in str(error)  # rowid 5 is object 2 of image 2


@pytest.mark.parametrize("value", [None, "one"])
def test_bad_image_number_in_the_image_table(tmp_path, value):
    path = _broken(tmp_path, "UPDATE Per_Image SET ImageNumber = ? WHERE rowid = 2", (value,))
    error = _error(path)
    assert error.column == "Per_Image.ImageNumber" and error.row == 2


@pytest.mark.parametrize("table", ["Per_Cytoplasm", "Per_Cells", "Per_Nuclei"])
def test_null_object_number_names_table_column_and_row(tmp_path, table):
    path = _broken(tmp_path, f"UPDATE {table} SET ObjectNumber = NULL WHERE rowid = 3")
    error = _error(path)
    assert error.column == f"{table}.ObjectNumber" and error.row == 3


def test_text_image_number_that_does_not_match_the_image_table(tmp_path):
    """'1' as TEXT beside INTEGER 1 in untyped columns: SQLite's join would skip the cell."""
    path = _broken(tmp_path, "UPDATE Per_Cytoplasm SET ImageNumber = '1' WHERE rowid = 2")
    error = _error(path)
    assert error.column == "Per_Cytoplasm.ImageNumber" and error.row == 2
    assert "Per_Image" in str(error)


def test_object_of_an_image_the_image_table_does_not_list(tmp_path):
    path = _broken(tmp_path, "UPDATE Per_Cytoplasm SET ImageNumber = 7 WHERE rowid = 4")
    error = _error(path)
    assert error.column == "Per_Cytoplasm.ImageNumber" and error.row == 4
    assert "7" in str(error)


def test_integers_stored_as_text_everywhere_still_join(tmp_path):
    """The real shrunken backend stores ids as TEXT: consistent text is fine."""
    path = tmp_path / "backend.sqlite"
    _backend(path)
    db = sqlite3.connect(path)
    for table in ("Per_Image", "Per_Cells", "Per_Nuclei", "Per_Cytoplasm"):
        db.execute(f"UPDATE {table} SET ImageNumber = CAST(ImageNumber AS TEXT)")
    db.commit()
    db.close()
    assert _read(path).num_rows == 6


def test_csv_export_with_a_bad_image_number(tmp_path):
    folder = tmp_path / "csv"
    folder.mkdir()
    (folder / "Image.csv").write_text(
        "ImageNumber,Image_Metadata_Well,Image_Metadata_Site\n1,A01,1\n2,A01,2\n"
    )
    (folder / "Nuclei.csv").write_text(
        "ImageNumber,ObjectNumber,Nuclei_AreaShape_Area\n1,1,10\n01,2,11\n,1,12\n"
    )
    with pytest.raises(InputError) as error:
        list(iter_cell_profiles_from_csv(folder, "export", source="s", batch="b", plate="P"))
    assert error.value.column == "Nuclei.ImageNumber" and error.value.row == 3


def test_the_real_shrunken_backend_still_loads(real_fixtures):
    path = real_fixtures / "cpg0016_BR00126114" / "test_BR00126114.sqlite"
    batches = list(
        iter_cell_profiles(path, str(path), source="source_4", batch="b", plate="BR00126114")
    )
    assert sum(b.num_rows for b in batches) == 20


@pytest.mark.parametrize(
    ("column", "value"), [("Image_Metadata_Well", "A01__2"), ("Image_Metadata_Site", "1\n")]
)
def test_well_or_site_that_cannot_be_a_key_part(tmp_path, column, value):
    path = _broken(tmp_path, f"UPDATE Per_Image SET {column} = ? WHERE rowid = 2", (value,))
    error = _error(path)
    assert error.column == column and "image 2" in str(error)
