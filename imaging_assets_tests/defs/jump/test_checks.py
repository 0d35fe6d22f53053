"""Image QC through the real asset graph, on the synthetic gallery's "qc" preset (its plate
source_4__BR00117035 carries two blurred sites and one saturated site): per-plate flags in
site_qc, the plate map in the lake, the read API's QC filter on a real lake, and partitioned check
results: each plate's checks carry their plate, the seeded plate's QC check fails, the others pass.
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import lance
import numpy as np
import pytest
import tifffile
from dagster import AssetCheckKey, AssetKey, DagsterInstance, materialize
from dagster._core.instance.ref import InstanceRef
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from PIL import Image

from imaging_assets.core.objects import FetchedObject
from imaging_assets.defs.common.stores import SourceResource
from imaging_assets.defs.jump.assets import ALL_ASSETS
from imaging_assets.defs.jump.images import CHECK_SPECS, PLATE_MAPS, QC_SHARE, site_images
from imaging_assets.demo.gallery import generate_gallery
from imaging_assets.jump.images.plate_map import layout, parse_well
from imaging_assets.jump.quality import METRIC_SET_NAME, measure_features
from imaging_assets.jump.schemas import quality_column
from imaging_assets.read import SiteDataset, open_lake
from imaging_assets_tests.conftest import PROJECT_ROOT
from imaging_assets_tests.pipeline import (
    materialize_metadata,
    pipeline_resources,
)

SEEDED = "source_4__BR00117035"
CLEAN = ("source_4__BR00121001", "source_3__BR00125173")
IMAGE_PATH = ["load_data", "sampled_sites", "site_images"]


def _materialize(instance: DagsterInstance, resources: dict, key: str):
    return materialize(
        ALL_ASSETS,
        selection=IMAGE_PATH,
        partition_key=key,
        instance=instance,
        resources=resources,
        raise_on_error=False,
    )


def _build(root: Path, instance: DagsterInstance) -> dict:
    gallery = generate_gallery(root / "gallery", preset="qc", seed=0, workers=2)
    lake = root / "lake"
    resources = pipeline_resources(str(gallery.source_root), str(gallery.metadata_root), str(lake))
    materialize_metadata(instance, resources)
    results = {key: _materialize(instance, resources, key) for key in (SEEDED, *CLEAN)}
    return {"gallery": gallery, "lake": lake, "results": results, "instance": instance}


@pytest.fixture(scope="module")
def qc_built(tmp_path_factory):
    """Three plates of the qc gallery (one with defects) through load_data -> site_images."""
    from dagster import instance_for_test

    with instance_for_test() as instance:
        yield _build(tmp_path_factory.mktemp("qc"), instance)


def _site_qc(lake: Path, key: str) -> dict[str, dict]:
    source, plate = key.split("__")
    rows = lance.dataset(str(lake / "site_qc.lance")).to_table(
        filter=f"source = '{source}' AND plate = '{plate}'"
    )
    return {row["site_key"]: row for row in rows.to_pylist()}


def test_the_seeded_sites_are_flagged_with_readable_reasons(qc_built):
    defects = qc_built["gallery"].defective_sites()
    assert len(defects) == 3 and all(k.startswith(SEEDED) for k in defects)
    verdicts = _site_qc(qc_built["lake"], SEEDED)
    assert set(defects) <= set(verdicts)  # every defective site was sampled and judged
    for key, kind in defects.items():
        row = verdicts[key]
        assert row["qc_pass"] is False, (key, row["qc_reasons"])
        if kind == "blur":
            assert any(
                r.startswith("DNA PowerLogLogSlope below plate median - 3 MAD")
                for r in row["qc_reasons"]
            ), row["qc_reasons"]
        else:
            assert kind == "saturated AGP"
            assert any(
                r.startswith("AGP PercentMaximal above plate median + 3 MAD")
                for r in row["qc_reasons"]
            ), row["qc_reasons"]
    # a handful of sites at most beyond the seeded ones (3 MAD flags tails too), most pass
    flagged = {k for k, row in verdicts.items() if not row["qc_pass"]}
    assert len(flagged - set(defects)) <= 1, flagged
    assert all(row["qc_pass"] == (not row["qc_reasons"]) for row in verdicts.values())
    row = next(iter(verdicts.values()))
    assert row["qc_metric_set"] == METRIC_SET_NAME and row["qc_plate_sites"] == len(verdicts)
    assert row["site_images_version"] >= 1 and row["dagster_run_id"]


def test_site_qc_has_one_row_per_written_site_of_every_plate(qc_built):
    images = lance.dataset(str(qc_built["lake"] / "site_images.lance"))
    for key in (SEEDED, *CLEAN):
        source, plate = key.split("__")
        written = images.to_table(
            columns=["site_key"], filter=f"source = '{source}' AND plate = '{plate}'"
        )
        assert set(_site_qc(qc_built["lake"], key)) == set(written["site_key"].to_pylist())


def test_stored_metrics_are_cellprofilers_of_the_raw_pixels(qc_built):
    images = lance.dataset(str(qc_built["lake"] / "site_images.lance"))
    columns = ["site_key", "dna_read_uri", "agp_read_uri", "qc_metric_set", "qc_scale"]
    columns += [quality_column(f, "DNA") for f in ("PowerLogLogSlope", "FocusScore")]
    columns += [quality_column(f, "AGP") for f in ("PercentMaximal", "MeanIntensity")]
    columns += [quality_column("Correlation", "DNA"), quality_column("PowerLogLogSlope", "AGP")]
    rows = images.to_table(columns=columns, limit=4).to_pylist()
    for row in rows:
        assert row["qc_metric_set"] == "cellprofiler.MeasureImageQuality/1"
        assert row["qc_scale"] == 65535.0
        dna = measure_features(tifffile.imread(row["dna_read_uri"]), ["PowerLogLogSlope"])
        agp = measure_features(tifffile.imread(row["agp_read_uri"]), ["PercentMaximal"])
        assert row["ImageQuality_PowerLogLogSlope_OrigDNA"] == dna["PowerLogLogSlope"]
        assert row["ImageQuality_PercentMaximal_OrigAGP"] == agp["PercentMaximal"]
        assert row["ImageQuality_FocusScore_OrigDNA"] > 0
        # off in the default plan: stored as null, never as a made-up number
        assert row["ImageQuality_Correlation_OrigDNA_20"] is None
        assert row["ImageQuality_PowerLogLogSlope_OrigAGP"] is None


def test_check_results_carry_their_plate_and_only_the_seeded_plate_fails(qc_built):
    names = {spec.name for spec in CHECK_SPECS}
    for key, result in qc_built["results"].items():
        assert result.success, key  # the QC check only warns: the run goes on
        evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
        assert set(evaluations) == names
        assert {e.partition for e in evaluations.values()} == {key}
        for name, evaluation in evaluations.items():
            expected = not (key == SEEDED and name == QC_SHARE)
            assert evaluation.passed is expected, (key, name, evaluation.metadata)
    share = {e.check_name: e for e in qc_built["results"][SEEDED].get_asset_check_evaluations()}[
        QC_SHARE
    ]
    assert share.metadata["flagged"].value >= 3
    assert share.metadata["flagged_share"].value > share.metadata["limit"].value == 0.05
    reasons = share.metadata["reasons"].value
    assert reasons["DNA PowerLogLogSlope below plate median - 3 MAD"] >= 2
    assert reasons["AGP PercentMaximal above plate median + 3 MAD"] == 1


def test_the_instance_keeps_a_check_status_per_plate(qc_built):
    storage = qc_built["instance"].event_log_storage
    key = AssetCheckKey(AssetKey("site_images"), QC_SHARE)
    infos = {i.partition_key: i for i in storage.get_asset_check_partition_info([key])}
    assert set(infos) == {SEEDED, *CLEAN}
    failed = AssetCheckExecutionRecordStatus.FAILED
    succeeded = AssetCheckExecutionRecordStatus.SUCCEEDED
    assert infos[SEEDED].latest_execution_status == failed
    assert all(infos[k].latest_execution_status == succeeded for k in CLEAN)
    assert all(info.is_current for info in infos.values())
    md5 = AssetCheckKey(AssetKey("site_images"), "raw_md5_matches_fresh_read")
    statuses = {i.latest_execution_status for i in storage.get_asset_check_partition_info([md5])}
    assert statuses == {succeeded}


def test_checks_are_partitioned_described_and_blocking_where_downstream_builds():
    specs = {spec.name: spec for spec in site_images.check_specs}
    assert specs and all(
        spec.partitions_def == site_images.partitions_def for spec in specs.values()
    )
    assert all((spec.description or "").strip() for spec in specs.values())
    blocking = {name for name, spec in specs.items() if spec.blocking}
    assert blocking == {
        "one_row_per_processed_site",
        "unique_site_key",
        "raw_md5_matches_fresh_read",
        "quality_values_finite",
    }


_READ_BEFORE: set[str] = set()


class _ChangedOnSecondRead:
    """A store whose objects change once read: every later read returns other bytes."""

    def __init__(self, store) -> None:
        self._store = store

    def read(self, uri: str) -> FetchedObject:
        fetched = self._store.read(uri)
        if uri in _READ_BEFORE:
            return FetchedObject(fetched.uri, fetched.data + b"changed", fetched.etag)
        _READ_BEFORE.add(uri)
        return fetched

    def __getattr__(self, name: str):
        return getattr(self._store, name)


class ChangingSource(SourceResource):
    def store(self):
        return _ChangedOnSecondRead(super().store())


def test_a_failed_blocking_check_stops_the_plates_downstream_assets(qc_built, tmp_path):
    """The raw objects change after the stream read them: the md5 check fails with ERROR, the
    run fails after site_images is recorded, and cell_profiles (downstream) does not run."""
    from dagster import instance_for_test

    from imaging_assets.defs.jump.partitions import PLATES_PARTITIONS_NAME

    gallery = qc_built["gallery"]
    lake = tmp_path / "lake"
    shutil.copytree(qc_built["lake"], lake)  # the metadata tables and the plate as written
    resources = pipeline_resources(str(gallery.source_root), str(gallery.metadata_root), str(lake))
    resources["source"] = ChangingSource(root=str(gallery.source_root))
    _READ_BEFORE.clear()
    key = CLEAN[0]
    with instance_for_test() as instance:
        instance.add_dynamic_partitions(PLATES_PARTITIONS_NAME, [key])
        result = materialize(
            ALL_ASSETS,
            selection=[*IMAGE_PATH, "cell_profiles"],
            partition_key=key,
            instance=instance,
            resources=resources,
            raise_on_error=False,
        )
    assert not result.success
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    md5 = checks["raw_md5_matches_fresh_read"]
    assert not md5.passed and md5.blocking and md5.partition == key
    assert len(md5.metadata["mismatched_uris"].value) == md5.metadata["sites_checked"].value > 0
    assert result.asset_materializations_for_node("site_images")  # recorded, then judged
    assert not result.asset_materializations_for_node("cell_profiles")
    started = {e.step_key for e in result.all_events if e.event_type_value == "STEP_START"}
    assert "site_images" in started and "cell_profiles" not in started


def test_the_plate_map_is_in_the_lake_with_the_plates_shape(qc_built):
    gallery = qc_built["gallery"]
    plate = next(p for p in gallery.plates if f"{p.source}__{p.plate}" == SEEDED)
    path = qc_built["lake"] / PLATE_MAPS / f"{SEEDED}.png"
    image = Image.open(io.BytesIO(path.read_bytes()))
    assert image.text["plate_format"] == "16x24"  # wells up to P24: a 384-well plate
    geometry = layout(16, 24)
    assert image.size == (geometry.width, geometry.height)
    pixels = np.asarray(image.convert("RGB"))
    imaged = {w.well for w in plate.wells[:-2]}  # the EMPTY well and P24 are not sampled
    for well in ("A01", "B05", "P23"):
        x, y = geometry.cell_centre(*parse_well(well))
        grey = tuple(pixels[y, x]) == (215, 215, 215)
        assert grey == (well not in imaged), well
    blurred = next(d.well for _, d in gallery.defects if d.kind == "blur")
    x0, y0, _, _ = geometry.cell_box(*parse_well(blurred))
    assert tuple(pixels[y0 + 1, x0 + 1]) == (220, 30, 30)  # the flagged well's red frame
    metadata = qc_built["results"][SEEDED].asset_materializations_for_node("site_images")[0]
    assert metadata.metadata["plate_map_ref"].value == f"lake:{PLATE_MAPS}/{SEEDED}.png"
    shown = metadata.metadata["plate_map"].value
    assert shown.startswith("![plate map") and "data:image/png;base64," in shown
    assert list(metadata.metadata)[:2] == ["contact_sheet", "plate_map"]


def test_the_contact_sheet_spreads_over_roles_and_wells(qc_built):
    import base64

    metadata = qc_built["results"][CLEAN[0]].asset_materializations_for_node("site_images")[0]
    encoded = metadata.metadata["contact_sheet"].value.split("base64,", 1)[1].rstrip(")")
    sheet = np.asarray(Image.open(io.BytesIO(base64.b64decode(encoded))))
    from imaging_assets.jump.images.contact_sheet import CHANNEL_LABEL_WIDTH, LABEL_HEIGHT

    # 6 site columns of at least 128 px beside the channel labels, 5 channel rows below headers
    assert sheet.shape[1] >= CHANNEL_LABEL_WIDTH + 6 * 128
    assert sheet.shape[0] == LABEL_HEIGHT + 5 * 128


def test_the_read_api_filters_on_qc_in_a_real_lake(qc_built):
    lake = open_lake(str(qc_built["lake"]))
    flagged = set(lake.flagged_site_keys().to_pylist())
    assert set(qc_built["gallery"].defective_sites()) <= flagged
    every = lake.site_images(columns=["site_key"])["site_key"].to_pylist()
    failing = lake.site_images(qc="fail", columns=["site_key", "qc_reasons"])
    assert set(failing["site_key"].to_pylist()) == flagged
    assert all(failing["qc_reasons"].to_pylist())
    passing = set(lake.site_images(qc="pass", columns=["site_key"])["site_key"].to_pylist())
    assert passing == set(every) - flagged
    trained = {
        k for table, _ in lake.iter_batches(batch_size=16) for k in table["site_key"].to_pylist()
    }
    assert trained == passing
    assert len(SiteDataset(lake.root)) == len(passing)
    assert set(SiteDataset(lake.root, qc="fail").site_keys) == flagged
    assert len(SiteDataset(lake.root, qc="all")) == len(every)


@pytest.mark.slow
def test_dagster_dev_shows_each_plates_check_status(tmp_path):
    """The web UI's GraphQL reports the QC check per plate: failed for the seeded plate, succeeded
    for the others (the same storage dagster dev reads)."""
    from imaging_assets_tests.servers import DagsterDev

    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((PROJECT_ROOT / "dagster.yaml").read_text())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "IMAGING_ASSETS_"))}
    env |= {"DAGSTER_HOME": str(home), "IMAGING_ASSETS_HOME": str(tmp_path)}
    previous = os.environ.get("DAGSTER_HOME")
    os.environ["DAGSTER_HOME"] = str(home)  # the instance file names its storage relative to it
    try:
        with DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
            built = _build(tmp_path, instance)
            assert all(r.success for r in built["results"].values())
    finally:
        if previous is None:
            os.environ.pop("DAGSTER_HOME", None)
        else:
            os.environ["DAGSTER_HOME"] = previous
    query = """
    { assetNodes(assetKeys: [{path: ["site_images"]}]) {
        assetChecksOrError { ... on AssetChecks { checks {
          name blocking description
          partitionStatuses { ... on AssetCheckDefaultPartitionStatuses {
            succeededPartitions failedPartitions } } } } } } }
    """
    with DagsterDev(env, tmp_path / "dagster_dev.log") as dev:
        nodes = dev.graphql(query)["assetNodes"]
        _the_ui_shows_the_plates_check_status(dev, tmp_path)
    checks = {c["name"]: c for c in nodes[0]["assetChecksOrError"]["checks"]}
    qc = checks[QC_SHARE]["partitionStatuses"]
    assert qc["failedPartitions"] == [SEEDED], qc
    assert sorted(qc["succeededPartitions"]) == sorted(CLEAN), qc
    for name in ("one_row_per_processed_site", "raw_md5_matches_fresh_read"):
        statuses = checks[name]["partitionStatuses"]
        assert sorted(statuses["succeededPartitions"]) == sorted((SEEDED, *CLEAN)), statuses
        assert statuses["failedPartitions"] == [] and checks[name]["blocking"]
        assert checks[name]["description"]


def _visible(page, text: str):
    """The shown element with exactly this text (the UI also renders hidden copies to measure)."""
    return page.locator(f'text="{text}" >> visible=true').first


def _dot(page, partition: str, tmp_path: Path) -> tuple[int, int, int]:
    """The colour of the status dot at the right end of a partition's row in the check's list."""
    box = _visible(page, partition).bounding_box()
    shot = tmp_path / f"row_{partition}.png"
    page.screenshot(
        path=str(shot),
        clip={"x": box["x"], "y": box["y"], "width": box["width"] + 80, "height": box["height"]},
    )
    pixels = np.asarray(Image.open(shot).convert("RGB")).reshape(-1, 3).astype(int)
    saturated = pixels[(pixels.max(axis=1) - pixels.min(axis=1)) > 80]  # the dot, not text
    return tuple(int(v) for v in np.median(saturated, axis=0)) if len(saturated) else (0, 0, 0)


def _the_ui_shows_the_plates_check_status(dev, tmp_path: Path) -> None:
    """In Chromium: the QC check's Partitions tab lists each plate with its own status."""
    from imaging_assets_tests.browser import chromium_context

    with chromium_context() as context:
        page = context.new_page()
        page.goto(
            f"http://127.0.0.1:{dev.port}/assets/site_images?view=checks&checkDetail={QC_SHARE}"
        )
        page.get_by_text("Execution history", exact=True).wait_for()
        tabs = page.get_by_text("Partitions", exact=True)
        tabs.nth(tabs.count() - 1).click()  # the check's tab, not the asset's
        page.get_by_text("Failed (1)", exact=True).wait_for()
        page.get_by_text("Passed (2)", exact=True).wait_for()
        _visible(page, SEEDED).wait_for()
        page.screenshot(path=str(tmp_path / "qc_check_partitions.png"))
        red, green, _ = _dot(page, SEEDED, tmp_path)
        assert red > 150 and green < 100, (red, green)
        for key in CLEAN:
            red, green, _ = _dot(page, key, tmp_path)
            assert green > 150 and red < 100, (key, red, green)


def test_lake_plate_reports_the_flagged_sites_and_why(qc_built):
    from imaging_assets.core.lake import Lake
    from imaging_assets.jump.status import plate_status

    lake = Lake.open(str(qc_built["lake"]))
    seeded = plate_status(lake, SEEDED)
    verdicts = _site_qc(qc_built["lake"], SEEDED)
    flagged = sum(1 for row in verdicts.values() if not row["qc_pass"])
    assert seeded.qc_judged == len(verdicts) and seeded.qc_flagged == flagged >= 3
    shown = seeded.render()
    assert f"image QC       {flagged:>10,} of {len(verdicts):,} sites flagged" in shown, shown
    assert "DNA PowerLogLogSlope below plate median - 3 MAD: " in shown, shown
    clean = plate_status(lake, CLEAN[0])
    clean_verdicts = _site_qc(qc_built["lake"], CLEAN[0])
    assert clean.qc_flagged == sum(1 for row in clean_verdicts.values() if not row["qc_pass"])
    assert clean.qc_flagged <= 1  # a 3 MAD tail at most on a plate without seeded defects
