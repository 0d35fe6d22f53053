"""What every row of every Lance table says about how it was made (shared by all domains).

Tables are of four kinds, and each kind carries columns in these roles (names differ by table:
`dna_raw_uri` and `source_uri` both play "source_uri"; the roles are matched by name):

- raw: rows made from raw objects: the object's canonical URI, where it was read, its size and an
  md5 and/or sha256, the package version, the Dagster run and the time written;
- derived: rows made from other lake tables: the upstream dataset's version read (e.g.
  `site_images_version`), package version, run, time;
- failures: raw objects that could not be used: URI, where read, the kind of failure, package
  version, run, time;
- registry: entries registered from a manifest: source URI, package version, run, time;
- reference: content-addressed lookup rows (feature sets named by the hash of their names), the
  same whoever wrote them: no run provenance.

Each domain declares the kind of each of its tables (`TABLES` in its datasets module), and the
contract test checks every table of a lake against it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pyarrow as pa

from imaging_assets import __version__

PACKAGE_VERSION = __version__  # the package that wrote a row

RAW, DERIVED, FAILURES, REGISTRY = "raw", "derived", "failures", "registry"
REFERENCE = "reference"  # content-addressed lookup tables (rows named by their content's hash)

ROLES: dict[str, Callable[[str], bool]] = {
    "source_uri": lambda n: n in ("uri", "raw_uri", "source_uri") or n.endswith("_raw_uri"),
    "read_uri": lambda n: n == "read_uri" or n.endswith("_read_uri"),
    "size": lambda n: n in ("raw_size", "size", "source_size", "nbytes") or n.endswith("_raw_size"),
    "digest": lambda n: n.endswith(("md5", "sha256")),
    "upstream_version": lambda n: (
        n.endswith("_version") and n not in ("package_version", "recipe_version")
    ),
    "failure_kind": lambda n: n in ("kind", "error_kind"),
    "package_version": lambda n: n == "package_version",
    "run_id": lambda n: n in ("dagster_run_id", "registered_run_id"),
    "written_at": lambda n: n in ("written_at", "failed_at", "stored_at", "registered_at"),
}
_RUN = ("package_version", "run_id", "written_at")
REQUIRED: dict[str, tuple[str, ...]] = {
    RAW: ("source_uri", "read_uri", "size", "digest", *_RUN),
    DERIVED: ("upstream_version", *_RUN),
    FAILURES: ("source_uri", "read_uri", "failure_kind", *_RUN),
    REGISTRY: ("source_uri", *_RUN),
    REFERENCE: (),
}


def missing_provenance(schema: pa.Schema, kind: str) -> list[str]:
    """The provenance roles a table of this kind lacks (empty: it carries them all)."""
    names = schema.names
    return [role for role in REQUIRED[kind] if not any(ROLES[role](n) for n in names)]


def source_fields() -> list[pa.Field]:
    """Columns that say which one source object a table's rows came from (a CellProfiler
    backend, a profiles file): its canonical URI, where it was read, size, sha256, and the run."""
    return [
        pa.field("source_uri", pa.string()),
        pa.field("read_uri", pa.string()),
        pa.field("source_size", pa.int64()),
        pa.field("source_sha256", pa.string()),
        pa.field("package_version", pa.string()),
        pa.field("dagster_run_id", pa.string()),
        pa.field("written_at", pa.timestamp("us", tz="UTC")),
    ]


def with_source_fields(schema: pa.Schema) -> pa.Schema:
    """`schema` with the source columns appended (those it lacks), metadata kept."""
    names = set(schema.names)
    return pa.schema(
        [*schema, *(f for f in source_fields() if f.name not in names)], metadata=schema.metadata
    )


def with_source(batch: pa.RecordBatch, values: dict, schema: pa.Schema) -> pa.RecordBatch:
    """The batch with the source columns filled with one value each (`values` by column name)."""
    n = batch.num_rows
    arrays = [
        batch.column(f.name)
        if f.name in batch.schema.names
        else pa.array([values.get(f.name)] * n, f.type)
        for f in schema
    ]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def file_sha256(path) -> str:
    """sha256 of a local file, read in chunks (a backend can be several GB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(8 * 2**20), b""):
            digest.update(chunk)
    return digest.hexdigest()
