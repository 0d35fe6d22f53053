"""The frames assets through Dagster's `materialize`, the asset check, the sensor, definitions."""

import logging

import lance
import numpy as np
from dagster import DagsterInstance, build_sensor_context, materialize

from imaging_assets.defs.common.stores import LakeResource, SourceResource
from imaging_assets.defs.frames.assets import FRAMES_ASSETS, frames, imaging_datasets
from imaging_assets.defs.frames.partitions import DATASETS_PARTITIONS_NAME
from imaging_assets.defs.frames.sensors import frames_manifest_sensor
from imaging_assets.demo.gallery.frames import generate_frame_samples
from imaging_assets.frames import reading


def resources(source_root, lake_root, endpoint_url=None) -> dict:
    return {
        "source": SourceResource(root=str(source_root), endpoint_url=endpoint_url),
        "lake": LakeResource(root=str(lake_root), endpoint_url=endpoint_url),
    }


def register(instance, res, manifest=None):
    config = {"ops": {"imaging_datasets": {"config": {"manifest": manifest}}}} if manifest else None
    return materialize(
        [imaging_datasets],
        instance=instance,
        resources=res,
        run_config=config,
        raise_on_error=False,
    )


def ingest(instance, res, dataset_id):
    return materialize(
        FRAMES_ASSETS,
        selection=[frames],
        partition_key=dataset_id,
        instance=instance,
        resources=res,
        raise_on_error=False,
    )


def test_register_then_ingest_every_sample_dataset(tmp_path):
    samples = generate_frame_samples(tmp_path / "source")
    instance = DagsterInstance.ephemeral()
    res = resources(tmp_path / "source", tmp_path / "lake")
    result = register(instance, res)
    assert result.success
    assert sorted(instance.get_dynamic_partitions(DATASETS_PARTITIONS_NAME)) == sorted(
        samples.ids()
    )
    (materialization,) = result.asset_materializations_for_node("imaging_datasets")
    assert materialization.metadata["newly_registered"].value == 5

    for dataset_id in samples.ids():
        run = ingest(instance, res, dataset_id)
        assert run.success, dataset_id
        (check,) = run.get_asset_check_evaluations()
        assert check.passed and check.check_name == "sampled_frames_rehash"
    root = str((tmp_path / "lake").resolve())
    for dataset_id, expected in samples.expected.items():
        array = reading.read_frames(root, dataset_id, p=list(range(expected.shape[0])))
        np.testing.assert_array_equal(array, expected)

    again = register(instance, res)  # same manifest: nothing new, nothing changes
    assert again.success
    (materialization,) = again.asset_materializations_for_node("imaging_datasets")
    assert materialization.metadata["newly_registered"].value == 0


def register_with(instance, res, manifest, **config):
    return materialize(
        [imaging_datasets],
        instance=instance,
        resources=res,
        run_config={"ops": {"imaging_datasets": {"config": {"manifest": manifest, **config}}}},
        raise_on_error=False,
    )


def bad_manifests(samples, source) -> dict[str, str]:
    """name -> the one problem of each: a bad id (its child goes too), a lone orphan, a lost file."""
    text = samples.manifest_path.read_text()
    bad = text.replace(
        "DEMO-2024-05-02-09-30-00-0001,frames/multipos",
        "DEMO-2024-05-02-09-30-00-0001x,frames/multipos",
    )
    (source / "bad.csv").write_text(bad)
    orphan = text.splitlines()[0] + "\n" + next(x for x in text.splitlines() if "cell_counts" in x)
    (source / "orphan.csv").write_text(orphan + "\n")
    missing = text.replace("frames/plain/", "frames/nowhere/")
    (source / "missing.csv").write_text(missing)
    return {
        "bad.csv": "serial '0001x' is not 4 digits",
        "orphan.csv": "parent dataset DEMO-2024-05-02-09-30-00-0001",
        "missing.csv": "does not exist",
    }


def test_strict_registration_of_a_bad_manifest_registers_nothing(tmp_path):
    samples = generate_frame_samples(tmp_path / "source")
    instance = DagsterInstance.ephemeral()
    res = resources(tmp_path / "source", tmp_path / "lake")
    for name, message in bad_manifests(samples, tmp_path / "source").items():
        result = register_with(instance, res, name, strict=True)
        assert not result.success
        failure = result.failure_data_for_node("imaging_datasets").user_failure_data
        assert message in failure.description, name
        assert "strict, nothing registered" in failure.description
        assert failure.metadata["bad_row_count"].value >= 1
        assert instance.get_dynamic_partitions(DATASETS_PARTITIONS_NAME) == []
        datasets = reading.query_datasets(str((tmp_path / "lake").resolve()))
        assert datasets.num_rows == 0


def test_lenient_registration_registers_the_good_rows_and_lists_the_bad(tmp_path):
    samples = generate_frame_samples(tmp_path / "source")
    instance = DagsterInstance.ephemeral()
    res = resources(tmp_path / "source", tmp_path / "lake")
    bad_manifests(samples, tmp_path / "source")
    only_orphan = register_with(instance, res, "orphan.csv")  # every row bad: fails
    assert not only_orphan.success
    assert "no good row" in (
        only_orphan.failure_data_for_node("imaging_datasets").user_failure_data.description
    )

    result = register_with(instance, res, "bad.csv")  # row 2 bad, and row 5 (its child)
    assert result.success
    (materialization,) = result.asset_materializations_for_node("imaging_datasets")
    metadata = materialization.metadata
    assert (metadata["newly_registered"].value, metadata["bad_row_count"].value) == (3, 2)
    bad_rows = metadata["bad_rows"].value
    assert [(r["row"], r["column"]) for r in bad_rows] == [(2, "dataset_id"), (5, "parent_id")]
    assert "serial '0001x' is not 4 digits" in bad_rows[0]["problem"]
    expected = [
        i
        for i in samples.ids()
        if i not in ("DEMO-2024-05-02-09-30-00-0001", "DEMO-2024-05-03-08-00-00-0001")
    ]
    assert sorted(instance.get_dynamic_partitions(DATASETS_PARTITIONS_NAME)) == sorted(expected)
    warnings = [
        e
        for e in instance.all_logs(result.run_id)
        if e.level == logging.WARNING and "bad row(s) of 5 not registered" in e.message
    ]
    assert len(warnings) == 1 and "row 5" in warnings[0].message


def test_an_imagingdb_csv_registers_through_the_asset(tmp_path):
    generate_frame_samples(tmp_path / "source")
    (tmp_path / "source" / "files_for_upload.csv").write_text(
        ",dataset_id,file_name,description,positions,parent_dataset_id\n"
        '0,ISP-2018-06-08-15-45-00-0001,frames/multipos,two positions,"[0, 2]",\n'
        "1,ISP-2018-06-08-15-45-00-0002,frames/plain,,,ISP-2018-06-08-15-45-00-0001\n"
    )
    instance = DagsterInstance.ephemeral()
    res = resources(tmp_path / "source", tmp_path / "lake")
    for strict in (False, True):
        result = register_with(instance, res, "files_for_upload.csv", strict=strict)
        assert result.success
        (materialization,) = result.asset_materializations_for_node("imaging_datasets")
        assert materialization.metadata["manifest_format"].value == "imagingDB"
        assert materialization.metadata["bad_row_count"].value == 0
    root = str((tmp_path / "lake").resolve())
    row = reading.get_dataset(root, "ISP-2018-06-08-15-45-00-0001")
    assert (row["position_indices"], row["upload_type"]) == ([0, 2], "frames")
    assert reading.get_dataset(root, "ISP-2018-06-08-15-45-00-0002")["parent_id"] == (
        "ISP-2018-06-08-15-45-00-0001"
    )


def test_an_unreadable_file_fails_its_partition_and_changes_nothing(tmp_path):
    samples = generate_frame_samples(tmp_path / "source")
    instance = DagsterInstance.ephemeral()
    res = resources(tmp_path / "source", tmp_path / "lake")
    assert register(instance, res).success
    target = "DEMO-2024-05-01-10-00-00-0001"
    (tmp_path / "source" / samples.rows[0]["file"]).write_bytes(b"not a tiff")
    run = ingest(instance, res, target)
    assert not run.success
    failure = run.failure_data_for_node("frames")
    assert "not a readable TIFF" in failure.user_failure_data.description
    root = str((tmp_path / "lake").resolve())
    assert reading.get_dataset(root, target)["ingested"] is False
    assert reading.query_datasets(root, dataset_id=target).num_rows == 1
    frames_uri = tmp_path / "lake" / "frames.lance"
    assert not frames_uri.exists() or lance.dataset(str(frames_uri)).count_rows() == 0


def test_the_sensor_runs_registration_then_each_new_dataset(tmp_path):
    generate_frame_samples(tmp_path / "source")
    instance = DagsterInstance.ephemeral()
    res = resources(tmp_path / "source", tmp_path / "lake")
    context = build_sensor_context(instance=instance, resources={"source": res["source"]})
    first = frames_manifest_sensor(context)
    assert [r.job_name for r in first.run_requests] == ["imaging_datasets_job"]
    instance.add_dynamic_partitions(DATASETS_PARTITIONS_NAME, ["DEMO-2024-05-01-10-00-00-0001"])
    second = frames_manifest_sensor(
        build_sensor_context(
            instance=instance, cursor=first.cursor, resources={"source": res["source"]}
        )
    )
    assert [(r.job_name, r.partition_key) for r in second.run_requests] == [
        ("frames_job", "DEMO-2024-05-01-10-00-00-0001")
    ]
    third = frames_manifest_sensor(
        build_sensor_context(
            instance=instance, cursor=second.cursor, resources={"source": res["source"]}
        )
    )
    assert not getattr(third, "run_requests", None)


def test_the_code_location_loads_with_the_frames_definitions():
    from dagster import Definitions

    from imaging_assets.definitions import defs

    Definitions.validate_loadable(defs)
    assert defs.resolve_job_def("frames_job") is not None
    assert {"frames", "imaging_datasets"} <= {
        k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()
    }


def test_a_shrinking_re_ingest_is_refused_unless_configured(tmp_path):
    from imaging_assets.demo.gallery.frames import write_ome

    samples = generate_frame_samples(tmp_path / "source")
    instance = DagsterInstance.ephemeral()
    res = resources(tmp_path / "source", tmp_path / "lake")
    assert register(instance, res).success
    target = "DEMO-2024-05-01-10-00-00-0001"
    assert ingest(instance, res, target).success
    shorter = samples.expected[target][0][:1]  # one time point of three
    write_ome(tmp_path / "source" / samples.rows[0]["file"], shorter, ["DAPI", "GFP"])
    refused = ingest(instance, res, target)
    assert not refused.success
    assert "would remove 16 of the dataset's 24 existing rows" in (
        refused.failure_data_for_node("frames").user_failure_data.description
    )
    allowed = materialize(
        FRAMES_ASSETS,
        selection=[frames],
        partition_key=target,
        instance=instance,
        resources=res,
        run_config={"ops": {"frames": {"config": {"max_removed_fraction": 1.0}}}},
    )
    assert allowed.success
    root = str((tmp_path / "lake").resolve())
    np.testing.assert_array_equal(reading.read_frames(root, target), shorter)
