"""Objects of frame datasets in stores: local copies for splitting, stored uploads, streamed hashes.

Everything streams in chunks: no object is ever held in memory whole. Remote objects to be split
are copied to a local temp folder (tifffile needs seekable files, NDTiff its sibling index).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from imaging_assets.core.errors import InputError, MissingObjectError
from imaging_assets.core.lake import Lake, is_lake_reference, lake_key
from imaging_assets.core.stores import LocalStore, ObjectStore, S3Store

CHUNK = 1 << 20
FILES_PREFIX = "objects"  # the lake's object area: <lake>/objects/<dataset_id>/<name>


@dataclass(frozen=True)
class StoredFile:
    source_uri: str
    stored_uri: str
    copied: bool
    size: int
    sha256: str
    etag: str | None = None


def _s3_parts(store: S3Store, uri: str) -> tuple[str, str]:
    return store._locate(uri)  # noqa: SLF001 - the store's own URI resolution


def iter_chunks(store: ObjectStore, uri: str) -> Iterator[bytes]:
    """The object's bytes in chunks (MissingObjectError when absent)."""
    if isinstance(store, LocalStore):
        path = store.path(uri)
        if not path.is_file():
            raise MissingObjectError(str(path))
        with open(path, "rb") as handle:
            while chunk := handle.read(CHUNK):
                yield chunk
        return
    if isinstance(store, S3Store):
        bucket, key = _s3_parts(store, uri)
        try:
            body = store.client.get_object(Bucket=bucket, Key=key)["Body"]
        except Exception as error:  # noqa: BLE001 - a missing key is named below
            if "NoSuchKey" in str(error) or "404" in str(error):
                raise MissingObjectError(f"s3://{bucket}/{key}") from error
            raise
        yield from body.iter_chunks(CHUNK)
        return
    yield store.read(uri).data


def hash_object(store: ObjectStore, uri: str) -> tuple[int, str]:
    """(size, sha256) of an object, streamed."""
    digest, size = hashlib.sha256(), 0
    for chunk in iter_chunks(store, uri):
        digest.update(chunk)
        size += len(chunk)
    return size, digest.hexdigest()


def is_folder(store: ObjectStore, uri: str) -> bool:
    if isinstance(store, LocalStore):
        return store.path(uri).is_dir()
    if store.exists(uri):
        return False
    return next(iter(store.list_keys(uri.rstrip("/") + "/")), None) is not None


def _download(store: ObjectStore, uri: str, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(store, S3Store):
        bucket, key = _s3_parts(store, uri)
        try:
            store.client.download_file(bucket, key, str(path))
        except Exception as error:  # noqa: BLE001
            if "404" in str(error) or "NoSuchKey" in str(error) or "Not Found" in str(error):
                raise MissingObjectError(f"s3://{bucket}/{key}") from error
            raise
        return
    with open(path, "wb") as handle:
        for chunk in iter_chunks(store, uri):
            handle.write(chunk)


@contextlib.contextmanager
def localized(store: ObjectStore, uri: str, *, with_siblings: bool = False) -> Iterator[Path]:
    """A local path of a file or folder (downloaded to a temp folder when the store is remote).

    `with_siblings` brings the file's whole folder (NDTiff needs NDTiff.index beside its TIFFs).
    """
    if isinstance(store, LocalStore):
        path = store.path(uri)
        if not path.exists():
            raise InputError(str(path), "the file or folder does not exist")
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="imaging_assets_frames_") as tmp:
        base = Path(tmp)
        folder = is_folder(store, uri)
        if not folder and not store.exists(uri):
            raise InputError(store.uri(uri), "the object does not exist")
        prefix = uri.rstrip("/") if folder else (uri.rsplit("/", 1)[0] if with_siblings else None)
        if prefix is None:
            target = base / uri.rstrip("/").rsplit("/", 1)[-1]
            _download(store, uri, target)
            yield target
            return
        root_name = prefix.rsplit("/", 1)[-1] or "data"
        for key in store.list_keys(prefix + "/"):
            full = store.uri(key)
            relative = full[len(store.uri(prefix)) :].lstrip("/")
            _download(store, full, base / root_name / relative)
        local = base / root_name
        yield local if folder else local / uri.rstrip("/").rsplit("/", 1)[-1]


def _key_in_store(store: ObjectStore, uri: str) -> str | None:
    """The key of `uri` under the store's root, None when it lives elsewhere."""
    if isinstance(store, LocalStore):
        path = uri.removeprefix("file://")
        if not os.path.isabs(path):
            return None
        try:
            return Path(path).resolve().relative_to(store.base).as_posix()
        except ValueError:
            return None
    root = store.root.rstrip("/") + "/"
    return uri[len(root) :] if uri.startswith(root) else None


def store_file(source: ObjectStore, uri: str, lake: Lake, dataset_id: str) -> StoredFile:
    """Keep an uploaded object: referenced when it already lives in the lake, otherwise copied to
    `<lake>/objects/<dataset_id>/<name>`; size and sha256 computed while streaming. The stored
    location is a lake reference (`lake:<key>`), so a copied lake finds its own copy."""
    source_uri = source.uri(uri)
    if is_folder(source, uri):
        raise InputError(source_uri, "a folder", expected="one file for upload type file")
    in_lake = _key_in_store(lake.store, source_uri)
    if in_lake is not None:
        size, sha = hash_object(lake.store, in_lake)
        return StoredFile(source_uri, lake.relative(in_lake), False, size, sha)
    store = lake.store
    name = uri.rstrip("/").rsplit("/", 1)[-1]
    key = f"{FILES_PREFIX}/{dataset_id}/{name}"
    digest, size = hashlib.sha256(), 0
    with tempfile.NamedTemporaryFile(prefix="imaging_assets_upload_", delete=False) as handle:
        temp = handle.name
        try:
            for chunk in iter_chunks(source, uri):
                digest.update(chunk)
                size += len(chunk)
                handle.write(chunk)
        except MissingObjectError as error:
            raise InputError(source_uri, "the object does not exist") from error
    try:
        if isinstance(store, LocalStore):
            target = store.path(key)
            target.parent.mkdir(parents=True, exist_ok=True)
            staged = target.with_name(f".{target.name}.tmp")
            shutil.copyfile(temp, staged)
            os.replace(staged, target)
        elif isinstance(store, S3Store):
            bucket, full = _s3_parts(store, key)
            store.client.upload_file(temp, bucket, full)
        else:
            store.write_bytes(key, Path(temp).read_bytes())
    finally:
        os.unlink(temp)
    return StoredFile(source_uri, lake.relative(key), True, size, digest.hexdigest())


def stored_location(stored_uri: str) -> str:
    """Where to read a stored upload through the lake's store: the key of a `lake:` reference,
    or (rows written before references existed) the recorded URI as it is."""
    return lake_key(stored_uri) if is_lake_reference(stored_uri) else stored_uri
