"""notebooks/stacks.ipynb runs end to end on the demo's lake and leaves nothing behind."""

from __future__ import annotations

import tempfile
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from imaging_assets_tests.conftest import PROJECT_ROOT


@pytest.mark.slow
def test_stacks_notebook_runs_on_the_demo_lake(demo_lake, monkeypatch):
    workdir, _ = demo_lake
    monkeypatch.setenv("IMAGING_ASSETS_LAKE", str(workdir / "lake"))
    temp_before = set(Path(tempfile.gettempdir()).iterdir())
    notebook = nbformat.read(PROJECT_ROOT / "notebooks" / "stacks.ipynb", as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")
    NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(PROJECT_ROOT / "notebooks")}},
    ).execute()
    outputs = [
        output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs
    ]
    text = "\n".join(
        str(output.get("text", "")) + str(output.get("data", {}).get("text/plain", ""))
        for output in outputs
    )
    assert "neuron_101" in text and "raw_sha256" in text and "under nodes" in text
    assert "best focus z: " in text and "min projection: brightfield-like" in text
    # no Dagster internals, warnings or debug lines in what a reader sees
    assert not [o for o in outputs if o.get("name") == "stderr"], text
    assert "DEBUG" not in text
    # nothing left in the temp folder by the notebook (the kernel's own files aside)
    left = {p for p in set(Path(tempfile.gettempdir()).iterdir()) - temp_before}
    assert not [p for p in left if "stacks" in p.name or "lake" in p.name], left
