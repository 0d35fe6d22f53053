"""The `load_data` asset refuses load data that would misplace or lose a plate's sites.

Run through `materialize` on a copy of the tiny sample gallery: the run fails with the file, the
column and the row in its error, and the plate's previous output stays as it was.
"""

from __future__ import annotations

import shutil

import pytest
from dagster import DagsterEventType, instance_for_test

from imaging_assets.demo.gallery import generate_gallery
from imaging_assets.jump import layout
from imaging_assets_tests.pipeline import (
    materialize_metadata,
    materialize_plate,
    pipeline_resources,
)

PLATE = ("source_4", "2021_04_26_Batch1", "BR00117035")
OTHER = ("source_4", "2021_04_26_Batch1", "BR00117036")
KEY = "source_4__BR00117035"


@pytest.fixture(scope="module")
def gallery(tmp_path_factory):
    return generate_gallery(tmp_path_factory.mktemp("gallery"), preset="tiny", seed=0)


@pytest.fixture()
def setup(gallery, tmp_path):
    """A copy of the gallery, its resources, and the plate's load_data materialized once."""
    root = tmp_path / "gallery"
    shutil.copytree(gallery.root, root)
    lake = tmp_path / "lake"
    resources = pipeline_resources(str(root / "cpg0016-jump"), str(root / "metadata"), str(lake))
    with instance_for_test() as instance:
        materialize_metadata(instance, resources)
        materialize_plate(instance, resources, KEY, selection=["load_data"])
        output = lake / "load_data" / f"{KEY}.parquet"
        yield {
            "source": root / "cpg0016-jump",
            "instance": instance,
            "resources": resources,
            "output": output,
            "before": output.read_bytes(),
        }


def _failure(setup) -> str:
    """Run load_data for the plate again; it must fail. Returns the step's error message."""
    result = materialize_plate(
        setup["instance"], setup["resources"], KEY, selection=["load_data"], raise_on_error=False
    )
    assert not result.success
    failures = [e for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE]
    assert len(failures) == 1
    error = failures[0].step_failure_data.error
    messages = []
    while error is not None:
        messages.append(error.message)
        error = error.cause
    assert setup["output"].read_bytes() == setup["before"]  # nothing (half-)written
    return "\n".join(messages)


def _csv_path(setup, plate=PLATE):
    return setup["source"] / layout.load_data_csv_key(*plate)


def test_load_data_of_another_plate_fails_naming_file_column_row_and_plates(setup):
    path = _csv_path(setup)
    shutil.copyfile(_csv_path(setup, OTHER), path)  # a copy-paste slip in the bucket
    message = _failure(setup)
    assert str(path) in message
    assert "column 'Metadata_Plate'" in message and "row 1" in message
    assert "BR00117035" in message and "BR00117036" in message


def test_load_data_of_another_source_fails(setup):
    path = _csv_path(setup)
    lines = path.read_text().splitlines()
    lines[2] = lines[2].replace(",source_4,", ",source_3,")
    path.write_text("\n".join(lines) + "\n")
    message = _failure(setup)
    assert str(path) in message
    assert "column 'Metadata_Source'" in message and "row 2" in message
    assert "source_3" in message and "source_4" in message


def test_image_outside_the_source_root_fails_naming_the_root(setup):
    path = _csv_path(setup)
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    index = header.index("URL_OrigDNA")
    fields = lines[3].split(",")
    fields[index] = "/etc/hostname"
    lines[3] = ",".join(fields)
    path.write_text("\n".join(lines) + "\n")
    message = _failure(setup)
    assert str(path) in message and "column 'URL_OrigDNA'" in message and "row 3" in message
    assert str(setup["source"].resolve()) in message and "/etc/hostname" in message


def test_a_missing_channel_column_fails_at_load_data_naming_it(setup):
    """A load_data file without one channel's URL_Orig column fails here, naming the file and
    the column, before anything is rewritten (not later in site_images, naming sampled_sites)."""
    path = _csv_path(setup)
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    drop = header.index("URL_OrigMito")
    path.write_text(
        "\n".join(",".join(f for i, f in enumerate(line.split(",")) if i != drop) for line in lines)
        + "\n"
    )
    message = _failure(setup)
    assert str(path) in message and "column 'URL_OrigMito'" in message


def test_well_with_the_key_separator_fails(setup):
    path = _csv_path(setup)
    lines = path.read_text().splitlines()
    lines[1] = lines[1].replace(",A01,", ",A01__2,")
    path.write_text("\n".join(lines) + "\n")
    message = _failure(setup)
    assert str(path) in message and "column 'Metadata_Well'" in message and "row 1" in message
