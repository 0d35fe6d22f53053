"""The code location loads the way users load it: `dagster definitions validate`, Dagster's own
project checker `dg check defs` / `dg list defs`, and `dagster dev`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from imaging_assets_tests.conftest import PROJECT_ROOT
from imaging_assets_tests.servers import DagsterDev

DAGSTER = str(Path(sys.executable).with_name("dagster"))
EXPECTED_ASSETS = {"jump_plates", "well_metadata", "plate_index", "load_data", "site_images"}


def _env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "dagster_home"
    home.mkdir(exist_ok=True)
    (home / "dagster.yaml").write_text((PROJECT_ROOT / "dagster.yaml").read_text())
    return {**os.environ, "DAGSTER_HOME": str(home), "IMAGING_ASSETS_HOME": str(tmp_path)}


def test_definitions_validate(tmp_path):
    done = subprocess.run(
        [DAGSTER, "definitions", "validate", "-m", "imaging_assets.definitions"],
        cwd=PROJECT_ROOT,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_dg_checks_and_lists_every_wing(tmp_path):
    """`dg` finds the project through pyproject's [tool.dg] and loads definitions.py, which merges
    the three wings; every wing's jobs are there."""
    dg = str(Path(sys.executable).with_name("dg"))
    env = {k: v for k, v in _env(tmp_path).items() if k != "DAGSTER_HOME"}
    checked = subprocess.run(
        [dg, "check", "defs"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "All definitions loaded successfully" in checked.stdout + checked.stderr
    listed = subprocess.run(
        [dg, "list", "defs", "--json"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert listed.returncode == 0, listed.stderr
    jobs = {job["name"] for job in json.loads(listed.stdout)["jobs"]}
    assert {"plate_job", "metadata_job", "stacks_job", "frames_job", "imaging_datasets_job"} <= jobs


@pytest.mark.slow
def test_dagster_dev_serves_the_asset_graph(tmp_path):
    with DagsterDev(_env(tmp_path), tmp_path / "dagster_dev.log") as dev:
        nodes = dev.graphql("{ assetNodes { assetKey { path } } }")["assetNodes"]
        keys = {"/".join(node["assetKey"]["path"]) for node in nodes}
        assert keys >= EXPECTED_ASSETS, (keys, dev.log_tail())
        nux = dev.graphql("{ shouldShowNux }")["shouldShowNux"]
    assert nux is False  # no onboarding pop-up over the first screen
    log = dev.log_path.read_text()
    # the two warnings every start used to print (others, e.g. a slow daemon tick, may occur)
    assert "SupersessionWarning" not in log, log[-3000:]
    assert "Found a dagster instance configuration value" not in log, log[-3000:]


def test_every_asset_has_a_code_version_owners_and_catalog_tags():
    from imaging_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        name = key.to_user_string()
        assert node.code_version, name
        assert node.owners, name
        assert {"domain", "storage", "modality"} <= set(node.tags), name
