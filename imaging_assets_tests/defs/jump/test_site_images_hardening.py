"""site_images through Dagster on a local mirror of the sample gallery: every failure recorded
when a plate is rejected, canonical provenance, no object bytes in messages, no empty commits."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import lance
import pyarrow.parquet as pq
import pytest
from dagster import instance_for_test

from imaging_assets.core.lance_tables import open_dataset
from imaging_assets.demo.gallery import generate_gallery
from imaging_assets.read import open_lake
from imaging_assets_tests.pipeline import (
    materialize_metadata,
    materialize_plate,
    pipeline_resources,
)

PLATE = "source_4__BR00117035"  # the tiny gallery's COMPOUND plate
CANONICAL = "s3://cellpainting-gallery/cpg0016-jump/source_4/images/"
SECRET = "TOPSECRETVALUE42-hunter2"
UPSTREAM = ["load_data", "sampled_sites"]


@pytest.fixture(scope="module")
def gallery(tmp_path_factory):
    return generate_gallery(tmp_path_factory.mktemp("gallery"), preset="tiny", seed=0)


@pytest.fixture()
def mirror(gallery, tmp_path):
    """A writable copy of the gallery (a local mirror of the bucket) and a fresh lake."""
    root = tmp_path / "mirror"
    shutil.copytree(gallery.root, root)
    source_root = root / gallery.source_root.relative_to(gallery.root)
    metadata_root = root / gallery.metadata_root.relative_to(gallery.root)
    lake = tmp_path / "lake"
    resources = pipeline_resources(str(source_root), str(metadata_root), str(lake))
    with instance_for_test() as instance:
        materialize_metadata(instance, resources)
        assert materialize_plate(instance, resources, PLATE, selection=UPSTREAM).success
        yield {
            "source_root": source_root,
            "lake": lake,
            "resources": resources,
            "instance": instance,
        }


def _site_images(env, **kwargs):
    return materialize_plate(
        env["instance"], env["resources"], PLATE, selection=["site_images"], **kwargs
    )


def _sampled(env) -> dict[str, dict[str, str]]:
    """site_key -> channel -> where the mirror holds the object."""
    table = pq.read_table(env["lake"] / "sampled_sites" / f"{PLATE}.parquet")
    sites: dict[str, dict[str, str]] = {}
    for row in table.select(["site_key", "channel", "uri"]).to_pylist():
        sites.setdefault(row["site_key"], {})[row["channel"]] = row["uri"]
    return sites


def _failure_text(result) -> str:
    texts = []
    for event in result.get_step_failure_events():
        data = event.step_failure_data
        if data.user_failure_data is not None:
            texts.append(str(data.user_failure_data.description))
        if data.error is not None:
            texts.append(data.error.to_string())
    return "\n".join(texts)


def _versions(lake: Path, name: str) -> int:
    dataset = open_dataset(str(lake / f"{name}.lance"))
    return 0 if dataset is None else len(dataset.versions())


def test_a_rejected_plate_records_every_failure_with_canonical_uris_and_no_bytes(mirror):
    sites = _sampled(mirror)
    assert len(sites) >= 4
    first, second, third = sorted(sites)[:3]
    Path(sites[first]["DNA"]).write_bytes(b"")  # empty
    Path(sites[second]["AGP"]).write_bytes(SECRET.encode() + b"\n")  # e.g. /etc/hostname
    Path(sites[third]["RNA"]).unlink()  # missing

    result = _site_images(mirror, raise_on_error=False)
    assert not result.success
    text = _failure_text(result)
    assert f"3 of {len(sites)} sites failed" in text, text
    assert "corrupt: 1" in text and "empty: 1" in text and "missing: 1" in text
    assert SECRET[:4] not in text

    failed = lance.dataset(str(mirror["lake"] / "failed_images.lance")).to_table().to_pylist()
    assert sorted((f["site_key"], f["channel"], f["error_kind"]) for f in failed) == [
        (first, "DNA", "empty"),
        (second, "AGP", "corrupt"),
        (third, "RNA", "missing"),
    ]
    for failure in failed:
        assert failure["uri"].startswith(CANONICAL), failure
        assert failure["read_uri"] == sites[failure["site_key"]][failure["channel"]]
        assert str(mirror["source_root"]) not in failure["message"]
        for start in range(len(SECRET) - 3):
            assert SECRET[start : start + 4] not in failure["message"], failure["message"]
    images = open_dataset(str(mirror["lake"] / "site_images.lance"))
    assert images is None or images.count_rows() == 0  # nothing committed


def test_rows_name_the_canonical_uri_and_the_md5_check_reads_the_mirror(mirror):
    result = _site_images(mirror)
    assert result.success
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    md5 = checks["raw_md5_matches_fresh_read"]
    assert md5.passed and md5.metadata["sites_checked"].value > 0
    rows = (
        lance.dataset(str(mirror["lake"] / "site_images.lance"))
        .to_table(columns=["site_key", "dna_raw_uri", "dna_read_uri", "dna_raw_md5"])
        .to_pylist()
    )
    sites = _sampled(mirror)
    assert {r["site_key"] for r in rows} == set(sites)
    for row in rows:
        assert row["dna_raw_uri"].startswith(CANONICAL), row
        assert row["dna_raw_uri"].endswith(Path(row["dna_read_uri"]).name)
        assert row["dna_read_uri"] == sites[row["site_key"]]["DNA"]
        assert hashlib.md5(Path(row["dna_read_uri"]).read_bytes()).hexdigest() == row["dna_raw_md5"]
    site = open_lake(str(mirror["lake"])).site(rows[0]["site_key"])
    assert site.provenance["DNA"]["raw_uri"] == rows[0]["dna_raw_uri"]
    assert site.provenance["DNA"]["read_uri"] == rows[0]["dna_read_uri"]


def test_failed_images_commits_only_when_something_changes(mirror):
    lake = mirror["lake"]
    path = Path(next(iter(_sampled(mirror).values()))["DNA"])
    good = path.read_bytes()
    path.write_bytes(b"")
    tolerant = {"ops": {"site_images": {"config": {"max_failed_fraction": 1.0}}}}
    assert _site_images(mirror, run_config=tolerant).success
    with_failure = _versions(lake, "failed_images")
    assert with_failure >= 1
    assert lance.dataset(str(lake / "failed_images.lance")).count_rows() == 1

    path.write_bytes(good)
    assert _site_images(mirror).success  # clears the plate's failures: one commit
    assert _versions(lake, "failed_images") == with_failure + 1
    assert lance.dataset(str(lake / "failed_images.lance")).count_rows() == 0
    for _ in range(2):  # clean runs with nothing to clear: no commit
        assert _site_images(mirror).success
        assert _versions(lake, "failed_images") == with_failure + 1


def test_clean_runs_on_a_fresh_lake_commit_no_failed_images(mirror):
    for _ in range(2):
        assert _site_images(mirror).success
        assert _versions(mirror["lake"], "failed_images") == 0
