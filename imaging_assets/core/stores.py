"""Object stores behind one small interface: a local folder, an S3 prefix, or an http(s) base URL.

The source (raw images, load_data, profiles) and the lake (outputs) are each one root URI. Keys are
relative to that root; absolute URIs (as written in load_data files) are read as they are. Reads retry
transient failures with backoff; writes are atomic (local: temp file + rename; S3: one PUT).
"""

from __future__ import annotations

import contextlib
import email.utils
import os
import random
import shutil
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import botocore.exceptions

from imaging_assets.core.errors import MissingObjectError
from imaging_assets.core.objects import FetchedObject
from imaging_assets.core.s3 import S3Settings

T = TypeVar("T")

_TRANSIENT_S3_ERRORS = (
    botocore.exceptions.EndpointConnectionError,
    botocore.exceptions.ConnectionClosedError,
    botocore.exceptions.ReadTimeoutError,
    botocore.exceptions.ConnectTimeoutError,
    botocore.exceptions.ResponseStreamingError,
    botocore.exceptions.IncompleteReadError,
)
_TRANSIENT_S3_CODES = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestTimeout",
    "ServiceUnavailable",
    "InternalError",
    "503",
    "500",
}


class StoreUnavailableError(ConnectionError):
    """The store kept failing after every retry; names the URI and the last error."""


def retry(
    action: Callable[[], T],
    *,
    what: str,
    attempts: int,
    is_transient: Callable[[BaseException], bool],
    base_delay_s: float = 0.2,
    max_delay_s: float = 10.0,
) -> T:
    """Run `action`, retrying transient failures with capped exponential backoff and full jitter."""
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except Exception as error:  # noqa: BLE001 - classified just below
            if not is_transient(error):
                raise
            if attempt == attempts:
                raise StoreUnavailableError(
                    f"{what}: still failing after {attempts} attempts: {error}"
                ) from error
            time.sleep(random.uniform(0, min(max_delay_s, base_delay_s * 2 ** (attempt - 1))))
    raise AssertionError("unreachable")


def has_scheme(uri: str) -> bool:
    return "://" in uri


def split_s3_uri(uri: str) -> tuple[str, str]:
    """('bucket', 'key/prefix') of s3://bucket/key/prefix."""
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"{uri!r} is not an s3://bucket/key URI")
    return parsed.netloc, urllib.parse.unquote(parsed.path.lstrip("/"))


class ObjectStore:
    """Common interface. `root` is the URI every key is relative to."""

    root: str

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.request_count = 0

    def _count(self, n: int = 1) -> None:
        with self._lock:
            self.request_count += n

    def uri(self, key: str) -> str:
        """The absolute URI of a key (keys may already be absolute URIs)."""
        if has_scheme(key) or key.startswith("/"):
            return key
        return self.root.rstrip("/") + "/" + key.lstrip("/")

    def read(self, key_or_uri: str) -> FetchedObject:
        raise NotImplementedError

    def exists(self, key_or_uri: str) -> bool:
        raise NotImplementedError

    def list_prefixes(self, prefix: str) -> list[str]:
        """Common prefixes one level below `prefix` (a delimiter listing), each ending with '/'."""
        raise NotImplementedError

    def list_keys(self, prefix: str) -> Iterator[str]:
        """Every key under `prefix` (recursive), relative to the root."""
        raise NotImplementedError

    def write_bytes(self, key: str, data: bytes) -> str:
        """Write atomically; returns the URI written."""
        raise NotImplementedError

    def delete(self, key: str) -> None:
        raise NotImplementedError

    def create_exclusive(self, key: str, data: bytes) -> bool:
        """Write only if the key does not exist (atomically); False when it already exists."""
        raise NotImplementedError

    def age(self, key: str) -> float | None:
        """Seconds since the object was last written, by the store's own clock (None: the store
        cannot tell, or the object is gone): one clock for every host that compares ages."""
        return None

    @contextlib.contextmanager
    def local_file(self, key_or_uri: str, suffix: str = "") -> Iterator[Path]:
        """A local path holding the object (downloaded to a temp file when the store is remote).

        SQLite and other formats that need a seekable file use this.
        """
        with tempfile.TemporaryDirectory(prefix="imaging_assets_") as tmp:
            path = Path(tmp) / ("object" + suffix)
            path.write_bytes(self.read(key_or_uri).data)
            yield path

    def upload_tree(self, local_root: Path, prefix: str = "", progress=None) -> int:
        """Copy a local folder under `prefix`; returns the number of files."""
        files = sorted(p for p in Path(local_root).rglob("*") if p.is_file())
        for index, path in enumerate(files, 1):
            key = "/".join(
                filter(None, [prefix.strip("/"), path.relative_to(local_root).as_posix()])
            )
            self.write_bytes(key, path.read_bytes())
            if progress:
                progress(index, len(files))
        return len(files)


class LocalStore(ObjectStore):
    """A local folder. Root may be a path or a file:// URI."""

    def __init__(self, root: str | Path) -> None:
        super().__init__()
        root_str = str(root)
        if root_str.startswith("file://"):
            root_str = urllib.parse.unquote(urllib.parse.urlparse(root_str).path)
        self.base = Path(root_str).expanduser().resolve()
        self.root = str(self.base)

    def path(self, key_or_uri: str) -> Path:
        if key_or_uri.startswith("file://"):
            return Path(urllib.parse.unquote(urllib.parse.urlparse(key_or_uri).path))
        if key_or_uri.startswith("/"):
            return Path(key_or_uri)
        if has_scheme(key_or_uri):
            raise ValueError(
                f"{key_or_uri!r}: a local store under {self.root} cannot read this URI"
            )
        return self.base / key_or_uri

    def read(self, key_or_uri: str) -> FetchedObject:
        path = self.path(key_or_uri)
        self._count()
        try:
            data = path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as error:
            raise MissingObjectError(str(path)) from error
        return FetchedObject(uri=str(path), data=data, etag=None)

    def exists(self, key_or_uri: str) -> bool:
        self._count()
        return self.path(key_or_uri).is_file()

    def list_prefixes(self, prefix: str) -> list[str]:
        self._count()
        folder = self.path(prefix)
        if not folder.is_dir():
            return []
        base = prefix if prefix.endswith("/") or not prefix else prefix + "/"
        return sorted(f"{base}{child.name}/" for child in folder.iterdir() if child.is_dir())

    def list_keys(self, prefix: str) -> Iterator[str]:
        self._count()
        folder = self.path(prefix)
        if folder.is_file():
            yield prefix
            return
        if not folder.is_dir():
            return
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            yield path.relative_to(self.base).as_posix()

    def write_bytes(self, key: str, data: bytes) -> str:
        path = self.path(key)
        tmp = self._temp_copy(path, data)
        try:
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        self._count()
        return str(path)

    @staticmethod
    def _temp_copy(path: Path, data: bytes) -> str:
        """The data in a synced temp file beside `path` (renamed or linked into place after)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        return tmp

    def create_exclusive(self, key: str, data: bytes) -> bool:
        path = self.path(key)
        tmp = self._temp_copy(path, data)
        try:
            os.link(tmp, path)  # atomic, and fails if the key exists: never seen half-written
        except FileExistsError:
            return False
        finally:
            os.unlink(tmp)
        self._count()
        return True

    def age(self, key: str) -> float | None:
        try:
            modified = self.path(key).stat().st_mtime
        except FileNotFoundError:
            return None
        return max(0.0, time.time() - modified)  # the file system's clock: the host's

    def delete(self, key: str) -> None:
        path = self.path(key)
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)

    @contextlib.contextmanager
    def local_file(self, key_or_uri: str, suffix: str = "") -> Iterator[Path]:
        path = self.path(key_or_uri)
        if not path.is_file():
            raise MissingObjectError(str(path))
        yield path


def _s3_is_transient(error: BaseException) -> bool:
    if isinstance(error, _TRANSIENT_S3_ERRORS):
        return True
    if isinstance(error, botocore.exceptions.ClientError):
        code = str(error.response.get("Error", {}).get("Code", ""))
        status = str(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
        return code in _TRANSIENT_S3_CODES or status in {"500", "502", "503", "504"}
    return False


def _s3_is_missing(error: BaseException) -> bool:
    if isinstance(error, botocore.exceptions.ClientError):
        code = str(error.response.get("Error", {}).get("Code", ""))
        return code in {"NoSuchKey", "404", "NotFound", "NoSuchBucket"}
    return False


class S3Store(ObjectStore):
    """An s3://bucket/prefix root on AWS or any S3-compatible server."""

    def __init__(self, root: str, settings: S3Settings | None = None) -> None:
        super().__init__()
        self.root = root.rstrip("/")
        self.settings = settings or S3Settings()
        self.bucket, self.prefix = split_s3_uri(self.root + "/")
        self._client = None
        self._client_lock = threading.Lock()

    @property
    def client(self):
        with self._client_lock:
            if self._client is None:
                self._client = self.settings.client()
            return self._client

    def _locate(self, key_or_uri: str) -> tuple[str, str]:
        if key_or_uri.startswith("s3://"):
            return split_s3_uri(key_or_uri)
        if has_scheme(key_or_uri):
            raise ValueError(f"{key_or_uri!r}: an S3 store under {self.root} cannot read this URI")
        return self.bucket, self.prefix + key_or_uri.lstrip("/")

    def _retry(self, action: Callable[[], T], what: str) -> T:
        return retry(
            action, what=what, attempts=self.settings.max_attempts, is_transient=_s3_is_transient
        )

    def read(self, key_or_uri: str) -> FetchedObject:
        bucket, key = self._locate(key_or_uri)
        uri = f"s3://{bucket}/{key}"

        def get() -> FetchedObject:
            self._count()
            try:
                response = self.client.get_object(Bucket=bucket, Key=key)
            except botocore.exceptions.ClientError as error:
                if _s3_is_missing(error):
                    raise MissingObjectError(uri) from error
                raise
            data = response["Body"].read()  # a dropped connection here is retried as a whole
            expected = response.get("ContentLength")
            if expected is not None and len(data) != expected:
                raise botocore.exceptions.IncompleteReadError(
                    actual_bytes=len(data), expected_bytes=expected
                )
            return FetchedObject(
                uri=uri, data=data, etag=(response.get("ETag") or "").strip('"') or None
            )

        return self._retry(get, f"GET {uri}")

    def read_range(self, key_or_uri: str, start: int, length: int) -> bytes:
        bucket, key = self._locate(key_or_uri)

        def get() -> bytes:
            self._count()
            response = self.client.get_object(
                Bucket=bucket, Key=key, Range=f"bytes={start}-{start + length - 1}"
            )
            return response["Body"].read()

        return self._retry(get, f"GET s3://{bucket}/{key} [{start}:{start + length}]")

    def exists(self, key_or_uri: str) -> bool:
        bucket, key = self._locate(key_or_uri)

        def head() -> bool:
            self._count()
            try:
                self.client.head_object(Bucket=bucket, Key=key)
                return True
            except botocore.exceptions.ClientError as error:
                if _s3_is_missing(error):
                    return False
                raise

        return self._retry(head, f"HEAD s3://{bucket}/{key}")

    def _pages(self, prefix: str, delimiter: str | None) -> Iterator[dict]:
        bucket, full = self._locate(prefix)
        kwargs = {"Bucket": bucket, "Prefix": full}
        if delimiter:
            kwargs["Delimiter"] = delimiter
        token = None
        while True:
            if token:
                kwargs["ContinuationToken"] = token
            page = self._retry(
                lambda: (self._count(), self.client.list_objects_v2(**kwargs))[1],
                f"LIST s3://{bucket}/{full}",
            )
            yield page
            if not page.get("IsTruncated"):
                return
            token = page["NextContinuationToken"]

    def list_prefixes(self, prefix: str) -> list[str]:
        prefix = prefix if prefix.endswith("/") or not prefix else prefix + "/"
        found = []
        for page in self._pages(prefix, "/"):
            for entry in page.get("CommonPrefixes", []):
                found.append(entry["Prefix"][len(self.prefix) :])
        return sorted(found)

    def list_keys(self, prefix: str) -> Iterator[str]:
        for page in self._pages(prefix, None):
            for entry in page.get("Contents", []):
                yield entry["Key"][len(self.prefix) :]

    def write_bytes(self, key: str, data: bytes) -> str:
        bucket, full = self._locate(key)

        def put() -> None:
            self._count()
            self.client.put_object(Bucket=bucket, Key=full, Body=data)

        self._retry(put, f"PUT s3://{bucket}/{full}")
        return f"s3://{bucket}/{full}"

    def create_exclusive(self, key: str, data: bytes) -> bool:
        bucket, full = self._locate(key)

        def put() -> bool:
            self._count()
            try:
                self.client.put_object(Bucket=bucket, Key=full, Body=data, IfNoneMatch="*")
            except botocore.exceptions.ClientError as error:
                status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
                if status in (409, 412):
                    return False
                raise
            return True

        return self._retry(put, f"PUT (if absent) s3://{bucket}/{full}")

    def age(self, key: str) -> float | None:
        """LastModified against the Date of the same response: both the server's clock."""
        bucket, full = self._locate(key)

        def head() -> float | None:
            self._count()
            try:
                response = self.client.head_object(Bucket=bucket, Key=full)
            except botocore.exceptions.ClientError as error:
                if _s3_is_missing(error):
                    return None
                raise
            date = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
            if not date:
                return None
            now = email.utils.parsedate_to_datetime(date)
            # both have whole seconds: take a second off, so an age is never overstated (a
            # takeover may wait a second longer, never hurry)
            return max(0.0, (now - response["LastModified"]).total_seconds() - 1.0)

        return self._retry(head, f"HEAD s3://{bucket}/{full}")

    def delete(self, key: str) -> None:
        bucket, full = self._locate(key)
        self._retry(
            lambda: self.client.delete_object(Bucket=bucket, Key=full),
            f"DELETE s3://{bucket}/{full}",
        )


class HttpStore(ObjectStore):
    """A read-only http(s) base URL, e.g. the raw files of a GitHub repository pinned to a commit."""

    def __init__(self, root: str, attempts: int = 5, timeout_s: float = 60.0) -> None:
        super().__init__()
        self.root = root.rstrip("/")
        self.attempts = attempts
        self.timeout_s = timeout_s

    def read(self, key_or_uri: str) -> FetchedObject:
        uri = self.uri(urllib.parse.quote(key_or_uri) if not has_scheme(key_or_uri) else key_or_uri)

        def get() -> FetchedObject:
            self._count()
            try:
                with urllib.request.urlopen(uri, timeout=self.timeout_s) as response:
                    return FetchedObject(
                        uri=uri, data=response.read(), etag=response.headers.get("ETag")
                    )
            except urllib.error.HTTPError as error:
                if error.code == 404:
                    raise MissingObjectError(uri) from error
                raise

        def transient(error: BaseException) -> bool:
            if isinstance(error, urllib.error.HTTPError):
                return error.code in {429, 500, 502, 503, 504}
            return isinstance(error, urllib.error.URLError | TimeoutError | ConnectionError)

        return retry(get, what=f"GET {uri}", attempts=self.attempts, is_transient=transient)

    def exists(self, key_or_uri: str) -> bool:
        try:
            self.read(key_or_uri)
            return True
        except MissingObjectError:
            return False

    def list_prefixes(self, prefix: str) -> list[str]:
        raise NotImplementedError(f"{self.root}: an http store cannot be listed")

    def list_keys(self, prefix: str) -> Iterator[str]:
        raise NotImplementedError(f"{self.root}: an http store cannot be listed")

    def write_bytes(self, key: str, data: bytes) -> str:
        raise NotImplementedError(f"{self.root}: an http store is read-only")


def open_store(root: str | Path, settings: S3Settings | None = None) -> ObjectStore:
    """The store for a root URI: s3://..., http(s)://..., file://... or a local path."""
    root_str = str(root)
    if root_str.startswith("s3://"):
        return S3Store(root_str, settings)
    if root_str.startswith(("http://", "https://")):
        return HttpStore(root_str)
    return LocalStore(root_str)
