"""The manifest of a specimen collection, from delimiter listings, incrementally.

One delimiter listing of the collection's prefix (plus one per split folder) finds the specimen
folders; only the specimens not seen before (or all, with `refresh`) are then listed, each under
its own prefix. The whole bucket is never listed recursively at once. Listings are paginated
(S3 pages of 1,000 keys) and every request is counted by the store.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from imaging_assets.core.errors import MissingObjectError
from imaging_assets.core.stores import LocalStore, ObjectStore, S3Store
from imaging_assets.stacks.layout import SKELETON, SLICE, LayoutRules, check_specimen_name

FILES_SCHEMA = pa.schema(
    [
        pa.field("specimen", pa.string()),
        pa.field("split", pa.string()),
        pa.field("key", pa.string()),
        pa.field("uri", pa.string()),
        pa.field("size", pa.int64()),
        pa.field("etag", pa.string()),
        pa.field("last_modified", pa.timestamp("us", tz="UTC")),
        pa.field("role", pa.string()),
        pa.field("z", pa.int32()),
    ]
)
SPECIMENS_SCHEMA = pa.schema(
    [
        pa.field("specimen", pa.string()),
        pa.field("split", pa.string()),
        pa.field("prefix", pa.string()),
        pa.field("files", pa.int32()),
        pa.field("bytes", pa.int64()),
        pa.field("slices", pa.int32()),
        pa.field("z_min", pa.int32()),
        pa.field("z_max", pa.int32()),
        pa.field("skeleton_key", pa.string()),
        pa.field("listed_at", pa.timestamp("us", tz="UTC")),
    ]
)


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str | None
    last_modified: dt.datetime | None


@dataclass(frozen=True)
class SpecimenFolder:
    specimen: str
    split: str
    prefix: str


def _local_listing(store: LocalStore, prefix: str, recursive: bool) -> tuple[list, list[str]]:
    store._count()
    folder = store.path(prefix)
    if not folder.is_dir():
        return [], []
    base = prefix if prefix.endswith("/") or not prefix else prefix + "/"
    files, folders = [], []
    paths = sorted(folder.rglob("*") if recursive else folder.iterdir())
    for path in paths:
        if path.is_dir():
            if not recursive:
                folders.append(f"{base}{path.name}/")
            continue
        stat = path.stat()
        files.append(
            ObjectInfo(
                key=path.relative_to(store.base).as_posix(),
                size=stat.st_size,
                etag=None,
                last_modified=dt.datetime.fromtimestamp(stat.st_mtime, dt.UTC),
            )
        )
    return files, folders


def list_folder(
    store: ObjectStore, prefix: str, *, recursive: bool = False
) -> tuple[list[ObjectInfo], list[str]]:
    """(files with size/ETag/time, sub-folder prefixes) under `prefix`; paginated on S3."""
    prefix = prefix if prefix.endswith("/") or not prefix else prefix + "/"
    if isinstance(store, LocalStore):
        return _local_listing(store, prefix, recursive)
    if isinstance(store, S3Store):
        files, folders = [], []
        for page in store._pages(prefix, None if recursive else "/"):
            for entry in page.get("Contents", []):
                files.append(
                    ObjectInfo(
                        key=entry["Key"][len(store.prefix) :],
                        size=int(entry["Size"]),
                        etag=(entry.get("ETag") or "").strip('"') or None,
                        last_modified=entry.get("LastModified"),
                    )
                )
            for entry in page.get("CommonPrefixes", []):
                folders.append(entry["Prefix"][len(store.prefix) :])
        return files, sorted(folders)
    raise NotImplementedError(f"{store.root}: this store cannot be listed")


def specimen_folders(store: ObjectStore, rules: LayoutRules) -> list[SpecimenFolder]:
    """Every specimen folder: one delimiter listing of the prefix, one per split folder."""
    found = []
    _, top = list_folder(store, rules.base)
    for folder in top:
        name = folder.rstrip("/").rsplit("/", 1)[-1]
        split = rules.split_of(name)
        if split is None:
            found.append(
                SpecimenFolder(
                    check_specimen_name(name, store.uri(folder)), rules.default_split, folder
                )
            )
            continue
        _, inner = list_folder(store, folder)
        for sub in inner:
            sub_name = sub.rstrip("/").rsplit("/", 1)[-1]
            found.append(SpecimenFolder(check_specimen_name(sub_name, store.uri(sub)), split, sub))
    names = [f.specimen for f in found]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(
            f"{store.uri(rules.base)}: specimen names appear in more than one split folder: "
            f"{', '.join(duplicates[:5])}; partition keys must be unique"
        )
    return found


def list_specimen(
    store: ObjectStore, rules: LayoutRules, folder: SpecimenFolder
) -> tuple[list[dict], dict]:
    """(file rows, specimen row) of one specimen folder, from one (paginated) listing."""
    now = dt.datetime.now(dt.UTC)
    objects, _ = list_folder(store, folder.prefix, recursive=True)
    files = []
    for info in objects:
        role, z = rules.classify(info.key)
        files.append(
            {
                "specimen": folder.specimen,
                "split": folder.split,
                "key": info.key,
                "uri": store.uri(info.key),
                "size": info.size,
                "etag": info.etag,
                "last_modified": info.last_modified,
                "role": role,
                "z": z,
            }
        )
    slices = [f["z"] for f in files if f["role"] == SLICE]
    skeletons = sorted(f["key"] for f in files if f["role"] == SKELETON)
    specimen = {
        "specimen": folder.specimen,
        "split": folder.split,
        "prefix": folder.prefix,
        "files": len(files),
        "bytes": sum(f["size"] for f in files),
        "slices": len(slices),
        "z_min": min(slices) if slices else None,
        "z_max": max(slices) if slices else None,
        "skeleton_key": skeletons[0] if skeletons else None,
        "listed_at": now,
    }
    return files, specimen


@dataclass
class Manifest:
    files: pa.Table
    specimens: pa.Table

    @classmethod
    def empty(cls) -> Manifest:
        return cls(FILES_SCHEMA.empty_table(), SPECIMENS_SCHEMA.empty_table())

    @property
    def specimen_names(self) -> list[str]:
        return self.specimens["specimen"].to_pylist()

    def specimen(self, name: str) -> dict | None:
        rows = self.specimens.filter(pc.equal(self.specimens["specimen"], name)).to_pylist()
        return rows[0] if rows else None

    def files_of(self, name: str, role: str | None = None) -> list[dict]:
        rows = self.files.filter(pc.equal(self.files["specimen"], name)).to_pylist()
        return [r for r in rows if role is None or r["role"] == role]

    def export_json(self) -> dict:
        """The users' shape: {specimen: {"swc": key or None, "imagestack": [keys by z]}}."""
        out = {}
        for row in self.specimens.to_pylist():
            slices = sorted(self.files_of(row["specimen"], SLICE), key=lambda f: (f["z"], f["key"]))
            out[row["specimen"]] = {
                "swc": row["skeleton_key"],
                "imagestack": [f["key"] for f in slices],
            }
        return out

    def size_table(self) -> list[dict]:
        """Specimens by bytes, largest first."""
        rows = self.specimens.select(["specimen", "split", "files", "slices", "bytes"]).to_pylist()
        return sorted(rows, key=lambda r: (-r["bytes"], r["specimen"]))

    def totals_by_split(self) -> dict[str, dict]:
        totals: dict[str, dict] = {}
        for row in self.specimens.to_pylist():
            t = totals.setdefault(
                row["split"], {"specimens": 0, "files": 0, "slices": 0, "bytes": 0}
            )
            t["specimens"] += 1
            t["files"] += row["files"]
            t["slices"] += row["slices"]
            t["bytes"] += row["bytes"]
            t["skeletons"] = t.get("skeletons", 0) + (row["skeleton_key"] is not None)
        return totals


@dataclass(frozen=True)
class ScanResult:
    manifest: Manifest
    new: list[str]
    listed: list[str]
    gone: list[str]
    requests: int


def scan(
    store: ObjectStore,
    rules: LayoutRules,
    previous: Manifest | None = None,
    *,
    refresh: bool = False,
    max_new: int = 0,
) -> ScanResult:
    """The manifest after listing the specimen folders and the specimens not seen before.

    Specimens of `previous` that are still there keep their rows unlisted (unless `refresh`);
    folders that disappeared are dropped (reported in `gone`). `max_new` > 0 bounds how many
    unseen specimens are listed now (the rest on a later scan).
    """
    before = store.request_count
    previous = previous or Manifest.empty()
    seen = set(previous.specimen_names)
    folders = specimen_folders(store, rules)
    present = {f.specimen for f in folders}
    to_list = [f for f in folders if refresh or f.specimen not in seen]
    if max_new:
        unseen = [f for f in to_list if f.specimen not in seen][:max_new]
        to_list = [f for f in to_list if f.specimen in seen] + unseen
    listed_names = {f.specimen for f in to_list}
    keep = [n for n in previous.specimen_names if n in present and n not in listed_names]
    files_rows, specimen_rows = [], []
    for folder in to_list:
        files, specimen = list_specimen(store, rules, folder)
        files_rows += files
        specimen_rows.append(specimen)
    kept_files = previous.files.filter(
        pc.is_in(previous.files["specimen"], pa.array(keep, pa.string()))
    )
    kept_specimens = previous.specimens.filter(
        pc.is_in(previous.specimens["specimen"], pa.array(keep, pa.string()))
    )
    files = pa.concat_tables(
        [kept_files.cast(FILES_SCHEMA), pa.Table.from_pylist(files_rows, schema=FILES_SCHEMA)]
    ).sort_by([("specimen", "ascending"), ("key", "ascending")])
    specimens = pa.concat_tables(
        [
            kept_specimens.cast(SPECIMENS_SCHEMA),
            pa.Table.from_pylist(specimen_rows, schema=SPECIMENS_SCHEMA),
        ]
    ).sort_by([("specimen", "ascending")])
    return ScanResult(
        manifest=Manifest(files, specimens),
        new=sorted(n for n in listed_names if n not in seen),
        listed=sorted(listed_names),
        gone=sorted(seen - present),
        requests=store.request_count - before,
    )


def locate_specimen(
    store: ObjectStore, rules: LayoutRules, specimen: str, manifest: Manifest | None
) -> SpecimenFolder:
    """Where a specimen's folder is: from the manifest, else from the folder listing."""
    row = manifest.specimen(specimen) if manifest is not None else None
    if row is not None:
        return SpecimenFolder(row["specimen"], row["split"], row["prefix"])
    for folder in specimen_folders(store, rules):
        if folder.specimen == specimen:
            return folder
    raise KeyError(f"{store.uri(rules.base)}: no specimen folder named {specimen!r}")


def dumps_export(manifest: Manifest) -> str:
    return json.dumps(manifest.export_json(), indent=1, sort_keys=True) + os.linesep


def manifest_prefix(collection: str) -> str:
    """Where a collection's manifest lives, relative to the lake root."""
    return f"stack_manifests/{collection}/"


def save_manifest(store: ObjectStore, collection: str, manifest: Manifest, export: dict) -> str:
    """Keep the manifest in the lake: files and specimens as Parquet, the export as JSON."""
    prefix = manifest_prefix(collection)
    for name, table in (("files", manifest.files), ("specimens", manifest.specimens)):
        sink = io.BytesIO()
        pq.write_table(table, sink, compression="zstd")
        store.write_bytes(f"{prefix}{name}.parquet", sink.getvalue())
    return store.write_bytes(f"{prefix}manifest.json", json.dumps(export, indent=1).encode())


def load_manifest(store: ObjectStore, collection: str) -> Manifest | None:
    """The manifest an earlier listing kept in the lake, None before the first one."""
    prefix = manifest_prefix(collection)
    try:
        files = pq.read_table(io.BytesIO(store.read(f"{prefix}files.parquet").data))
        specimens = pq.read_table(io.BytesIO(store.read(f"{prefix}specimens.parquet").data))
    except MissingObjectError:
        return None
    return Manifest(files.cast(FILES_SCHEMA), specimens.cast(SPECIMENS_SCHEMA))
