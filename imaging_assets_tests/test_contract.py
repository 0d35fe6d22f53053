"""The guarantees every domain gives, checked over the whole code location, so that a new asset,
check or table cannot skip them: catalog (description, owners, code version, tags; row count and
column schema on every materialization), described checks, provenance columns in every Lance table,
and a queryable failure table per domain."""

from __future__ import annotations

import os

import lance
import pytest
from dagster import AssetKey, DagsterInstance
from dagster._core.instance.ref import InstanceRef

from imaging_assets.core.provenance import FAILURES, missing_provenance
from imaging_assets.definitions import defs

DOMAINS = ("jump", "stacks", "frames")


def _asset_graph():
    return defs.resolve_asset_graph()


def test_every_asset_is_described_owned_versioned_and_tagged():
    graph = _asset_graph()
    problems = []
    for key in sorted(graph.get_all_asset_keys(), key=str):
        node = graph.get(key)
        name = key.to_user_string()
        if not (node.description or "").strip():
            problems.append(f"{name}: no description")
        if not node.owners:
            problems.append(f"{name}: no owners")
        if not node.code_version:
            problems.append(f"{name}: no code version")
        if not {"domain", "storage", "modality"} <= set(node.tags):
            problems.append(f"{name}: tags {sorted(node.tags)}")
        elif node.tags["domain"] not in DOMAINS:
            problems.append(f"{name}: domain {node.tags['domain']}")
    assert not problems, problems


def test_every_check_is_described():
    graph = _asset_graph()
    undescribed = [
        f"{key.asset_key.to_user_string()}:{key.name}"
        for key in graph.asset_check_keys
        if not (graph.get_check_spec(key).description or "").strip()
    ]
    assert graph.asset_check_keys and not undescribed, undescribed


def _domain_tables() -> dict[str, dict[str, str]]:
    """Each domain's declared tables and their kinds (core/provenance.py)."""
    from imaging_assets.frames import schema as frames_datasets
    from imaging_assets.jump import datasets as jump_datasets
    from imaging_assets.stacks import datasets as stacks_datasets

    return {
        "jump": jump_datasets.TABLES,
        "stacks": stacks_datasets.TABLES,
        "frames": frames_datasets.TABLES,
    }


def test_every_domain_has_assets_and_a_queryable_failure_table():
    from imaging_assets.frames import schema as frames_datasets
    from imaging_assets.jump import datasets as jump_datasets
    from imaging_assets.stacks import datasets as stacks_datasets

    graph = _asset_graph()
    domains = {graph.get(key).tags.get("domain") for key in graph.get_all_asset_keys()}
    assert domains == set(DOMAINS)
    for domain, tables in _domain_tables().items():
        assert FAILURES in tables.values(), f"{domain} has no failure table"
    for module in (jump_datasets, stacks_datasets, frames_datasets):
        assert missing_provenance(module.FAILURES_SCHEMA, FAILURES) == [], module.__name__


@pytest.fixture(scope="module")
def demo_instance(demo_lake):
    workdir, _ = demo_lake
    home = str(workdir / "dagster_home")
    previous = os.environ.get("DAGSTER_HOME")
    os.environ["DAGSTER_HOME"] = home  # the instance file names its storage relative to it
    try:
        with DagsterInstance.from_ref(InstanceRef.from_dir(home)) as instance:
            yield instance
    finally:
        if previous is None:
            os.environ.pop("DAGSTER_HOME", None)
        else:
            os.environ["DAGSTER_HOME"] = previous


@pytest.mark.slow
def test_every_materialization_reports_rows_and_columns(demo_instance):
    graph = _asset_graph()
    problems = []
    for key in sorted(graph.get_all_asset_keys(), key=str):
        event = demo_instance.get_latest_materialization_event(AssetKey(key.path))
        name = key.to_user_string()
        if event is None:
            problems.append(f"{name}: never materialized by the demo")
            continue
        metadata = event.asset_materialization.metadata
        for entry in ("dagster/row_count", "dagster/column_schema"):
            if entry not in metadata:
                problems.append(f"{name}: no {entry}")
    assert not problems, problems


@pytest.mark.slow
def test_every_lance_table_carries_the_shared_provenance(demo_lake):
    workdir, _ = demo_lake
    tables = sorted((workdir / "lake").glob("*.lance"))
    assert len(tables) >= 10
    kinds = {name: kind for tables in _domain_tables().values() for name, kind in tables.items()}
    problems = {}
    for path in tables:
        if path.stem not in kinds:
            problems[path.stem] = "not declared in any domain's TABLES"
        elif missing := missing_provenance(lance.dataset(str(path)).schema, kinds[path.stem]):
            problems[path.stem] = f"{kinds[path.stem]} table lacks {missing}"
    assert not problems, problems
