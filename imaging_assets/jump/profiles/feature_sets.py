"""Feature sets: the ordered names (and CellProfiler compartments) that a feature vector follows.

A profile row keeps its features as one vector plus the id of its feature set. The id is the
sha256 of the set's content (ordered names and compartments), so equal sets from any writer get
the same id and a row can never point at a set that means something else.

The sets live in `feature_sets.lance` beside the profile datasets (one row per set: id, count,
names, compartments). Why a Lance dataset rather than JSON objects under the lake root: readers
reach it with exactly what they already have for the profiles (a dataset URI and Lance storage
options, local or S3), DuckDB and Polars query it like any other table (unnest the names), and
it holds no path, so a copied lake resolves its names where it now is. Concurrent writers: the
dataset is created exactly once (core.lance_tables.create_once), a set is appended only when its
id is absent, and two writers racing on the same new set append identical rows, which readers
collapse (a set is immutable: same id, same content). A commit happens only when a pipeline
produces a set the lake has never seen, a few times per source, never once per plate.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property

import lance
import pyarrow as pa

from imaging_assets.core.lance_tables import create_once, open_dataset, quote
from imaging_assets.jump.datasets import FEATURE_SETS  # noqa: F401 - its name

KNOWN_COMPARTMENTS = ("Cells", "Cytoplasm", "Nuclei", "Image")


def compartment_of(name: str) -> str:
    """CellProfiler's compartment of a feature name (its prefix), or "" when it has none."""
    prefix = name.split("_", 1)[0]
    return prefix if prefix in KNOWN_COMPARTMENTS else ""


@dataclass(frozen=True)
class FeatureSet:
    """Ordered feature names and the compartment each was measured in."""

    names: tuple[str, ...]
    compartments: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.names) != len(self.compartments):
            raise ValueError(f"{len(self.names)} names but {len(self.compartments)} compartments")
        if len(set(self.names)) != len(self.names):
            seen: set[str] = set()
            twice = next(n for n in self.names if n in seen or seen.add(n))
            raise ValueError(f"feature {twice!r} appears twice in one feature set")

    @classmethod
    def from_names(cls, names: Iterable[str]) -> FeatureSet:
        """A set whose compartments are the names' CellProfiler prefixes."""
        names = tuple(names)
        return cls(names, tuple(compartment_of(n) for n in names))

    @cached_property
    def id(self) -> str:
        content = json.dumps(
            {"names": list(self.names), "compartments": list(self.compartments)},
            separators=(",", ":"),
        )
        return hashlib.sha256(content.encode()).hexdigest()

    @cached_property
    def position(self) -> dict[str, int]:
        """Name -> index in the vector."""
        return {name: i for i, name in enumerate(self.names)}

    def __len__(self) -> int:
        return len(self.names)


def feature_sets_schema() -> pa.Schema:
    return pa.schema(
        [
            pa.field("feature_set", pa.string(), nullable=False),
            pa.field("n_features", pa.int32()),
            pa.field("names", pa.list_(pa.string())),
            pa.field("compartments", pa.list_(pa.string())),
        ]
    )


def _rows(feature_sets: Sequence[FeatureSet]) -> pa.Table:
    return pa.table(
        {
            "feature_set": [s.id for s in feature_sets],
            "n_features": pa.array([len(s) for s in feature_sets], pa.int32()),
            "names": [list(s.names) for s in feature_sets],
            "compartments": [list(s.compartments) for s in feature_sets],
        },
        schema=feature_sets_schema(),
    )


def ensure_feature_set(
    uri: str, feature_set: FeatureSet, storage_options: dict | None = None
) -> bool:
    """Store the set at `uri` (feature_sets.lance) unless it is there; True when this call added it.

    Call it before committing rows that refer to the set, so every stored id resolves.
    """
    create_once(uri, feature_sets_schema(), storage_options)
    dataset = lance.dataset(uri, storage_options=storage_options)
    if dataset.count_rows(filter=f"feature_set = {quote(feature_set.id)}"):
        return False
    lance.write_dataset(_rows([feature_set]), uri, mode="append", storage_options=storage_options)
    return True


def load_feature_sets(
    uri: str, ids: Iterable[str], storage_options: dict | None = None
) -> dict[str, FeatureSet]:
    """The sets with these ids; a KeyError names any id the registry does not hold."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    dataset = open_dataset(uri, storage_options)
    found: dict[str, FeatureSet] = {}
    if dataset is not None:
        table = dataset.to_table(
            columns=["feature_set", "names", "compartments"],
            filter="feature_set IN (" + ", ".join(quote(i) for i in wanted) + ")",
        )
        for row in table.to_pylist():
            found.setdefault(
                row["feature_set"], FeatureSet(tuple(row["names"]), tuple(row["compartments"]))
            )
    missing = [i for i in wanted if i not in found]
    if missing:
        raise KeyError(f"{uri}: no feature set {', '.join(missing)}")
    for key, feature_set in found.items():
        if feature_set.id != key:
            raise ValueError(f"{uri}: feature set {key} does not hash to its id")
    return found
