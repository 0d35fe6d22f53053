"""Shared fixtures: paths of the real fixtures and the project root."""

from __future__ import annotations

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
