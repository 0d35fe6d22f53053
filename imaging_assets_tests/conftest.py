"""Shared fixtures: paths of the real fixtures and the project root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
REAL_FIXTURES = PROJECT_ROOT.parent / "shared" / "fixtures" / "real"


@pytest.fixture(scope="session")
def real_fixtures() -> Path:
    """../shared/fixtures/real, read-only real Cell Painting files (see SOURCES.md there)."""
    if not REAL_FIXTURES.is_dir():
        pytest.fail(f"real fixtures not found at {REAL_FIXTURES}; clone with ../shared beside it")
    return REAL_FIXTURES


def run_demo_cli(workdir: Path, preset: str = "tiny") -> str:
    """`imaging-assets demo` in a fresh process with no project variables set; its stdout."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "imaging_assets.cli.main", "demo", "--workdir", str(workdir)]
        + ["--preset", preset],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={
            k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "IMAGING_ASSETS_"))
        },
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


@pytest.fixture(autouse=True)
def _no_defs_state_storage_left_by_another_test():
    """Each test starts with no "current" Dagster defs-state storage. Entering an instance sets one
    in a context variable and leaving it restores the previous value, so a module's instance left
    behind (its weakref dead by now) made `materialize` on an instance the test never entered fail
    with "Attempted to resolve undefined DagsterInstance weakref", depending on test order."""
    from dagster._core.storage.defs_state.base import set_defs_state_storage

    with set_defs_state_storage(None):
        yield


@pytest.fixture(scope="session")
def demo_lake(tmp_path_factory) -> tuple[Path, str]:
    """The tiny demo, materialized once per session: (work directory, what it printed). Tests
    that only read it share it; tests that change it copy it first."""
    workdir = tmp_path_factory.mktemp("demo")
    return workdir, run_demo_cli(workdir)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """One SeaweedFS S3 server for the session, on free loopback ports, stopped at the end."""
    from imaging_assets_tests.servers import S3Server

    server = S3Server(tmp_path_factory.mktemp("seaweedfs"))
    server.start()
    yield server
    server.stop()


@pytest.fixture()
def s3_bucket(s3_server, request):
    """A fresh bucket on the session's S3 server."""
    import re
    import uuid

    name = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:40].strip("-")
    return s3_server.make_bucket(f"{name}-{uuid.uuid4().hex[:8]}")


@pytest.fixture()
def http_server():
    """Factory: serve a directory over HTTP on loopback; returns its base URL."""
    from imaging_assets_tests.servers import HttpServer

    servers = []

    def serve(directory) -> str:
        server = HttpServer(directory).__enter__()
        servers.append(server)
        return server.url

    yield serve
    for server in servers:
        server.__exit__(None, None, None)


# Modules that share the session's deployment stack (Postgres, SeaweedFS, the compose services
# natively, a backfill of every plate): one worker runs them all so the stack starts once.
SHARED_STACK_MODULES = frozenset(
    {
        "imaging_assets_tests/deployment/test_stack.py",
        "imaging_assets_tests/deployment/test_browser.py",
    }
)


@pytest.hookimpl(optionalhook=True)  # `-p no:xdist` runs the suite in one process
def pytest_xdist_make_scheduler(config, log):
    """Under pytest-xdist (`make test` runs two workers) each module runs on one worker, so its
    module fixtures are built once, and the deployment modules run together. (xdist's own
    loadgroup marks do not reach its scheduler under pytest 9.2, so the grouping is done here.)"""
    from xdist.scheduler import LoadScopeScheduling

    class ModuleScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return "deployment stack" if module in SHARED_STACK_MODULES else module

    return ModuleScheduling(config, log)
