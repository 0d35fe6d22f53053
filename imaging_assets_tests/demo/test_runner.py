"""The demo as users run it (the CLI in a fresh process), and the notebook executed on its lake."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import lance
import nbformat
import pytest
from nbclient import NotebookClient

from imaging_assets_tests.conftest import PROJECT_ROOT, run_demo_cli

CLI = [sys.executable, "-m", "imaging_assets.cli.main"]
EXPECTED = {
    "jump_plates",
    "well_metadata",
    "plate_index",
    "load_data",
    "sampled_sites",
    "site_images",
    "well_profiles",
    "cell_profiles",
    "cell_crops",
    "zstack_slices",
    "skeletons",
    "frames",
    "datasets",
}


def _demo(workdir: Path) -> str:
    return run_demo_cli(workdir)


def _rows(report: str) -> dict[str, int]:
    rows = {}
    for line in report.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[1].replace(",", "").isdigit():
            rows[parts[0]] = int(parts[1].replace(",", ""))
    return rows


def _bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def _lance_state(lake: Path) -> dict[str, tuple[int, int]]:
    """(version, bytes) of every Lance dataset of the lake."""
    return {
        path.name: (lance.dataset(str(path)).version, _bytes(path))
        for path in sorted(lake.glob("*.lance"))
    }


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("demo")
    return workdir, _demo(workdir)


@pytest.mark.slow
def test_demo_writes_every_table_and_a_rerun_changes_nothing(demo):
    workdir, first = demo
    rows = _rows(first)
    assert set(rows) >= EXPECTED, first
    assert all(rows[name] > 0 for name in EXPECTED)
    home_yaml = (workdir / "dagster_home" / "dagster.yaml").read_text()
    assert home_yaml == (PROJECT_ROOT / "dagster.yaml").read_text()  # the shipped instance
    before = _lance_state(workdir / "lake")
    lake_bytes = _bytes(workdir / "lake")
    second = _demo(workdir)
    assert _rows(second) == rows
    assert "already at" in second  # the gallery is not regenerated
    # nothing changed, so nothing was committed: no new version, no new data, the lake as it was
    assert _lance_state(workdir / "lake") == before
    assert _bytes(workdir / "lake") <= lake_bytes * 1.001


@pytest.mark.slow
def test_notebook_runs_end_to_end_on_the_demo_lake(demo, monkeypatch):
    workdir, _ = demo
    monkeypatch.setenv("IMAGING_ASSETS_LAKE", str(workdir / "lake"))
    notebook = nbformat.read(PROJECT_ROOT / "notebooks" / "explore.ipynb", as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")
    NotebookClient(
        notebook,
        timeout=180,
        kernel_name="python3",
        resources={"metadata": {"path": str(PROJECT_ROOT / "notebooks")}},
    ).execute()
    text = "\n".join(
        output.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
    )
    assert "raw_md5" in text and "dagster_run_id" in text


JOB_RUNS = """
query ($job: String!) {
  pipelineOrError(params: {pipelineName: $job, repositoryName: "__repository__",
                           repositoryLocationName: "imaging_assets"}) {
    __typename
    ... on Pipeline { runs { runId status } }
  }
}
"""


@pytest.mark.slow
def test_demo_runs_belong_to_the_code_location_in_the_web_ui(demo):
    """The demo's runs show on plate_job's Runs tab, in a location named `imaging_assets`."""
    from imaging_assets_tests.servers import DagsterDev

    workdir, _ = demo
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "IMAGING_ASSETS_"))}
    env |= {"DAGSTER_HOME": str(workdir / "dagster_home"), "IMAGING_ASSETS_HOME": str(workdir)}
    with DagsterDev(env, workdir / "dagster_dev.log") as dev:
        entries = dev.graphql(
            "{ workspaceOrError { ... on Workspace { locationEntries { name } } } }"
        )
        assert [e["name"] for e in entries["workspaceOrError"]["locationEntries"]] == [
            "imaging_assets"
        ]
        for job in ("plate_job", "metadata_job"):
            answer = dev.graphql(JOB_RUNS, {"job": job})["pipelineOrError"]
            assert answer["__typename"] == "Pipeline", answer
            assert answer["runs"] and all(r["status"] == "SUCCESS" for r in answer["runs"]), job
        # and a person sees them: plate_job's Runs tab in headless Chromium
        from imaging_assets_tests.browser import chromium_context

        runs = dev.graphql(JOB_RUNS, {"job": "plate_job"})["pipelineOrError"]["runs"]
        with chromium_context() as browser:
            page = browser.new_page()
            page.goto(
                f"http://127.0.0.1:{dev.port}/locations/imaging_assets/jobs/plate_job/runs",
                wait_until="networkidle",
            )
            for run in runs:
                page.get_by_text(run["runId"][:8]).first.wait_for()
            page.screenshot(path=workdir / "plate_job_runs.png")
