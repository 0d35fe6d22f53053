"""`imaging-assets runs fail`: a run that died unnoticed is marked failed; its plate's lease goes."""

from __future__ import annotations

import json
import shutil
import time

from dagster import DagsterInstance, DagsterRunStatus
from dagster._core.test_utils import create_run_for_test

from imaging_assets.cli.main import main
from imaging_assets.core.lease import Lease, lease_prefix
from imaging_assets.core.stores import LocalStore
from imaging_assets_tests.conftest import PROJECT_ROOT


def test_a_dead_run_marked_failed_frees_its_plate_at_once(tmp_path, monkeypatch, capsys):
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with DagsterInstance.get() as instance:
        run = create_run_for_test(instance, job_name="plate_job", status=DagsterRunStatus.STARTED)
    store = LocalStore(tmp_path / "lake")
    body = {"state": "held", "holder": {"run_id": run.run_id, "host": "elsewhere", "pid": 1},
            "renewed_at": time.time()}  # fmt: skip
    store.write_bytes(f"{lease_prefix('site_images', 's__P')}000000000001.json",
                      json.dumps(body).encode())  # fmt: skip

    assert main(["runs", "fail", run.run_id]) == 0
    assert "marked FAILED" in capsys.readouterr().out
    with DagsterInstance.get() as instance:
        assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.FAILURE

        def alive(run_id: str) -> bool | None:
            found = instance.get_run_by_id(run_id)
            return None if found is None else not found.is_finished

        with Lease(store, "site_images", "s__P", "run-next", run_alive=alive, wait_s=0) as lease:
            assert "no longer in progress" in lease.took_over
    assert main(["runs", "fail", "no-such-run"]) == 2
    assert "no-such-run" in capsys.readouterr().err


def test_plates_attention_lists_failing_plates_with_their_next_retry(tmp_path, monkeypatch, capsys):
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    assert main(["plates", "attention"]) == 0
    assert "no plate failed" in capsys.readouterr().out
    with DagsterInstance.get() as instance:
        for _ in range(2):
            create_run_for_test(
                instance,
                job_name="plate_job",
                status=DagsterRunStatus.FAILURE,
                tags={"dagster/partition": "source_9__BAD"},
            )
    assert main(["plates", "attention"]) == 0
    out = capsys.readouterr().out
    assert "source_9__BAD" in out and " 2 " in out
