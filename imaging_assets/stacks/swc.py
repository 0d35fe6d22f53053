"""A strict SWC parser: an Arrow table with exactly the file's rows, and per-specimen statistics.

Each data line is `n T x y z R P` (7 whitespace-separated fields; `#` starts a comment, also at the
end of a line; CRLF is fine). Rejected, naming the file and the line: a column count other than 7,
a non-numeric field, a repeated id, a parent that is not -1 and not an id of the file, a cycle.
Accepted and reported (they occur in real reconstructions): several roots, non-standard type codes,
zero radius, children listed before their parents.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from imaging_assets.core.errors import InputError
from imaging_assets.core.lance_tables import addable

STANDARD_TYPES = {0: "undefined", 1: "soma", 2: "axon", 3: "basal_dendrite", 4: "apical_dendrite"}
NODE_SCHEMA = pa.schema(
    [
        pa.field("line", pa.int32()),
        pa.field("n", pa.int64()),
        pa.field("type", pa.int32()),
        pa.field("x", pa.float64()),
        pa.field("y", pa.float64()),
        pa.field("z", pa.float64()),
        pa.field("radius", pa.float64()),
        pa.field("parent", pa.int64()),
    ]
)
EXPECTED = "7 whitespace-separated fields: n type x y z radius parent"


class SwcError(InputError):
    """A malformed SWC file; names the file and the line."""

    def __init__(self, file: str, line: int, problem: str, expected: str | None = None) -> None:
        super().__init__(file, problem, expected=expected)
        self.line = line
        self.args = (
            f"{file}, line {line}: {problem}" + (f" (expected {expected})" if expected else ""),
        )


@dataclass(frozen=True)
class SwcStats:
    nodes: int
    roots: int
    branch_points: int
    tips: int
    cable_length: float
    types_seen: list[int]
    nonstandard_types: list[int] = field(default_factory=list)
    zero_radius_nodes: int = 0
    children_before_parents: int = 0

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def parse_swc(text: str, file: str) -> tuple[pa.Table, SwcStats]:
    """The file's nodes (one row per data line, file order, with its line number) and stats."""
    rows: list[tuple] = []
    line_of: dict[int, int] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        fields = raw.split("#", 1)[0].split()
        if not fields:
            continue
        if len(fields) != 7:
            raise SwcError(file, number, f"{len(fields)} fields", EXPECTED)
        try:
            n, kind, parent = int(fields[0]), int(fields[1]), int(fields[6])
            x, y, z, r = (float(v) for v in fields[2:6])
        except ValueError:
            raise SwcError(
                file, number, f"non-numeric field in {raw.strip()!r}", EXPECTED
            ) from None
        if n < 0:
            raise SwcError(file, number, f"negative id {n}", "ids >= 0")
        if n in line_of:
            raise SwcError(file, number, f"repeated id {n} (first on line {line_of[n]})")
        line_of[n] = number
        rows.append((number, n, kind, x, y, z, r, parent))
    by_id = {row[1]: row for row in rows}
    children: dict[int, int] = {}
    late = 0
    for number, n, _kind, *_xyzr, parent in rows:
        if parent == -1:
            continue
        if parent not in by_id:
            raise SwcError(file, number, f"node {n} has parent {parent}, which is not in the file")
        late += line_of[parent] > number
        children[parent] = children.get(parent, 0) + 1
    _check_acyclic(file, by_id, line_of)
    cable = sum(math.dist(row[3:6], by_id[row[7]][3:6]) for row in rows if row[7] != -1)
    types = sorted({row[2] for row in rows})
    stats = SwcStats(
        nodes=len(rows),
        roots=sum(row[7] == -1 for row in rows),
        branch_points=sum(count >= 2 for count in children.values()),
        tips=sum(row[1] not in children for row in rows),
        cable_length=round(cable, 6),
        types_seen=types,
        nonstandard_types=[t for t in types if t not in STANDARD_TYPES],
        zero_radius_nodes=sum(row[6] == 0 for row in rows),
        children_before_parents=late,
    )
    columns = list(zip(*rows, strict=True)) if rows else [[] for _ in NODE_SCHEMA]
    table = pa.Table.from_arrays(
        [pa.array(col, type=f.type) for col, f in zip(columns, NODE_SCHEMA, strict=True)],
        schema=NODE_SCHEMA,
    )
    return table, stats


def _check_acyclic(file: str, by_id: dict[int, tuple], line_of: dict[int, int]) -> None:
    """Every node's chain of parents ends at a root (-1)."""
    done: set[int] = set()
    for start in by_id:
        path: list[int] = []
        on_path: set[int] = set()
        node = start
        while node != -1 and node not in done:
            if node in on_path:
                cycle = path[path.index(node) :]
                raise SwcError(
                    file,
                    line_of[node],
                    f"cycle through ids {' -> '.join(map(str, [*cycle, node]))}",
                    "every chain of parents to end at a root (parent -1)",
                )
            path.append(node)
            on_path.add(node)
            node = by_id[node][7]
        done.update(path)


def skeleton_schema() -> pa.Schema:
    """Rows of `skeletons.lance`: the file's nodes plus specimen and the SWC's provenance.

    `node_key` (`<specimen>__<node id>`) and `written_at` were added later: older lakes gain them
    (null for rows written before)."""
    return pa.schema(
        [
            addable(pa.field("node_key", pa.string())),
            pa.field("specimen", pa.string()),
            pa.field("split", pa.string()),
            *NODE_SCHEMA,
            pa.field("raw_uri", pa.string()),
            addable(pa.field("read_uri", pa.string())),  # where read (added later: null before)
            pa.field("raw_size", pa.int64()),
            pa.field("raw_etag", pa.string()),
            pa.field("raw_sha256", pa.string()),
            pa.field("package_version", pa.string()),
            pa.field("dagster_run_id", pa.string()),
            addable(pa.field("written_at", pa.timestamp("us", tz="UTC"))),
        ]
    )


def with_provenance(nodes: pa.Table, specimen: str, split: str, provenance: dict) -> pa.Table:
    """`nodes` with the specimen and the SWC's raw_uri, raw_size, raw_etag, raw_sha256, ... on
    every row."""
    schema = skeleton_schema()
    values = {
        "specimen": specimen,
        "split": split,
        "written_at": dt.datetime.now(dt.UTC),
        **provenance,
    }
    node_keys = pc.binary_join_element_wise(
        pa.scalar(specimen), pc.cast(nodes["n"], pa.string()), "__"
    )
    columns = [
        node_keys
        if f.name == "node_key"
        else nodes[f.name]
        if f.name in nodes.column_names
        else pa.array([values.get(f.name)] * nodes.num_rows, f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(columns, schema=schema)
