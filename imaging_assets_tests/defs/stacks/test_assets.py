"""The stacks assets through Dagster's `materialize`, the sensor, and the read API."""

from __future__ import annotations

import base64
import io
import shutil

import lance
import numpy as np
import pytest
import tifffile
from dagster import SensorResult, SkipReason, build_sensor_context, instance_for_test, materialize
from PIL import Image

from imaging_assets.core.units import human_bytes
from imaging_assets.defs.common.stores import LakeResource
from imaging_assets.defs.stacks import sensors as stacks_sensors
from imaging_assets.defs.stacks.assets import (
    STACKS_ASSETS,
    skeletons,
    specimen_manifest,
    zstack_projections,
    zstack_slices,
)
from imaging_assets.defs.stacks.partitions import SPECIMENS_PARTITIONS_NAME
from imaging_assets.defs.stacks.resources import StackCollectionResource
from imaging_assets.defs.stacks.sensors import new_specimens_sensor
from imaging_assets.demo.gallery.stacks import generate_stacks
from imaging_assets.processing import codecs
from imaging_assets.processing.quality import measure
from imaging_assets.read import open_lake
from imaging_assets.stacks.render import EDGE, GREYS
from imaging_assets.stacks.swc import parse_swc

PER_SPECIMEN = [zstack_slices, zstack_projections, skeletons]


@pytest.fixture()
def setup(tmp_path):
    collection = generate_stacks(tmp_path / "collection")
    resources = {
        "stack_collection": StackCollectionResource(name="sample", root=str(collection.root)),
        "lake": LakeResource(root=str(tmp_path / "lake")),
    }
    with instance_for_test() as instance:
        yield collection, resources, instance, tmp_path / "lake"


def _metadata(result, asset_name: str) -> dict:
    [event] = [
        e for e in result.get_asset_materialization_events() if e.asset_key.path[-1] == asset_name
    ]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def _specimen(instance, resources, key, run_config=None, raise_on_error=True):
    return materialize(
        STACKS_ASSETS,
        selection=PER_SPECIMEN,
        partition_key=key,
        instance=instance,
        resources=resources,
        run_config=run_config,
        raise_on_error=raise_on_error,
    )


def test_manifest_registers_partitions_and_reports(setup):
    collection, resources, instance, lake = setup
    result = materialize([specimen_manifest], instance=instance, resources=resources)
    meta = _metadata(result, "specimen_manifest")
    assert sorted(instance.get_dynamic_partitions(SPECIMENS_PARTITIONS_NAME)) == [
        "neuron_001",
        "neuron_002",
        "neuron_003",
        "neuron_101",
    ]
    assert meta["specimens"] == 4 and meta["partitions_added"] == 4
    assert meta["export"]["neuron_001"]["swc"] == "neuron_001/neuron_001.swc"
    assert len(meta["export"]["neuron_002"]["imagestack"]) == 6
    assert meta["totals_by_split"]["TEST_DATA_SET"]["specimens"] == 1
    assert "| neuron_" in meta["sizes"]
    on_disk = sum(p.stat().st_size for p in collection.root.rglob("*") if p.is_file())
    assert meta["size"] == human_bytes(on_disk) and meta["size"].endswith(" KB")
    assert "| size |" in meta["sizes"] and " KB |" in meta["sizes"]
    assert (lake / "stack_manifests" / "sample" / "manifest.json").is_file()

    shutil.copytree(collection.folders["neuron_001"], collection.root / "neuron_005")
    again = _metadata(
        materialize([specimen_manifest], instance=instance, resources=resources),
        "specimen_manifest",
    )
    assert again["specimens_listed"] == 1 and again["partitions_added"] == 1
    assert again["listing_requests"] == 3  # root, TEST_DATA_SET/, neuron_005/
    assert "neuron_005" in instance.get_dynamic_partitions(SPECIMENS_PARTITIONS_NAME)
    refreshed = materialize(
        [specimen_manifest],
        instance=instance,
        resources=resources,
        run_config={"ops": {"specimen_manifest": {"config": {"refresh": True}}}},
    )
    assert _metadata(refreshed, "specimen_manifest")["specimens_listed"] == 5


def test_specimen_assets_write_the_lake(setup):
    collection, resources, instance, lake = setup
    materialize([specimen_manifest], instance=instance, resources=resources)
    result = _specimen(instance, resources, "neuron_001")
    slices = _metadata(result, "zstack_slices")
    assert slices["slices"] == 6 and slices["failures"] == 0 and slices["height"] == 96
    raw_bytes = sum(collection.slice_path("neuron_001", z).stat().st_size for z in range(6))
    assert slices["raw_read"] == human_bytes(raw_bytes)  # "148.1 KB", not 148090
    projection = _metadata(result, "zstack_projections")
    assert projection["projection"].startswith(
        "![min projection of neuron_001 with its skeleton](data:image/png;base64,"
    )
    assert projection["kind"] == "min" and projection["skeleton"].startswith("skeleton drawn")
    skeleton_meta = _metadata(result, "skeletons")
    assert skeleton_meta["nodes"] > 10 and skeleton_meta["stats"]["roots"] == 1
    assert skeleton_meta["skeleton"].startswith(f"{skeleton_meta['nodes']} nodes from ")

    read = open_lake(str(lake))
    stack = read.stack("neuron_001")
    raw = tifffile.imread(collection.slice_path("neuron_001", 4))
    np.testing.assert_array_equal(
        stack.window(z=4, y=slice(20, 70), x=slice(30, 90)), raw[20:70, 30:90]
    )
    assert stack.provenance["slices"][0]["dagster_run_id"] == result.run_id
    nodes = read.skeleton("neuron_001")
    swc = (collection.folders["neuron_001"] / "neuron_001.swc").read_text()
    assert nodes.num_rows == sum(
        1 for line in swc.splitlines() if line and not line.startswith("#")
    )
    assert set(nodes["raw_sha256"].to_pylist()) and nodes["raw_size"][0].as_py() == len(
        swc.encode()
    )
    ds = lance.dataset(str(lake / "zstack_slices.lance"))
    properties = [t.transaction_properties or {} for t in ds.get_transactions(5) if t]
    assert {"dagster_run_id": result.run_id, "partition": "neuron_001"} in [
        {k: p.get(k) for k in ("dagster_run_id", "partition")} for p in properties
    ]
    leases = lake / "_leases" / "zstack_slices" / "neuron_001"
    assert leases.is_dir()  # the write held the specimen's lease

    # the traced projection is a few hundred pixels at most and lands in its own table
    projections_ds = lance.dataset(str(lake / "zstack_projections.lance"))
    projections = projections_ds.to_table()
    assert projections.num_rows == 1 and projections["proj_width"][0].as_py() <= 512


def _swc_xy(collection, specimen: str) -> tuple[np.ndarray, np.ndarray]:
    swc = collection.folders[specimen] / f"{specimen}.swc"
    nodes, _ = parse_swc(swc.read_text(), str(swc))
    return nodes["x"].to_numpy(), nodes["y"].to_numpy()


def test_projection_shows_the_neuron_with_its_skeleton(setup):
    collection, resources, instance, lake = setup
    materialize([specimen_manifest], instance=instance, resources=resources)
    result = _specimen(instance, resources, "neuron_001")
    meta = _metadata(result, "zstack_projections")
    row = lance.dataset(str(lake / "zstack_projections.lance")).to_table().to_pylist()[0]
    assert row["kind"] == "min" and "brightfield" in row["kind_reason"]
    # 128 x 96 slices, not reduced, the picture enlarged 4x to 512 x 384
    assert (row["factor"], row["png_scale"]) == (1, 4.0)
    picture = Image.open(io.BytesIO(row["png"]))
    assert picture.size == (512, 384) and meta["png_size"].startswith("512x384 px, ")
    encoded = meta["projection"].split("base64,", 1)[1].split(")", 1)[0]
    assert base64.b64decode(encoded) == row["png"]  # the metadata shows what the table holds

    x, y = _swc_xy(collection, "neuron_001")
    assert row["skeleton_nodes_drawn"] == len(x)
    # stack pixel x spans [x - 0.5, x + 0.5]: 4 PNG pixels, 4x + 0.5 .. 4x + 2.5 rounded
    indices = np.asarray(picture)
    on_edge = indices[np.rint(4 * y + 1.5).astype(int), np.rint(4 * x + 1.5).astype(int)] == EDGE
    assert on_edge.mean() > 0.95, on_edge.mean()  # every edge passes through its two nodes
    assert (indices < GREYS).mean() > 0.9  # the overlay is thin: the picture is the projection

    # and the skeleton lies on the neuron: the projection is dark under the nodes
    projection = codecs.decode(
        row["pixels"], (row["proj_height"], row["proj_width"]), row["dtype"], row["pixels_codec"]
    )
    under = projection[np.rint(y).astype(int), np.rint(x).astype(int)]
    assert np.median(under) < np.percentile(projection, 5) < np.median(projection)


def test_best_focused_slice_is_recorded(setup):
    collection, resources, instance, lake = setup
    materialize([specimen_manifest], instance=instance, resources=resources)
    result = _specimen(instance, resources, "neuron_002")
    focus = [
        measure(tifffile.imread(collection.slice_path("neuron_002", z)))["FocusScore"]
        for z in range(6)
    ]
    best = int(np.argmax(focus))
    slices = _metadata(result, "zstack_slices")
    assert slices["best_focus_z"] == best and slices["best_focus_feature"] == (
        "ImageQuality_FocusScore_Slice"
    )
    assert slices["focus_by_z"] == {str(z): float(f"{v:.6g}") for z, v in enumerate(focus)}
    assert slices["quality_metric_set"] == "cellprofiler.MeasureImageQuality/1"
    assert slices["quality_ms_per_slice"] > 0
    assert _metadata(result, "zstack_projections")["best_focus_z"] == best
    row = lance.dataset(str(lake / "zstack_projections.lance")).to_table().to_pylist()[0]
    assert row["best_focus_z"] == best
    assert row["best_focus_feature"] == "ImageQuality_FocusScore_Slice"
    assert open_lake(str(lake)).stack("neuron_002").best_focus_z == best


def test_specimen_without_skeleton_and_test_split(setup):
    _, resources, instance, lake = setup
    materialize([specimen_manifest], instance=instance, resources=resources)
    result = _specimen(instance, resources, "neuron_101")
    skeleton_meta = _metadata(result, "skeletons")
    assert skeleton_meta["skeleton"] == "no skeleton" and "nodes" not in skeleton_meta
    projection = _metadata(result, "zstack_projections")
    assert projection["skeleton"] == "no skeleton"
    assert projection["projection"].startswith("![min projection of neuron_101](data:")
    row = lance.dataset(str(lake / "zstack_projections.lance")).to_table().to_pylist()[0]
    assert row["skeleton_nodes_drawn"] is None
    assert np.asarray(Image.open(io.BytesIO(row["png"]))).max() < GREYS  # nothing drawn
    rows = lance.dataset(str(lake / "zstack_slices.lance")).to_table(columns=["split"])
    assert set(rows["split"].to_pylist()) == {"TEST_DATA_SET"}
    with pytest.raises(KeyError):
        open_lake(str(lake)).skeleton("neuron_101")


def test_failed_slice_fails_the_run_and_nothing_is_written(setup):
    collection, resources, instance, lake = setup
    materialize([specimen_manifest], instance=instance, resources=resources)
    _specimen(instance, resources, "neuron_001")
    version = lance.dataset(str(lake / "zstack_slices.lance")).version
    collection.slice_path("neuron_001", 2).write_bytes(b"")
    failed = materialize(
        STACKS_ASSETS,
        selection=[zstack_slices],
        partition_key="neuron_001",
        instance=instance,
        resources=resources,
        raise_on_error=False,
    )
    assert not failed.success
    ds = lance.dataset(str(lake / "zstack_slices.lance"))
    assert ds.version == version and ds.count_rows() == 6

    tolerated = materialize(
        STACKS_ASSETS,
        selection=[zstack_slices],
        partition_key="neuron_001",
        instance=instance,
        resources=resources,
        run_config={
            "ops": {
                "zstack_slices": {
                    "config": {"tolerate_failures": True, "max_removed_fraction": 0.5}
                }
            }
        },
    )
    meta = _metadata(tolerated, "zstack_slices")
    assert meta["failures"] == 1 and meta["failed_slices"][0]["kind"] == "empty"
    assert lance.dataset(str(lake / "zstack_slices.lance")).count_rows() == 5


def test_rerun_dropping_slices_is_refused_by_default(setup):
    collection, resources, instance, lake = setup
    materialize([specimen_manifest], instance=instance, resources=resources)
    _specimen(instance, resources, "neuron_003")
    collection.slice_path("neuron_003", 5).unlink()  # the last slice: no gap, just fewer
    result = materialize(
        STACKS_ASSETS,
        selection=[zstack_slices],
        partition_key="neuron_003",
        instance=instance,
        resources=resources,
        raise_on_error=False,
    )
    assert not result.success
    assert lance.dataset(str(lake / "zstack_slices.lance")).count_rows() == 6


def test_projection_pixels_are_compressed_on_disk(setup):
    """pylance 14's format 2.2 stores a page with a single value uncompressed whatever its size
    (measured: 64 KB to 4 MB, ratio 1.0); projections, one row per commit, carry zstd in the cell
    (`pixels_codec`), kept only when smaller than the raw projection."""
    _, resources, instance, lake = setup
    materialize([specimen_manifest], instance=instance, resources=resources)
    result = _specimen(instance, resources, "neuron_001")
    assert result.success
    row = lance.dataset(str(lake / "zstack_projections.lance")).to_table().to_pylist()[0]
    assert row["pixels_codec"] == codecs.ZSTD
    shape = (row["proj_height"], row["proj_width"])
    array = codecs.decode(row["pixels"], shape, row["dtype"], row["pixels_codec"])
    assert len(row["pixels"]) < 0.9 * array.nbytes and array.max() > 0


def test_sensor_registers_new_specimens_bounded_per_tick(setup, monkeypatch):
    collection, resources, instance, _ = setup
    monkeypatch.setattr(stacks_sensors, "MAX_NEW_SPECIMENS_PER_TICK", 3)
    cursor, seen = None, []
    for _ in range(3):
        context = build_sensor_context(
            instance=instance,
            cursor=cursor,
            resources={"stack_collection": resources["stack_collection"]},
        )
        result = new_specimens_sensor(context)
        if isinstance(result, SkipReason):
            break
        assert isinstance(result, SensorResult)
        keys = [k for r in result.dynamic_partitions_requests for k in r.partition_keys]
        instance.add_dynamic_partitions(SPECIMENS_PARTITIONS_NAME, keys)
        assert [r.partition_key for r in result.run_requests] == keys
        seen.append(keys)
        cursor = result.cursor
    assert [len(k) for k in seen] == [3, 1]
    assert sorted(sum(seen, [])) == ["neuron_001", "neuron_002", "neuron_003", "neuron_101"]


def test_a_live_lease_holder_keeps_the_specimen(setup, monkeypatch):
    from imaging_assets.core.lease import Lease

    # a short TTL: the writer waits TTL + 15 s for a holder it cannot prove dead (105 s by default)
    monkeypatch.setenv("IMAGING_ASSETS_LEASE_TTL_S", "5")
    _, resources, instance, lake = setup
    materialize([specimen_manifest], instance=instance, resources=resources)
    other = Lease(resources["lake"].store(), "zstack_slices", "neuron_001", "another-run")
    with other:
        result = materialize(
            STACKS_ASSETS,
            selection=[zstack_slices],
            partition_key="neuron_001",
            instance=instance,
            resources=resources,
            raise_on_error=False,
        )
    assert not result.success
    assert not (lake / "zstack_slices.lance").exists() or (
        lance.dataset(str(lake / "zstack_slices.lance")).count_rows() == 0
    )
    assert _specimen(instance, resources, "neuron_001").success  # released: the next run writes
