"""Ingest into a local lake, then query, read partially, follow links, verify and re-ingest."""

from datetime import date
from pathlib import Path

import lance
import numpy as np
import pytest

from imaging_assets.core.errors import InputError
from imaging_assets.core.stores import LocalStore
from imaging_assets.demo.gallery.frames import write_ome
from imaging_assets.frames import queries, reading, verify
from imaging_assets.frames.lake import ingest_dataset, register_manifest
from imaging_assets_tests.frames.conftest import NDTIFF, local_lake

OME = "DEMO-2024-05-01-10-00-00-0001"
MULTI = "DEMO-2024-05-02-09-30-00-0001"
FOLDER = "OTHER-2024-06-10-14-00-00-0002"
PLAIN = "DEMO-2024-05-01-12-00-00-0002"
FILE = "DEMO-2024-05-03-08-00-00-0001"


def ids(table) -> list[str]:
    return sorted(table.column("dataset_id").to_pylist()) if table.num_rows else []


def test_full_reads_equal_the_source_arrays(samples, ingested):
    for dataset_id, expected in samples.expected.items():
        positions = expected.shape[0]
        array = reading.read_frames(ingested.root, dataset_id, p=list(range(positions)))
        np.testing.assert_array_equal(array, expected)
        if positions == 1:
            np.testing.assert_array_equal(
                reading.read_frames(ingested.root, dataset_id), expected[0]
            )


@pytest.mark.parametrize(
    ("selectors", "slices"),
    [
        ({"c": 1}, (slice(None), [1])),
        ({"c": "GFP", "z": range(1, 3), "t": 2}, ([2], [1], [1, 2])),
        ({"z": [0, 3], "t": [0, 2]}, ([0, 2], slice(None), [0, 3])),
        ({"c": ["DAPI"], "t": 1, "z": 2}, ([1], [0], [2])),
    ],
)
def test_partial_reads_equal_the_same_slices_of_the_full_array(
    samples, ingested, selectors, slices
):
    full = samples.expected[OME][0]  # (T, C, Z, Y, X)
    t_sel, c_sel, *rest = slices
    z_sel = rest[0] if rest else slice(None)
    expected = full[t_sel][:, c_sel][:, :, z_sel]
    np.testing.assert_array_equal(reading.read_frames(ingested.root, OME, **selectors), expected)


def test_partial_reads_of_one_position(samples, ingested):
    full = samples.expected[MULTI]  # (P, T, C, Z, Y, X)
    array = reading.read_frames(ingested.root, MULTI, p=2, c="mCherry", z=[0, 2])
    np.testing.assert_array_equal(array, full[2][:, [1]][:, :, [0, 2]])
    assert reading.read_frame(ingested.root, MULTI, c=0, z=1, t=1, p=1).shape == (32, 32)


def test_bad_selections_are_clear_errors(ingested):
    with pytest.raises(ValueError, match="out of range"):
        reading.read_frames(ingested.root, OME, z=9)
    with pytest.raises(ValueError, match="nor a channel name"):
        reading.read_frames(ingested.root, OME, c="Cy5")
    with pytest.raises(ValueError, match="upload type file"):
        reading.read_frames(ingested.root, FILE)
    with pytest.raises(KeyError, match="not registered"):
        reading.read_frames(ingested.root, "DEMO-2000-01-01-00-00-00-0001")


def test_queries_by_each_criterion_and_combinations(ingested):
    root = ingested.root
    assert ids(reading.query_datasets(root)) == sorted([OME, MULTI, FOLDER, PLAIN, FILE])
    assert ids(reading.query_datasets(root, project="OTHER")) == [FOLDER]
    assert ids(reading.query_datasets(root, project=["OTHER", "NOPE"])) == [FOLDER]
    assert ids(reading.query_datasets(root, microscope="Zeiss-LSM980")) == [MULTI]
    assert ids(reading.query_datasets(root, start="2024-05-02")) == sorted([MULTI, FILE, FOLDER])
    assert ids(reading.query_datasets(root, end=date(2024, 5, 1))) == sorted([OME, PLAIN])
    assert ids(
        reading.query_datasets(root, start="2024-05-01T11:00:00", end="2024-05-02")
    ) == sorted([PLAIN, MULTI])
    assert ids(reading.query_datasets(root, description="HeLa")) == sorted([OME, PLAIN])
    assert ids(reading.query_datasets(root, description="projection")) == [PLAIN]
    combined = reading.query_datasets(
        root, project="DEMO", start="2024-05-01", end="2024-05-02", microscope="Nikon-Ti2"
    )
    assert ids(combined) == sorted([OME, PLAIN])
    assert ids(
        reading.query_datasets(
            root, project="DEMO", microscope="Nikon-Ti2", description="time lapse"
        )
    ) == sorted([OME, PLAIN])
    assert (
        ids(
            reading.query_datasets(
                root, project="DEMO", microscope="Zeiss-LSM980", end="2024-05-01"
            )
        )
        == []
    )
    summary = reading.query_datasets(root, dataset_id=OME).to_pylist()[0]
    assert (summary["nbr_timepoints"], summary["nbr_channels"], summary["nbr_slices"]) == (3, 2, 4)
    assert (summary["frame_count"], summary["dtype"]) == (24, "uint16")


def test_parent_and_child_links_are_followed_both_ways(ingested):
    assert reading.children(ingested.root, OME) == [PLAIN]
    assert reading.children(ingested.root, MULTI) == [FILE]
    assert reading.parents(ingested.root, FILE) == [MULTI]
    assert reading.parents(ingested.root, OME) == []


def test_dataset_rows_carry_global_metadata_and_summary(ingested):
    row = reading.get_dataset(ingested.root, OME)
    assert row["acquired_at"].isoformat() == "2024-05-01T10:00:00"
    assert row["global_meta"]["ome"][0]["pixels"]["PhysicalSizeZ"] == "0.5"
    assert row["summary"]["shape"] == {"T": 3, "C": 2, "Z": 4, "P": 1}
    assert row["summary"]["channel_names"] == ["DAPI", "GFP"]
    assert row["summary"]["bytes"] == 24 * 48 * 40 * 2
    frames = reading.frames_table(ingested.root, FOLDER, c="FITC")
    assert frames.num_rows == 4
    assert all('"ChannelIndex":1' in m for m in frames.column("meta").to_pylist())


def test_a_file_upload_is_stored_with_size_and_sha256(samples, ingested):
    import hashlib

    stored = reading.dataset_file(ingested.root, FILE)
    original = (samples.root / "frames" / "files" / "cell_counts.csv").read_bytes()
    assert stored["copied"] is True and stored["size"] == len(original)
    assert stored["sha256"] == hashlib.sha256(original).hexdigest()
    # relative to the lake root, so a copied lake finds its own copy
    assert stored["stored_uri"] == f"lake:objects/{FILE}/cell_counts.csv"
    assert Path(ingested.resolve(stored["stored_uri"])).read_bytes() == original
    lance_frames = lance.dataset(f"{ingested.root}/frames.lance")
    assert lance_frames.count_rows(f"dataset_id = '{FILE}'") == 0


def test_filters_push_down_to_the_scalar_indexes(ingested):
    frames = lance.dataset(f"{ingested.root}/frames.lance")
    selection = queries.frames_filter(OME, c=[1], z=[1, 2], t=[2])
    plan = frames.scanner(filter=selection, columns=["frame_key", "pixels"]).explain_plan(True)
    assert "ScalarIndexQuery" in plan
    for index in ("dataset_id_idx(BTree)", "c_idx(Bitmap)", "z_idx(Bitmap)", "t_idx(Bitmap)"):
        assert index in plan
    assert "refine_filter=--" in plan  # nothing left to filter after the indexes
    analyzed = frames.scanner(filter=selection, columns=["frame_key"]).analyze_plan()
    assert "output_rows=2" in analyzed
    total = frames.count_rows()
    scanned = int(analyzed.split("rows_scanned=")[1].split(",")[0])
    assert scanned < total, analyzed

    datasets = lance.dataset(f"{ingested.root}/datasets.lance")
    where = queries.datasets_filter(
        project="DEMO",
        start="2024-05-01",
        end="2024-05-02",
        microscope="Nikon-Ti2",
        description="HeLa",
    )
    plan = datasets.scanner(filter=where, columns=["dataset_id"]).explain_plan(True)
    for index in (
        "project_idx(Bitmap)",
        "acquired_at_idx(BTree)",
        "microscope_idx(Bitmap)",
        "description_idx(NGram)",
    ):
        assert index in plan, plan


def test_the_real_ndtiff_is_ingested_with_indices_and_metadata(real_fixtures, tmp_path):
    import tifffile

    folder = real_fixtures / NDTIFF
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(
        "dataset_id,file,upload_type,format,microscope,description\n"
        f"MM-2022-12-28-17-04-23-0001,{folder},frames,ndtiff,Demo,pycromanager MDA\n"
    )
    lake = local_lake(tmp_path / "lake")
    source = LocalStore(tmp_path)
    register_manifest(lake, source, "manifest.csv", "r1")
    result = ingest_dataset(lake, source, "MM-2022-12-28-17-04-23-0001", "r2")
    assert result.frames == 8
    array = reading.read_frames(lake.root, "MM-2022-12-28-17-04-23-0001")
    with tifffile.TiffFile(next(folder.glob("*.tif"))) as tif:
        full = tif.series[0].asarray()  # (T, C, Y, X)
    np.testing.assert_array_equal(array[:, :, 0], full)
    rows = reading.frames_table(lake.root, "MM-2022-12-28-17-04-23-0001", c="FITC", t=2)
    import json

    meta = json.loads(rows.column("meta")[0].as_py())
    assert meta["Axes"] == {"channel": "FITC", "time": 2}
    assert (meta["Exposure"], meta["Position"]) == (10, "Default")
    assert rows.column("channel_name").to_pylist() == ["FITC"]


def _noise_dataset(tmp_path):
    """A lake holding one OME dataset of incompressible frames (their bytes appear verbatim)."""
    rng = np.random.default_rng(7)
    array = rng.integers(0, 65535, (2, 2, 3, 32, 32), dtype=np.uint16)
    write_ome(tmp_path / "src" / "noise.ome.tif", array, ["A", "B"])
    (tmp_path / "src" / "m.csv").write_text(
        "dataset_id,file,upload_type\nNOISE-2024-01-01-00-00-00-0001,noise.ome.tif,frames\n"
    )
    lake = local_lake(tmp_path / "lake")
    source = LocalStore(tmp_path / "src")
    register_manifest(lake, source, "m.csv", "r1")
    ingest_dataset(lake, source, "NOISE-2024-01-01-00-00-00-0001", "r2")
    return lake, source, array


def test_a_corrupted_frame_is_reported_with_its_dataset_and_indices(tmp_path):
    lake, _, array = _noise_dataset(tmp_path)
    assert verify.verify_frames(lake.root).ok
    target = array[1, 0, 2]  # t=1, c=0, z=2
    needle = target.astype("<u2").tobytes()
    hits = []
    for path in (tmp_path / "lake" / "frames.lance" / "data").glob("*.lance"):
        data = bytearray(path.read_bytes())
        at = data.find(needle)
        if at >= 0:
            data[at + 100] ^= 0xFF
            data[at + 101] ^= 0x0F
            path.write_bytes(bytes(data))
            hits.append(path)
    assert hits, "the frame's bytes were not found verbatim in any data file"
    report = verify.verify_frames(lake.root)
    assert report.frames_checked == 12
    (mismatch,) = report.mismatches
    assert mismatch.dataset_id == "NOISE-2024-01-01-00-00-00-0001"
    assert mismatch.indices == (0, 2, 1, 0)  # (c, z, t, p)
    assert "c=0 z=2 t=1 p=0" in mismatch.describe()


def test_re_ingesting_commits_nothing_when_unchanged_and_one_commit_when_changed(tmp_path):
    lake, source, array = _noise_dataset(tmp_path)
    uri = f"{lake.root}/frames.lance"
    datasets_version = lance.dataset(lake.uri("datasets")).version
    before = lance.dataset(uri).version
    same = ingest_dataset(lake, source, "NOISE-2024-01-01-00-00-00-0001", "r2b", index=False)
    assert not same.written.changed and lance.dataset(uri).version == before
    assert lance.dataset(lake.uri("datasets")).version == datasets_version
    write_ome(tmp_path / "src" / "noise.ome.tif", array + 1, ["A", "B"])
    result = ingest_dataset(lake, source, "NOISE-2024-01-01-00-00-00-0001", "r3")
    assert result.written.changed and result.written.rows_before == 12
    where = "dataset_id = 'NOISE-2024-01-01-00-00-00-0001'"
    for version in range(before, lance.dataset(uri).version + 1):  # never a half state
        assert lance.dataset(uri, version=version).count_rows(where) == 12
    runs = set(lance.dataset(uri).to_table(columns=["dagster_run_id"], filter=where)[0].to_pylist())
    assert runs == {"r3"}


def test_a_failing_ingest_commits_nothing(tmp_path):
    lake, source, _ = _noise_dataset(tmp_path)
    uri = f"{lake.root}/frames.lance"
    version = lance.dataset(uri).version
    path = tmp_path / "src" / "noise.ome.tif"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # truncated mid-way
    with pytest.raises(InputError, match="noise.ome.tif"):
        ingest_dataset(lake, source, "NOISE-2024-01-01-00-00-00-0001", "r4")
    assert lance.dataset(uri).version == version
    assert verify.verify_frames(lake.root).ok


def test_an_unusable_source_is_recorded_then_cleared_by_a_good_ingest(tmp_path):
    lake, source, array = _noise_dataset(tmp_path)
    dataset_id = "NOISE-2024-01-01-00-00-00-0001"
    path = tmp_path / "src" / "noise.ome.tif"
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(InputError):
        ingest_dataset(lake, source, dataset_id, "r4")
    failures = lance.dataset(lake.uri("dataset_failures")).to_table().to_pylist()
    assert [(f["dataset_id"], f["kind"], f["dagster_run_id"]) for f in failures] == [
        (dataset_id, "InputError", "r4")
    ]
    assert "noise.ome.tif" in failures[0]["detail"]
    path.write_bytes(good)
    ingest_dataset(lake, source, dataset_id, "r5")
    assert lance.dataset(lake.uri("dataset_failures")).count_rows() == 0


def test_a_re_ingest_that_would_drop_frames_is_refused_unless_allowed(tmp_path):
    from imaging_assets.core.lance_tables import RemovalRefusedError

    lake, source, array = _noise_dataset(tmp_path)
    uri = f"{lake.root}/frames.lance"
    version = lance.dataset(uri).version
    write_ome(tmp_path / "src" / "noise.ome.tif", array[:1], ["A", "B"])  # one time point left
    with pytest.raises(RemovalRefusedError, match="would remove 6 of the dataset's 12 existing"):
        ingest_dataset(lake, source, "NOISE-2024-01-01-00-00-00-0001", "r5")
    assert lance.dataset(uri).version == version
    result = ingest_dataset(
        lake, source, "NOISE-2024-01-01-00-00-00-0001", "r6", max_removed_fraction=1.0
    )
    assert (result.frames, result.written.rows_removed) == (6, 6)
    np.testing.assert_array_equal(
        reading.read_frames(lake.root, "NOISE-2024-01-01-00-00-00-0001"), array[:1]
    )


def test_a_first_ingest_failing_mid_stream_commits_nothing(samples, tmp_path):
    import shutil

    folder = tmp_path / "src" / "folder"
    shutil.copytree(samples.root / "frames" / "folder" / FOLDER, folder)
    last = sorted(folder.glob("*.tif"))[-1]
    last.write_bytes(b"not a tiff")  # read after the other frames were streamed
    (tmp_path / "src" / "m.csv").write_text(
        f"dataset_id,file,upload_type\n{FOLDER},folder,frames\n"
    )
    lake = local_lake(tmp_path / "lake")
    source = LocalStore(tmp_path / "src")
    register_manifest(lake, source, "m.csv", "r1")
    with pytest.raises(InputError, match=f"{last.name}: not a readable TIFF"):
        ingest_dataset(lake, source, FOLDER, "r2")
    frames_uri = tmp_path / "lake" / "frames.lance"
    assert not frames_uri.exists() or lance.dataset(str(frames_uri)).count_rows() == 0
    assert reading.get_dataset(lake.root, FOLDER)["ingested"] is False


def test_a_crash_between_the_frames_commit_and_the_dataset_row_is_mended_by_the_re_run(
    tmp_path, monkeypatch
):
    """The frames are committed, then the process dies before the dataset row says so: the
    re-run finds the frames unchanged (no commit) and must still mark the dataset ingested."""
    rng = np.random.default_rng(11)
    write_ome(tmp_path / "src" / "a.ome.tif", rng.integers(0, 999, (1, 1, 2, 8, 8), "u2"), ["A"])
    (tmp_path / "src" / "m.csv").write_text(
        "dataset_id,file,upload_type\nCRSH-2024-01-01-00-00-00-0001,a.ome.tif,frames\n"
    )
    lake = local_lake(tmp_path / "lake")
    source = LocalStore(tmp_path / "src")
    register_manifest(lake, source, "m.csv", "r1")
    from imaging_assets.frames import lake as frames_lake

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("killed between the frames commit and the dataset row")

    with monkeypatch.context() as patched:
        patched.setattr(frames_lake.registry, "update_dataset", crash)
        with pytest.raises(KeyboardInterrupt):
            ingest_dataset(lake, source, "CRSH-2024-01-01-00-00-00-0001", "r2")
    frames_version = lance.dataset(lake.uri("frames")).version
    again = ingest_dataset(lake, source, "CRSH-2024-01-01-00-00-00-0001", "r3", index=False)
    assert not again.written.changed  # the frames were already there: nothing recomputed
    assert lance.dataset(lake.uri("frames")).version == frames_version
    row = reading.get_dataset(lake.root, "CRSH-2024-01-01-00-00-00-0001")
    assert row["ingested"] and row["frame_count"] == 2
    assert reading.read_frames(lake.root, "CRSH-2024-01-01-00-00-00-0001").shape[-2:] == (8, 8)


def test_every_frame_carries_cellprofiler_quality_features_of_its_pixels(tmp_path):
    from imaging_assets.frames.schema import FRAME_QUALITY
    from imaging_assets.processing.quality import FEATURES, measure

    lake, _, array = _noise_dataset(tmp_path)  # (t, c, z, y, x)
    frames = lance.dataset(lake.uri("frames")).to_table(filter="c = 1 AND z = 2 AND t = 0")
    assert frames.num_rows == 1
    row = frames.to_pylist()[0]
    assert set(FRAME_QUALITY.names) <= set(row) and len(FRAME_QUALITY.names) == len(FEATURES)
    expected = measure(array[0, 1, 2])
    assert row["ImageQuality_FocusScore_Frame"] == expected["FocusScore"]
    assert row["ImageQuality_PowerLogLogSlope_Frame"] == expected["PowerLogLogSlope"]
    assert row["ImageQuality_Correlation_Frame_20"] == expected["Correlation"]
    assert row["qc_metric_set"] == "cellprofiler.MeasureImageQuality/1"
    assert row["qc_scale"] == 65535


def test_frame_quality_can_be_turned_off(tmp_path):
    rng = np.random.default_rng(5)
    write_ome(tmp_path / "src" / "a.ome.tif", rng.integers(0, 999, (1, 1, 2, 8, 8), "u2"), ["A"])
    (tmp_path / "src" / "m.csv").write_text(
        "dataset_id,file,upload_type\nOFFQ-2024-01-01-00-00-00-0001,a.ome.tif,frames\n"
    )
    lake = local_lake(tmp_path / "lake")
    source = LocalStore(tmp_path / "src")
    register_manifest(lake, source, "m.csv", "r1")
    ingest_dataset(lake, source, "OFFQ-2024-01-01-00-00-00-0001", "r2", measure_quality=False)
    table = lance.dataset(lake.uri("frames")).to_table(
        columns=["ImageQuality_FocusScore_Frame", "qc_metric_set"]
    )
    assert table.num_rows == 2 and table.column("qc_metric_set").null_count == 2
