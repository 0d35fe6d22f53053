"""Every ```bash and ```python block of README.md and docs/*.md runs as printed on the demo.

Blocks run in a folder holding a copy of the session's demo as `.demo` and the project's venv as
`.venv`, with no project variables set, in the order they appear (a block may use what an
earlier one wrote). ```shell, ```console and ```text blocks are shown, not run: they need a
bucket, a cluster, Docker, a daemon or the internet, and say so where they appear.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from imaging_assets_tests.conftest import PROJECT_ROOT

pytestmark = pytest.mark.slow
PAGES = [PROJECT_ROOT / "README.md", *sorted((PROJECT_ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```(bash|python)\n(.*?)^```", re.S | re.M)


def _blocks(page: Path) -> list[tuple[str, str]]:
    return [(kind, body) for kind, body in BLOCK.findall(page.read_text())]


@pytest.fixture(scope="module")
def folder(demo_lake, tmp_path_factory) -> Path:
    """A user's checkout as the pages assume it: `.demo` (a copy of the demo) and `.venv`."""
    workdir, _ = demo_lake
    root = tmp_path_factory.mktemp("docs")
    shutil.copytree(workdir, root / ".demo", symlinks=True)
    (root / ".venv").symlink_to(Path(sys.executable).parents[1])
    shutil.copy(PROJECT_ROOT / "dagster.yaml", root / "dagster.yaml")
    return root


def _env(folder: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "IMAGING_ASSETS_"))}
    return {**env, "HOME": str(folder)}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_block_of_the_page_runs_as_printed(page, folder):
    blocks = _blocks(page)
    for number, (kind, body) in enumerate(blocks, start=1):
        if kind == "bash":
            command = ["bash", "-euo", "pipefail", "-c", body]
        else:
            command = [str(folder / ".venv" / "bin" / "python"), "-c", body]
        done = subprocess.run(
            command, cwd=folder, env=_env(folder), capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, (
            f"{page.name} block {number} ({kind}) failed:\n{body}\n--- stdout\n"
            f"{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}"
        )


def test_the_pages_run_blocks_and_link_to_pages_that_exist():
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert any(kind == "python" for kind, _ in _blocks(PROJECT_ROOT / "README.md"))
    for page in PAGES:
        for target in re.findall(r"\]\(((?:docs/)?[\w-]+\.md)\)", page.read_text()):
            base = PROJECT_ROOT if page.name == "README.md" else page.parent
            assert (base / target).exists(), f"{page.name} links to missing {target}"
    assert "make demo" in readme and "make test" in readme
