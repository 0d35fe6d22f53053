"""Deterministic sampling: quotas per role, independence from row order and from other sites."""

from __future__ import annotations

import random

import pyarrow as pa

from imaging_assets.jump.sampling import SamplingQuotas, sample_sites, sampling_summary


def _plate(sites_per_well: int = 9) -> pa.Table:
    rows = []
    for well, role in [("A01", "trt"), ("A02", "poscon"), ("A03", "negcon"), ("A04", "empty")]:
        for site in range(1, sites_per_well + 1):
            for channel in ("DNA", "RNA"):
                rows.append(
                    {
                        "source": "source_1",
                        "plate": "P1",
                        "well": well,
                        "site": str(site),
                        "channel": channel,
                        "site_key": f"source_1__P1__{well}__{site}",
                        "control_role": role,
                        "has_metadata": True,
                    }
                )
    return pa.Table.from_pylist(rows)


def _sites(table: pa.Table) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for row in table.to_pylist():
        out.setdefault(row["well"], set()).add(row["site"])
    return out


def test_quotas_per_role_and_every_channel_kept():
    table = sample_sites(_plate(), "COMPOUND", SamplingQuotas())
    sites = _sites(table)
    assert {w: len(s) for w, s in sites.items()} == {"A01": 6, "A02": 4, "A03": 3}
    assert table.num_rows == 2 * (6 + 4 + 3)
    assert sampling_summary(table)["poscon"] == {"sites": 4, "wells": 1}


def test_row_order_does_not_matter_and_seed_does():
    table = _plate()
    rows = table.to_pylist()
    random.Random(7).shuffle(rows)
    shuffled = pa.Table.from_pylist(rows, schema=table.schema)
    quotas = SamplingQuotas()
    assert _sites(sample_sites(table, "COMPOUND", quotas)) == _sites(
        sample_sites(shuffled, "COMPOUND", quotas)
    )
    other = SamplingQuotas(seed=1)
    assert _sites(sample_sites(table, "COMPOUND", quotas)) != _sites(
        sample_sites(table, "COMPOUND", other)
    )


def test_small_wells_keep_everything_and_dropped_types_are_empty():
    table = _plate(sites_per_well=2)
    assert {w: len(s) for w, s in _sites(sample_sites(table, "ORF", SamplingQuotas())).items()} == {
        "A01": 2,
        "A02": 2,
        "A03": 2,
    }
    dropped = sample_sites(table, "DMSO", SamplingQuotas())
    assert dropped.num_rows == 0 and dropped.schema == table.schema
    excluded = sample_sites(table, "ORF", SamplingQuotas(excluded_sources=frozenset({"source_1"})))
    assert excluded.num_rows == 0


def test_raising_a_quota_only_adds_sites():
    table = _plate()
    small = _sites(sample_sites(table, "COMPOUND", SamplingQuotas()))
    bigger = SamplingQuotas(sites_per_role={"trt": 8, "poscon": 4, "negcon": 3})
    large = _sites(sample_sites(table, "COMPOUND", bigger))
    assert small["A01"] < large["A01"]
