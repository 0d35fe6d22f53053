"""Object stores against real backends: a folder, SeaweedFS S3 on loopback, an HTTP server."""

from __future__ import annotations

import pytest

from imaging_assets.core.errors import MissingObjectError
from imaging_assets.core.s3 import S3Settings
from imaging_assets.core.stores import (
    HttpStore,
    LocalStore,
    S3Store,
    StoreUnavailableError,
    open_store,
    retry,
)
from imaging_assets_tests.servers import S3Server


def _exercise(store) -> None:
    store.write_bytes("src/batch 1/plate/load_data.csv", b"a,b\n1,2\n")
    store.write_bytes("src/batch2/plate/x.bin", b"x")
    assert store.read("src/batch 1/plate/load_data.csv").data == b"a,b\n1,2\n"
    assert sorted(store.list_prefixes("src/")) == ["src/batch 1/", "src/batch2/"]
    assert sorted(store.list_keys("src/")) == [
        "src/batch 1/plate/load_data.csv",
        "src/batch2/plate/x.bin",
    ]
    with pytest.raises(MissingObjectError) as error:
        store.read("src/nothing.tiff")
    assert "src/nothing.tiff" in str(error.value)
    assert store.create_exclusive("lock", b"1") is True
    assert store.create_exclusive("lock", b"2") is False
    assert store.read("lock").data == b"1"
    store.delete("lock")
    assert not store.exists("lock")
    with store.local_file("src/batch2/plate/x.bin") as path:
        assert path.read_bytes() == b"x"


def test_local_store(tmp_path):
    _exercise(LocalStore(tmp_path))
    assert not list(tmp_path.rglob("*.tmp"))  # atomic writes leave no temp files


@pytest.mark.s3
def test_s3_store_with_credentials_from_the_environment(s3_server, s3_bucket, monkeypatch):
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    store = open_store(f"s3://{s3_bucket}/root", S3Settings.from_env(role="SOURCE"))
    assert isinstance(store, S3Store)
    _exercise(store)
    fetched = store.read("src/batch2/plate/x.bin")
    assert fetched.uri == f"s3://{s3_bucket}/root/src/batch2/plate/x.bin" and fetched.etag
    assert store.read_range("src/batch 1/plate/load_data.csv", 2, 3) == b"b\n1"
    before = store.request_count
    store.list_prefixes("src/")
    assert store.request_count - before == 1  # one delimiter listing


@pytest.mark.s3
def test_unsigned_requests_reach_a_public_bucket(tmp_path, monkeypatch):
    # A fresh SeaweedFS with no identities configured serves unsigned requests, like a public
    # bucket. (A restarted `weed mini` enforces the identities it created on first start, so
    # this test has its own server instead of the session's, which the fault tests restart.)
    with S3Server(tmp_path / "public") as server:
        server.make_bucket("gallery")
        server.boto3_client().put_object(
            Bucket="gallery", Key="cpg0016-jump/source_1/x", Body=b"public"
        )
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("IMAGING_ASSETS_SOURCE_ENDPOINT", server.endpoint_url)
        monkeypatch.setenv("IMAGING_ASSETS_SOURCE_ANONYMOUS", "1")
        settings = S3Settings.from_env(role="SOURCE")
        assert settings.anonymous
        assert settings.lance_storage_options()["aws_skip_signature"] == "true"
        store = open_store("s3://gallery/cpg0016-jump", settings)
        assert store.read("source_1/x").data == b"public"
        assert store.list_prefixes("") == ["source_1/"]


def test_http_store_reads_pinned_files(tmp_path, http_server):
    (tmp_path / "metadata").mkdir()
    (tmp_path / "metadata" / "plate.csv.gz").write_bytes(b"\x1f\x8bdata")
    base = http_server(tmp_path) + "/metadata"
    store = open_store(base)
    assert isinstance(store, HttpStore)
    assert store.read("plate.csv.gz").data == b"\x1f\x8bdata"
    with pytest.raises(MissingObjectError):
        store.read("well.csv.gz")


def test_retry_backs_off_on_transient_errors_then_gives_up():
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("dropped")
        return "ok"

    assert (
        retry(flaky, what="GET x", attempts=5, is_transient=lambda e: True, base_delay_s=0.001)
        == "ok"
    )
    with pytest.raises(StoreUnavailableError, match="GET y"):
        retry(
            lambda: (_ for _ in ()).throw(ConnectionError("down")),
            what="GET y",
            attempts=2,
            is_transient=lambda e: True,
            base_delay_s=0.001,
        )
    with pytest.raises(ValueError):
        retry(
            lambda: (_ for _ in ()).throw(ValueError("bad")),
            what="GET z",
            attempts=5,
            is_transient=lambda e: isinstance(e, ConnectionError),
        )
