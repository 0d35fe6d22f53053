"""`imaging-assets runs fail RUN_ID`: end a run that died without the instance noticing;
`imaging-assets plates attention|backfill`: failing plates, and batch runs for many plates.

A run whose process was killed while nothing watched it (a laptop without a daemon, a code server
restarted under it) stays STARTED; marking it failed lets its plate's lease be taken over at once
and its plate's queued runs start. A run that is still alive is refused unless --force.
"""

from __future__ import annotations

import argparse
import os


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


def _backfill(args: argparse.Namespace) -> int:
    """Queue plate_batch_job runs for many plates through the web UI's GraphQL API: the plates the
    schedule would pick now (missing, stale, failing ones whose back-off is over; none in flight),
    every plate (--all) or the listed ones, in batches of one source."""
    import time
    from urllib.parse import urlparse

    from dagster import DagsterInstance
    from dagster_graphql import DagsterGraphQLClient

    from imaging_assets.core.progress import ProgressBar
    from imaging_assets.defs.common.batches import batch_run_config
    from imaging_assets.defs.jump.partitions import PLATES_PARTITIONS_NAME
    from imaging_assets.defs.jump.schedules import plates_due
    from imaging_assets.jump.backfill import plate_batches, source_of

    use_instance(args.workdir)
    with DagsterInstance.get() as instance:
        registered = instance.get_dynamic_partitions(PLATES_PARTITIONS_NAME)
        if args.plates:
            unknown = sorted(set(args.plates) - set(registered))
            if unknown:
                raise LookupError(
                    f"not plates of the instance at {os.environ['DAGSTER_HOME']}: "
                    f"{', '.join(unknown[:10])} (run metadata_job to register plates)"
                )
            chosen, what = list(args.plates), "listed"
        elif args.all:
            chosen, what = sorted(registered), "all"
        else:
            chosen, counts, _ = plates_due(instance, 10**9, time.time())
            what = ", ".join(f"{state} {n}" for state, n in counts.items() if n)
    if args.sources:
        chosen = [key for key in chosen if source_of(key) in set(args.sources)]
    batches = plate_batches(chosen, args.plates_per_run)
    print(f"{len(chosen)} plates ({what}) in {len(batches)} runs of at most {args.plates_per_run}")
    if args.dry_run or not batches:
        return 0
    url = urlparse(args.url if "://" in args.url else f"http://{args.url}")
    client = DagsterGraphQLClient(
        url.hostname or "127.0.0.1", url.port, use_https=url.scheme == "https"
    )
    progress = ProgressBar("runs queued")
    run_ids = []
    for done, batch in enumerate(batches, start=1):
        run_ids.append(
            client.submit_job_execution(
                "plate_batch_job",
                run_config=batch_run_config(batch),
                tags={"imaging_assets/source": source_of(batch[0])},
            )
        )
        progress(done, len(batches))
    print(f"queued {len(run_ids)} plate_batch_job runs: first {run_ids[0]}, last {run_ids[-1]}")
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
    backfill = plate_commands.add_parser(
        "backfill",
        help=(
            "queue plate_batch_job runs (many plates per run, one plate run each) through the "
            "web UI: the plates due now, --all, or --plates"
        ),
    )
    backfill.add_argument("--plates", nargs="+", help="these plate partition keys")
    backfill.add_argument("--all", action="store_true", help="every registered plate")
    backfill.add_argument("--sources", nargs="+", help="only plates of these sources")
    backfill.add_argument(
        "--plates-per-run",
        type=int,
        default=int(os.environ.get("IMAGING_ASSETS_PLATES_PER_RUN", "25")),
        help="plates per batch run (default: IMAGING_ASSETS_PLATES_PER_RUN or 25)",
    )
    backfill.add_argument(
        "--url", default="http://127.0.0.1:3000", help="the web UI (dagster dev, compose)"
    )
    backfill.add_argument("--dry-run", action="store_true", help="count the runs, queue none")
    backfill.set_defaults(run=_backfill)
    for command in (attention, backfill):
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
