"""notebooks/stacks.ipynb runs end to end (it builds its own sample collection and lake)."""

from __future__ import annotations

import nbformat
import pytest
from nbclient import NotebookClient

from imaging_assets_tests.conftest import PROJECT_ROOT


@pytest.mark.slow
def test_stacks_notebook_runs():
    notebook = nbformat.read(PROJECT_ROOT / "notebooks" / "stacks.ipynb", as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")
    NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(PROJECT_ROOT / "notebooks")}},
    ).execute()
    text = "\n".join(
        str(output.get("text", "")) + str(output.get("data", {}).get("text/plain", ""))
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
    )
    assert "neuron_101" in text and "raw_sha256" in text and "under nodes" in text
