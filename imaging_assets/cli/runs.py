"""`imaging-assets runs fail RUN_ID`: end a run that died without the instance noticing.

A run whose process was killed while nothing watched it (a laptop without a daemon, a code server
restarted under it) stays STARTED; marking it failed lets its plate's lease be taken over at once
and its plate's queued runs start. A run that is still alive is refused unless --force.
"""

from __future__ import annotations

import argparse


def use_instance(workdir: str) -> None:
    """$DAGSTER_HOME (created if missing), else the demo's work directory's Dagster home."""
    import os
    from pathlib import Path

    from imaging_assets.demo.runner import DemoPaths, prepare_environment

    if "DAGSTER_HOME" in os.environ:
        Path(os.environ["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)
    else:
        prepare_environment(DemoPaths(Path(workdir).resolve()))


def _fail(args: argparse.Namespace) -> int:
    from dagster import DagsterInstance

    use_instance(args.workdir)
    with DagsterInstance.get() as instance:
        run = instance.get_run_by_id(args.run_id)
        if run is None:
            raise LookupError(f"run {args.run_id} is not in the Dagster instance")
        if run.is_finished:
            print(f"run {args.run_id} already ended ({run.status.value}); nothing to do")
            return 0
        instance.report_engine_event(
            f"marked failed from the command line: {args.reason}", run, cls=None
        )
        instance.report_run_failed(run)
    print(f"run {args.run_id} marked FAILED; its plate's lease is taken over by the next run")
    return 0


def _attention(args: argparse.Namespace) -> int:
    """Plates whose runs keep failing, with their last error (what the schedule backs off)."""
    import datetime as dt

    from dagster import DagsterInstance

    from imaging_assets.defs.jump.schedules import plate_histories
    from imaging_assets.jump.backfill import Backoff, needing_attention

    use_instance(args.workdir)
    with DagsterInstance.get() as instance:
        failing = needing_attention(plate_histories(instance), args.min_failures)
    if not failing:
        print(f"no plate failed {args.min_failures} or more times in a row")
        return 0
    backoff = Backoff()
    print(f"{'plate':<34} {'failures':>8}  {'next try (UTC)':<17} last error")
    for key, past in failing:
        ready = (past.last_failure_at or 0) + backoff.wait_s(past.consecutive_failures)
        when = dt.datetime.fromtimestamp(ready, dt.UTC).strftime("%Y-%m-%d %H:%M")
        print(f"{key:<34} {past.consecutive_failures:>8}  {when:<17} {past.last_error or '-'}")
    return 0


def register(subparsers) -> argparse.ArgumentParser:
    """Add `runs fail` and `plates attention` to an argparse subparsers object."""
    plates = subparsers.add_parser("plates", help="plates in the Dagster instance ($DAGSTER_HOME)")
    plate_commands = plates.add_subparsers(dest="plates_command", required=True)
    attention = plate_commands.add_parser(
        "attention",
        help="plates whose runs failed again and again, with their last error and next retry",
    )
    attention.add_argument("--min-failures", type=int, default=2, help="failures in a row")
    attention.set_defaults(run=_attention)
    for command in (attention,):
        command.add_argument(
            "--workdir",
            default=".demo",
            help="the demo's work directory when DAGSTER_HOME is unset",
        )

    runs = subparsers.add_parser("runs", help="runs in the Dagster instance ($DAGSTER_HOME)")
    commands = runs.add_subparsers(dest="runs_command", required=True)
    fail = commands.add_parser(
        "fail", help="mark a run that died unnoticed as failed (it stays STARTED otherwise)"
    )
    fail.add_argument("run_id", help="the run's id (the lease's busy message names it)")
    fail.add_argument(
        "--reason", default="its process is gone", help="recorded in the run's event log"
    )
    fail.add_argument(
        "--workdir", default=".demo", help="the demo's work directory when DAGSTER_HOME is unset"
    )
    fail.set_defaults(run=_fail)
    return runs
