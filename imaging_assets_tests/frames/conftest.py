"""Fixtures of the frames tests: generated sample datasets and a lake they are ingested into."""

from __future__ import annotations

from pathlib import Path

import pytest

from imaging_assets.core.lake import Lake
from imaging_assets.core.stores import LocalStore
from imaging_assets.demo.gallery.frames import FrameSamples, generate_frame_samples
from imaging_assets.frames.lake import ingest_dataset, register_manifest

NDTIFF = Path("micromanager_ndtiff") / "12_bit_pycromanager_mda"


def local_lake(root: Path) -> Lake:
    return Lake.open(root)


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> FrameSamples:
    return generate_frame_samples(tmp_path_factory.mktemp("frames_source"), seed=0)


@pytest.fixture(scope="module")
def ingested(samples, tmp_path_factory) -> Lake:
    """Every sample dataset registered and ingested into a fresh local lake."""
    lake = local_lake(tmp_path_factory.mktemp("frames_lake"))
    source = LocalStore(samples.root)
    register_manifest(lake, source, samples.manifest_key, "run-register")
    for dataset_id in samples.ids():
        ingest_dataset(lake, source, dataset_id, "run-ingest")
    return lake
