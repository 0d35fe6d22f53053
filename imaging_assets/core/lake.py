"""One lake handle: where the lake is, the object store under it and Lance's storage options.

Every dataset URI is built here (`<root>/<name>.lance`), and every reference a row keeps to an
object inside the lake is stored relative to the root (`relative`) and resolved against the root
the lake is opened at (`resolve`), so a lake copied to another folder or bucket reads, verifies
and accepts writes where it now is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from imaging_assets.core.s3 import S3Settings
from imaging_assets.core.stores import LocalStore, ObjectStore, has_scheme, open_store

LAKE_SCHEME = "lake:"  # prefix of a reference relative to the lake root, as stored in rows


@dataclass(frozen=True)
class Lake:
    """A lake root (a local folder or `s3://bucket/prefix`) and how to reach it."""

    root: str
    store: ObjectStore
    storage_options: dict[str, str] | None = None

    @classmethod
    def open(cls, root: str | Path, settings: S3Settings | None = None) -> Lake:
        """The lake at `root`; local roots become absolute folders, S3 roots keep their URI."""
        root = str(root)
        if root.startswith("s3://"):
            settings = settings or S3Settings()
            return cls(
                root.rstrip("/"), open_store(root, settings), settings.lance_storage_options()
            )
        store = LocalStore(root)
        return cls(str(store.root), store, None)

    @property
    def is_s3(self) -> bool:
        return self.root.startswith("s3://")

    def uri(self, name: str) -> str:
        """The URI of the Lance dataset `<name>.lance` under the root."""
        return f"{self.root.rstrip('/')}/{name}.lance"

    def relative(self, key: str) -> str:
        """How a row refers to the object at `key` (relative to the root): `lake:<key>`."""
        if has_scheme(key) or key.startswith("/"):
            raise ValueError(f"{key!r} is not a key relative to the lake root {self.root}")
        return LAKE_SCHEME + key

    def resolve(self, reference: str) -> str:
        """The URI a stored reference names: `lake:<key>` under this root, anything else as is."""
        if reference.startswith(LAKE_SCHEME):
            return self.store.uri(reference[len(LAKE_SCHEME) :])
        return reference


def is_lake_reference(reference: str) -> bool:
    return reference.startswith(LAKE_SCHEME)


def lake_key(reference: str) -> str:
    """The key under the lake root of a `lake:` reference."""
    if not is_lake_reference(reference):
        raise ValueError(f"{reference!r} is not a lake reference ({LAKE_SCHEME}<key>)")
    return reference[len(LAKE_SCHEME) :]
