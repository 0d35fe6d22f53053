"""The frames assets with the source and the lake on a real S3 server (SeaweedFS on loopback)."""

import numpy as np
import pytest
from dagster import DagsterInstance

from imaging_assets.core.s3 import S3Settings
from imaging_assets.core.stores import S3Store
from imaging_assets.demo.gallery.frames import generate_frame_samples
from imaging_assets.frames import reading, verify
from imaging_assets_tests.defs.frames.test_assets import ingest, register, resources

pytestmark = pytest.mark.s3


def test_register_ingest_query_read_and_verify_on_s3(tmp_path, s3_server, s3_bucket, monkeypatch):
    for key, value in s3_server.env().items():
        if key.startswith(("AWS_ACCESS", "AWS_SECRET", "AWS_REGION", "AWS_DEFAULT_REGION")):
            monkeypatch.setenv(key, value)
    samples = generate_frame_samples(tmp_path / "source")
    store = S3Store(f"s3://{s3_bucket}", S3Settings(endpoint_url=s3_server.endpoint_url))
    store.upload_tree(samples.root, prefix="source")
    source_root, lake_root = f"s3://{s3_bucket}/source", f"s3://{s3_bucket}/lake"
    res = resources(source_root, lake_root, endpoint_url=s3_server.endpoint_url)
    instance = DagsterInstance.ephemeral()

    assert register(instance, res).success
    for dataset_id in samples.ids():
        run = ingest(instance, res, dataset_id)
        assert run.success, dataset_id
        assert all(c.passed for c in run.get_asset_check_evaluations())

    options = res["lake"].storage_options()
    table = reading.query_datasets(lake_root, options, project="DEMO", microscope="Zeiss-LSM980")
    assert table.column("dataset_id").to_pylist() == ["DEMO-2024-05-02-09-30-00-0001"]
    full = samples.expected["DEMO-2024-05-02-09-30-00-0001"]
    array = reading.read_frames(
        lake_root, "DEMO-2024-05-02-09-30-00-0001", options, p=1, c="mCherry", t=[1]
    )
    np.testing.assert_array_equal(array, full[1][[1]][:, [1]])
    folder = samples.expected["OTHER-2024-06-10-14-00-00-0002"]
    np.testing.assert_array_equal(
        reading.read_frames(lake_root, "OTHER-2024-06-10-14-00-00-0002", options), folder[0]
    )
    stored = reading.dataset_file(lake_root, "DEMO-2024-05-03-08-00-00-0001", options)
    assert stored["stored_uri"].startswith("lake:objects/")  # relative to the lake root
    assert (
        res["lake"]
        .handle()
        .resolve(stored["stored_uri"])
        .startswith(f"s3://{s3_bucket}/lake/objects/")
    )
    report = verify.verify_frames(lake_root, options)
    report.merge(verify.verify_files(lake_root, res["lake"].store(), options))
    assert report.ok and report.frames_checked == 74 and report.files_checked == 1
