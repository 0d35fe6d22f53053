"""What every row of every Lance table says about how it was made (shared by all domains).

Tables are of four kinds, and each kind carries columns in these roles (names differ by table:
`dna_raw_uri` and `source_uri` both play "source_uri"; the roles are matched by name):

- raw: rows made from raw objects: the object's canonical URI, where it was read, its size and an
  md5 and/or sha256, the package version, the Dagster run and the time written;
- derived: rows made from other lake tables: the upstream dataset's version read (e.g.
  `site_images_version`), package version, run, time;
- failures: raw objects that could not be used: URI, where read, the kind of failure, package
  version, run, time;
- registry: entries registered from a manifest: source URI, package version, run, time.

Each domain declares the kind of each of its tables (`TABLES` in its datasets module), and the
contract test checks every table of a lake against it.
"""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa

from imaging_assets import __version__ as PACKAGE_VERSION

RAW, DERIVED, FAILURES, REGISTRY = "raw", "derived", "failures", "registry"

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
}


def missing_provenance(schema: pa.Schema, kind: str) -> list[str]:
    """The provenance roles a table of this kind lacks (empty: it carries them all)."""
    names = schema.names
    return [role for role in REQUIRED[kind] if not any(ROLES[role](n) for n in names)]


__all__ = ["DERIVED", "FAILURES", "PACKAGE_VERSION", "RAW", "REGISTRY", "missing_provenance"]
