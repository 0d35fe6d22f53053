"""Profiles by feature name from real Lance datasets: vector layout, former layout, both at once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import lance
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from imaging_assets.jump.profiles import (
    FeatureSet,
    ensure_feature_set,
    iter_cell_profile_batches,
    iter_cell_profiles,
    plan_cell_profiles,
)
from imaging_assets.jump.profiles.layout import features_array
from imaging_assets.read.profiles import (
    cell_profile,
    cell_profiles,
    feature_matrix,
    to_wide_parquet,
)
from imaging_assets_tests.jump.profiles.test_single_cell import _backend

SMALL = ("s", "b", "P")  # source, batch, plate of the small Per_ backend
REAL = ("source_4", "b", "BR00126114")


def _read(path, keys, wide=False) -> pa.Table:
    source, batch, plate = keys
    read = iter_cell_profiles if wide else iter_cell_profile_batches
    return pa.Table.from_batches(
        list(read(path, str(path), source=source, batch=batch, plate=plate))
    )


@pytest.fixture()
def backends(tmp_path, real_fixtures):
    small = tmp_path / "small.sqlite"
    _backend(small, image_numbers=(1, 2, 3), cells=3)
    return small, real_fixtures / "cpg0016_BR00126114" / "test_BR00126114.sqlite"


def _write(uri: str, tables: list[pa.Table]) -> lance.LanceDataset:
    table = pa.concat_tables(tables, promote_options="default")
    lance.write_dataset(table, uri)
    dataset = lance.dataset(uri)
    dataset.create_scalar_index("cell_id", "BTREE")
    return lance.dataset(uri)


@pytest.fixture()
def vector_lake(tmp_path, backends):
    """Two plates with different feature sets in one cell_profiles.lance, sets registered."""
    lake = tmp_path / "lake"
    lake.mkdir()
    for path in backends:
        ensure_feature_set(str(lake / "feature_sets.lance"), plan_cell_profiles(path).feature_set)
    tables = [_read(backends[0], SMALL), _read(backends[1], REAL)]
    return _write(str(lake / "cell_profiles.lance"), tables)


@pytest.fixture()
def wide(backends) -> pa.Table:
    """The same cells in the former layout: the reference values."""
    return pa.concat_tables(
        [_read(backends[0], SMALL, wide=True), _read(backends[1], REAL, wide=True)],
        promote_options="default",
    )


@pytest.fixture()
def wide_lake(tmp_path, wide):
    return _write(str(tmp_path / "old" / "cell_profiles.lance"), [wide])


def _by_cell(table: pa.Table, cell_id: str) -> dict:
    return table.filter(pc.equal(table["cell_id"], cell_id)).to_pylist()[0]


@pytest.mark.parametrize("layout", ["vector", "wide"])
def test_named_features_across_plates_with_different_sets(layout, vector_lake, wide_lake, wide):
    dataset = vector_lake if layout == "vector" else wide_lake
    names = ["Cells_AreaShape_Area", "Nuclei_Location_Center_X", "Nuclei_AreaShape_Area"]
    table = cell_profiles(dataset, features=names, columns=["cell_id", "plate"])
    assert table.column_names == ["cell_id", "plate", *names]
    assert table.num_rows == wide.num_rows == 29
    for cell_id in ("s__P__A01__2__3", "source_4__BR00126114__A01__2__7"):
        got, expected = _by_cell(table, cell_id), _by_cell(wide, cell_id)
        assert [got[n] for n in names] == [expected.get(n) for n in names]
    assert _by_cell(table, "s__P__A01__2__3")["Nuclei_Location_Center_X"] is None  # not in set
    only = cell_profiles(dataset, "plate = 'P'", features=["Cells_AreaShape_Area"])
    assert only.num_rows == 9 and "Cells_AreaShape_Area" in only.column_names
    with pytest.raises(KeyError, match="Cells_Typo"):
        cell_profiles(dataset, features=["Cells_Typo"])


@pytest.mark.parametrize("layout", ["vector", "wide"])
def test_feature_matrix_of_a_plate(layout, vector_lake, wide_lake, backends):
    dataset = vector_lake if layout == "vector" else wide_lake
    matrix, names = feature_matrix(dataset, "plate = 'P'")
    expected = _read(backends[0], SMALL, wide=True)
    assert set(plan_cell_profiles(backends[0]).feature_set.names) <= set(names)
    rows = cell_profiles(dataset, "plate = 'P'", columns=["cell_id"])["cell_id"].to_pylist()
    order = [expected["cell_id"].to_pylist().index(c) for c in rows]
    for name in plan_cell_profiles(backends[0]).feature_set.names:
        column = expected[name].to_numpy(zero_copy_only=False)[order]
        assert np.array_equal(matrix[:, names.index(name)], column, equal_nan=True)
    two, two_names = feature_matrix(
        dataset, features=["Nuclei_AreaShape_Area", "Cells_AreaShape_Area"]
    )
    assert two.shape == (29, 2) and two_names == ["Nuclei_AreaShape_Area", "Cells_AreaShape_Area"]
    assert np.isnan(two[:, 1]).sum() == 20  # the real plate has no Cells compartment


@pytest.mark.parametrize("layout", ["vector", "wide"])
def test_one_cell_by_id(layout, vector_lake, wide_lake, wide, backends):
    dataset = vector_lake if layout == "vector" else wide_lake
    for cell_id, path in (
        ("s__P__A01__3__1", backends[0]),
        ("source_4__BR00126114__A01__1__1", backends[1]),
    ):
        cell = cell_profile(dataset, cell_id)
        expected = _by_cell(wide, cell_id)
        names = ["cell_id", "site_key", "plate", "object_number"]
        names += list(plan_cell_profiles(path).feature_set.names)
        assert {k: cell[k] for k in names} == {k: expected[k] for k in names}
    asked = cell_profile(dataset, "s__P__A01__3__1", ["cell_id", "Image_MD5Digest_OrigDNA"])
    assert (
        asked["Image_MD5Digest_OrigDNA"] == "md5-3" and asked["Cells_AreaShape_Area"] == 3003.0
    )  # its parent: Cells 3
    assert cell_profile(dataset, "source_4__BR00126114__A01__1__1")[
        "Nuclei_Location_Center_X"
    ] == pytest.approx(943.512129380054, abs=0)
    with pytest.raises(KeyError, match="nope"):
        cell_profile(dataset, "nope")


@pytest.mark.parametrize("layout", ["vector", "wide"])
def test_wide_parquet_for_cytotable_and_pycytominer(layout, vector_lake, wide_lake, wide, tmp_path):
    dataset = vector_lake if layout == "vector" else wide_lake
    path = tmp_path / "plate.parquet"
    assert to_wide_parquet(dataset, path, "plate = 'BR00126114'") == 20
    table = pq.read_table(path)
    names = table.column_names
    assert {"Metadata_Plate", "Metadata_Well", "Metadata_ObjectNumber", "Metadata_cell_id"} <= set(
        names
    )
    assert "cell_id" not in names and "features" not in names
    assert table.schema.field("Nuclei_Location_Center_Y").type == pa.float64()
    row = _by_cell(
        table.rename_columns([n.replace("Metadata_cell_id", "cell_id") for n in names]),
        "source_4__BR00126114__A01__2__1",
    )
    expected = _by_cell(wide, "source_4__BR00126114__A01__2__1")
    assert row["Nuclei_Location_Center_Y"] == expected["Nuclei_Location_Center_Y"]


def test_a_dataset_holding_both_layouts(tmp_path, backends, wide):
    """A former-layout dataset that gained the vector columns, then a plate in the new layout."""
    lake = tmp_path / "lake"
    uri = str(lake / "cell_profiles.lance")
    old = _read(backends[1], REAL, wide=True)
    dataset = _write(uri, [old])
    new = _read(backends[0], SMALL)
    ensure_feature_set(
        str(lake / "feature_sets.lance"), plan_cell_profiles(backends[0]).feature_set
    )
    dataset.add_columns([f for f in new.schema if f.name not in dataset.schema.names])
    dataset = lance.dataset(uri)
    aligned = pa.table(
        {
            f.name: new[f.name] if f.name in new.column_names else pa.nulls(new.num_rows, f.type)
            for f in dataset.schema
        },
        schema=dataset.schema,
    )
    lance.write_dataset(aligned, uri, mode="append")
    dataset = lance.dataset(uri)
    names = ["Nuclei_Location_Center_X", "Cells_AreaShape_Area"]
    table = cell_profiles(dataset, features=names, columns=["cell_id"])
    for cell_id in ("s__P__A01__1__2", "source_4__BR00126114__A01__1__4"):
        expected = _by_cell(wide, cell_id)
        assert [_by_cell(table, cell_id)[n] for n in names] == [expected.get(n) for n in names]
    matrix, got = feature_matrix(dataset, features=names)
    assert matrix.shape == (29, 2) and not np.isnan(matrix[:, 0]).all()
    assert (
        cell_profile(dataset, "source_4__BR00126114__A01__1__4")["Nuclei_Location_Center_X"]
        == (_by_cell(wide, "source_4__BR00126114__A01__1__4")["Nuclei_Location_Center_X"])
    )


def test_real_features_round_trip_exactly(tmp_path, real_fixtures):
    """The real CytoTable profile (5,792 compartment features, float64) through the vector
    layout and back by name, bit for bit; float32 would not be."""
    real = pq.read_table(real_fixtures / "cpg0000_BR00117006" / "BR00117006_shrunken.parquet")
    names = [
        f.name
        for f in real.schema
        if f.name.startswith(("Cells_", "Cytoplasm_", "Nuclei_"))
        and (pa.types.is_floating(f.type) or pa.types.is_integer(f.type))
    ]
    assert len(names) > 5000
    feature_set = FeatureSet.from_names(names)
    matrix = np.column_stack([real[n].to_numpy().astype(np.float64) for n in names])
    lake = tmp_path / "lake"
    ensure_feature_set(str(lake / "feature_sets.lance"), feature_set)
    cells = pa.table(
        {
            "cell_id": [f"c{i}" for i in range(real.num_rows)],
            "plate": real["Metadata_Plate"],
            "feature_set": [feature_set.id] * real.num_rows,
            "features": features_array(matrix),
        }
    )
    dataset = _write(str(lake / "cell_profiles.lance"), [cells])
    back, back_names = feature_matrix(dataset)
    assert back_names == names and np.array_equal(back, matrix)
    table = cell_profiles(dataset, features=names[:3])
    assert table[names[2]].to_pylist() == matrix[:, 2].tolist()
    assert not np.array_equal(matrix.astype(np.float32).astype(np.float64), matrix)


@pytest.mark.s3
def test_on_s3_racing_writers_then_reads_by_name(s3_server, s3_bucket, backends):
    """The registry and the reads on a real S3 server: sets found beside the dataset, with the
    dataset's own storage options."""
    options = s3_server.storage_options()
    root = f"s3://{s3_bucket}/lake"
    plan = plan_cell_profiles(backends[0])
    with ThreadPoolExecutor(4) as pool:
        list(
            pool.map(
                lambda _: ensure_feature_set(
                    f"{root}/feature_sets.lance", plan.feature_set, options
                ),
                range(4),
            )
        )
    cells = _read(backends[0], SMALL)
    lance.write_dataset(cells, f"{root}/cell_profiles.lance", storage_options=options)
    dataset = lance.dataset(f"{root}/cell_profiles.lance", storage_options=options)
    table = cell_profiles(dataset, "image_number = 2", features=["Nuclei_AreaShape_Area"])
    assert table["Nuclei_AreaShape_Area"].to_pylist() == [203.0, 202.0, 201.0]
    assert cell_profile(dataset, "s__P__A01__1__1")["Cells_AreaShape_Area"] == 1003.0
