"""The manifest: rows and sizes from delimiter listings, incremental, the users' JSON shape."""

from __future__ import annotations

import shutil

import pytest

from imaging_assets.core.errors import InputError
from imaging_assets.core.stores import open_store
from imaging_assets.demo.gallery.stacks import generate_stacks, slice_name
from imaging_assets.stacks.layout import LayoutRules
from imaging_assets.stacks.manifest import scan


@pytest.fixture()
def collection(tmp_path):
    return generate_stacks(tmp_path / "collection")


def test_rows_and_sizes(collection):
    result = scan(open_store(collection.root), LayoutRules())
    manifest = result.manifest
    assert manifest.specimen_names == ["neuron_001", "neuron_002", "neuron_003", "neuron_101"]
    rows = {r["specimen"]: r for r in manifest.specimens.to_pylist()}
    assert rows["neuron_101"]["split"] == "TEST_DATA_SET"
    assert rows["neuron_001"]["split"] == "train"
    assert rows["neuron_001"]["skeleton_key"] == "neuron_001/neuron_001.swc"
    assert rows["neuron_003"]["skeleton_key"] is None
    assert rows["neuron_101"]["prefix"] == "TEST_DATA_SET/neuron_101/"
    for name, row in rows.items():
        folder = collection.folders[name]
        on_disk = sorted(folder.iterdir())
        assert row["files"] == len(on_disk)
        assert row["bytes"] == sum(p.stat().st_size for p in on_disk)
        assert row["slices"] == 6 and (row["z_min"], row["z_max"]) == (0, 5)
    files = manifest.files.to_pylist()
    one = next(f for f in files if f["key"] == f"neuron_001/{slice_name('neuron_001', 3)}")
    assert one["role"] == "slice" and one["z"] == 3
    assert one["size"] == collection.slice_path("neuron_001", 3).stat().st_size
    assert one["last_modified"] is not None
    swc = next(f for f in files if f["key"].endswith(".swc"))
    assert swc["role"] == "skeleton" and swc["z"] is None
    # one delimiter listing of the root, one of TEST_DATA_SET/, one listing per specimen
    assert result.requests == 2 + 4


def test_export_json_in_the_users_shape(collection):
    export = scan(open_store(collection.root), LayoutRules()).manifest.export_json()
    assert export["neuron_001"]["swc"] == "neuron_001/neuron_001.swc"
    assert export["neuron_101"]["swc"] is None
    assert export["neuron_101"]["imagestack"] == [
        f"TEST_DATA_SET/neuron_101/{slice_name('neuron_101', z)}" for z in range(6)
    ]


def test_totals_and_size_table(collection):
    manifest = scan(open_store(collection.root), LayoutRules()).manifest
    totals = manifest.totals_by_split()
    assert totals["train"]["specimens"] == 3 and totals["train"]["skeletons"] == 2
    assert totals["TEST_DATA_SET"]["slices"] == 6
    sizes = [r["bytes"] for r in manifest.size_table()]
    assert sizes == sorted(sizes, reverse=True)


def test_incremental_lists_only_the_new_specimen(collection):
    store = open_store(collection.root)
    first = scan(store, LayoutRules())
    again = scan(store, LayoutRules(), first.manifest)
    assert again.new == [] and again.listed == []
    assert again.requests == 2  # only the two delimiter listings
    assert again.manifest.files.equals(first.manifest.files)

    shutil.copytree(collection.folders["neuron_003"], collection.root / "neuron_004")
    third = scan(store, LayoutRules(), again.manifest)
    assert third.new == ["neuron_004"] and third.listed == ["neuron_004"]
    assert third.requests == 2 + 1
    assert third.manifest.specimens.num_rows == 5

    refreshed = scan(store, LayoutRules(), third.manifest, refresh=True)
    assert refreshed.requests == 2 + 5 and refreshed.new == []

    shutil.rmtree(collection.root / "neuron_004")
    fourth = scan(store, LayoutRules(), refreshed.manifest)
    assert fourth.gone == ["neuron_004"] and fourth.manifest.specimens.num_rows == 4


def test_max_new_bounds_the_listing(collection):
    store = open_store(collection.root)
    first = scan(store, LayoutRules(), max_new=3)
    assert len(first.listed) == 3
    second = scan(store, LayoutRules(), first.manifest, max_new=3)
    assert len(second.new) == 1 and second.new[0] not in first.listed
    assert second.manifest.specimens.num_rows == 4


def test_layout_rules_are_configuration(tmp_path):
    root = tmp_path / "other"
    (root / "data" / "HOLDOUT" / "s1").mkdir(parents=True)
    (root / "data" / "s2").mkdir(parents=True)
    (root / "data" / "s2" / "img_z12.tiff").write_bytes(b"x")
    (root / "data" / "s2" / "notes.txt").write_bytes(b"x")
    rules = LayoutRules(prefix="data", split_folders=("HOLDOUT",), z_pattern=r"_z(\d+)\.")
    manifest = scan(open_store(root), rules).manifest
    assert manifest.specimen("s1")["split"] == "HOLDOUT"
    files = {f["key"]: f for f in manifest.files.to_pylist()}
    assert files["data/s2/img_z12.tiff"]["z"] == 12
    assert files["data/s2/notes.txt"]["role"] == "other"


def test_specimen_names_must_be_partition_keys(tmp_path):
    (tmp_path / "a,b").mkdir()
    with pytest.raises(InputError, match="cannot be a partition key"):
        scan(open_store(tmp_path), LayoutRules())
