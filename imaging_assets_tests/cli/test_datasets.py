"""`imaging-assets datasets query|get|verify` on an ingested lake."""

import csv
import json
import shutil

import numpy as np
import tifffile

from imaging_assets.cli.main import main

OME = "DEMO-2024-05-01-10-00-00-0001"


def test_query_prints_the_matching_datasets(ingested, capsys):
    assert (
        main(
            [
                "datasets",
                "query",
                "--lake",
                ingested.root,
                "--project",
                "DEMO",
                "--microscope",
                "Nikon-Ti2",
                "--start",
                "2024-05-01",
                "--end",
                "2024-05-01",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:3] == ["dataset_id", "acquired_at", "microscope"]
    assert sorted(line.split()[0] for line in out[1:]) == [
        OME,
        "DEMO-2024-05-01-12-00-00-0002",
    ]
    assert main(["datasets", "query", "--lake", ingested.root, "--description", "organoid"]) == 0
    assert "OTHER-2024-06-10-14-00-00-0002" in capsys.readouterr().out


def test_get_writes_selected_frames_and_metadata(samples, ingested, tmp_path, capsys):
    code = main(
        [
            "datasets",
            "get",
            OME,
            str(tmp_path),
            "-c",
            "GFP",
            "-z",
            "1-2",
            "-t",
            "0,2",
            "--lake",
            ingested.root,
        ]
    )
    assert code == 0
    folder = tmp_path / OME
    tiffs = sorted(folder.glob("*.tif"))
    assert len(tiffs) == 4
    expected = samples.expected[OME][0]
    for path in tiffs:
        c, z, t = (int(path.stem.split("_")[i][1:]) for i in (1, 2, 3))
        np.testing.assert_array_equal(tifffile.imread(path), expected[t, c, z])
    rows = list(csv.DictReader((folder / "frames_metadata.csv").read_text().splitlines()))
    assert {(r["c"], r["z"], r["t"]) for r in rows} == {
        ("1", z, t) for z in ("1", "2") for t in ("0", "2")
    }
    meta = json.loads((folder / "global_metadata.json").read_text())
    assert meta["ome"][0]["channels"][1]["Name"] == "GFP"

    shutil.rmtree(folder)
    assert (
        main(
            [
                "datasets",
                "get",
                OME,
                str(tmp_path),
                "-t",
                "1",
                "--metadata-only",
                "--lake",
                ingested.root,
            ]
        )
        == 0
    )
    assert not list(folder.glob("*.tif")) and (folder / "frames_metadata.csv").exists()
    shutil.rmtree(folder)
    assert (
        main(
            [
                "datasets",
                "get",
                OME,
                str(tmp_path),
                "-t",
                "1",
                "--no-metadata",
                "--lake",
                ingested.root,
            ]
        )
        == 0
    )
    assert len(list(folder.glob("*.tif"))) == 8 and not (folder / "frames_metadata.csv").exists()


def test_get_of_a_file_upload_copies_the_file(ingested, tmp_path):
    assert (
        main(
            [
                "datasets",
                "get",
                "DEMO-2024-05-03-08-00-00-0001",
                str(tmp_path),
                "--lake",
                ingested.root,
            ]
        )
        == 0
    )
    assert (
        (tmp_path / "DEMO-2024-05-03-08-00-00-0001" / "cell_counts.csv")
        .read_text()
        .startswith("position,cells")
    )


def test_verify_passes_then_reports_a_changed_file_with_exit_code_1(
    samples, ingested, capsys, tmp_path
):
    assert main(["datasets", "verify", "--lake", ingested.root]) == 0
    assert "74 frames, 1 stored files checked, 0 differ" in capsys.readouterr().out

    # a lake of its own holding the file upload, whose stored copy is then changed
    from imaging_assets.core.stores import LocalStore
    from imaging_assets.frames.lake import ingest_dataset, register_manifest
    from imaging_assets_tests.frames.conftest import local_lake

    lake = local_lake(tmp_path / "lake")
    source = LocalStore(samples.root)
    register_manifest(lake, source, samples.manifest_key, "r1")
    ingest_dataset(lake, source, "DEMO-2024-05-03-08-00-00-0001", "r2")
    next((tmp_path / "lake" / "objects").rglob("cell_counts.csv")).write_text("tampered\n")
    assert main(["datasets", "verify", "--lake", lake.root]) == 1
    out = capsys.readouterr().out
    assert "DEMO-2024-05-03-08-00-00-0001 file" in out and "1 differ" in out
