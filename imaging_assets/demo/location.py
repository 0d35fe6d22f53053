"""The code location's one name, wherever it is loaded: workspace files, `dagster dev`, demo runs.

`dagster dev -m imaging_assets.definitions` would name the location after the module; a workspace
file names it `imaging_assets`, as docker/workspace.yaml and pyproject's [tool.dagster] do. Runs
executed in process (the demo) carry the repository label tag that the web UI uses to list a job's
runs, so they show on the job's Runs tab and the timeline like runs launched from the UI.
"""

from __future__ import annotations

from pathlib import Path

LOCATION_NAME = "imaging_assets"
MODULE = "imaging_assets.definitions"
REPOSITORY_LABEL_TAG = ".dagster/repository"
REPOSITORY_LABEL = f"__repository__@{LOCATION_NAME}"


def write_workspace(directory: Path) -> Path:
    """A workspace.yaml that loads the code location from its module under its one name."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "workspace.yaml"
    path.write_text(
        "load_from:\n"
        "  - python_module:\n"
        f"      module_name: {MODULE}\n"
        f"      location_name: {LOCATION_NAME}\n"
    )
    return path


def location_tags() -> dict[str, str]:
    """Tags that make an in-process run belong to the code location in the web UI."""
    return {REPOSITORY_LABEL_TAG: REPOSITORY_LABEL}
