"""Throttling and dropped connections, from a real HTTP peer on loopback speaking S3 errors."""

from __future__ import annotations

import http.server
import threading
from collections import Counter

import pytest

from imaging_assets.core.s3 import S3Settings
from imaging_assets.core.stores import S3Store, StoreUnavailableError

BODY = b"raw tiff bytes " * 64
SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)


class FlakyS3(http.server.BaseHTTPRequestHandler):
    """GET: the first two requests of a key are throttled (503 SlowDown), the third is cut off
    mid-body, the fourth succeeds. Keys under always-503/ are throttled forever."""

    seen: Counter = Counter()
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        FlakyS3.seen[self.path] += 1
        attempt = FlakyS3.seen[self.path]
        if "always-503" in self.path or attempt <= 2:
            self.send_response(503)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(SLOW_DOWN)))
            self.end_headers()
            self.wfile.write(SLOW_DOWN)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.send_header("ETag", '"abc123"')
        self.end_headers()
        if attempt == 3:
            self.wfile.write(BODY[:20])  # the connection drops mid-object
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
            return
        self.wfile.write(BODY)


@pytest.fixture()
def flaky_endpoint(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    FlakyS3.seen.clear()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FlakyS3)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_throttling_and_a_dropped_connection_are_retried(flaky_endpoint):
    store = S3Store("s3://bucket/root", S3Settings(endpoint_url=flaky_endpoint, max_attempts=6))
    fetched = store.read("source_1/image.tiff")
    assert fetched.data == BODY and fetched.etag == "abc123"
    assert FlakyS3.seen["/bucket/root/source_1/image.tiff"] == 4


def test_a_store_that_keeps_throttling_fails_clearly(flaky_endpoint):
    store = S3Store("s3://bucket/root", S3Settings(endpoint_url=flaky_endpoint, max_attempts=2))
    with pytest.raises(StoreUnavailableError, match="s3://bucket/root/always-503/x.tiff"):
        store.read("always-503/x.tiff")
