"""imaging-assets: the sample gallery, the demo, `dagster dev` on it, and the lake's tables."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from imaging_assets.core.progress import ProgressBar


def _sample(args: argparse.Namespace) -> int:
    from imaging_assets.demo.gallery import generate_gallery

    manifest = generate_gallery(
        Path(args.root),
        preset=args.preset,
        seed=args.seed,
        workers=args.workers,
        progress=ProgressBar("images"),
    )
    print(manifest.summary())
    return 0


def _demo(args: argparse.Namespace) -> int:
    from imaging_assets.demo.runner import run_demo

    report = run_demo(
        Path(args.workdir),
        preset=args.preset,
        seed=args.seed,
        plates=args.plates or (),
        progress=ProgressBar("images"),
    )
    print(report.render())
    return 1 if report.failed else 0


def _run(args: argparse.Namespace) -> int:
    """One job (for one partition) in this process, without a daemon: the way to run a plate,
    a specimen or a dataset by hand. Without DAGSTER_HOME, the demo's work directory is used."""
    import json

    import yaml

    from imaging_assets.cli.runs import use_instance
    from imaging_assets.demo.location import location_tags
    from imaging_assets.demo.runner import QUIET, run_summary

    use_instance(args.workdir)  # Dagster refuses a home that does not exist: it is made
    from dagster import DagsterInstance

    from imaging_assets.definitions import defs

    config = dict(QUIET)
    if args.config:
        text = Path(args.config).read_text()
        config |= json.loads(text) if args.config.endswith(".json") else yaml.safe_load(text)
    job = defs.resolve_job_def(args.job)
    with DagsterInstance.get() as instance:
        if args.partition and job.partitions_def is not None:
            known = job.partitions_def.get_partition_keys(dynamic_partitions_store=instance)
            if args.partition not in known:
                raise LookupError(
                    f"{args.partition} is not a partition of {args.job} in the instance at "
                    f"{os.environ['DAGSTER_HOME']}: run the job that registers it first "
                    "(metadata_job for plates, imaging_datasets_job for datasets, the "
                    "specimen_manifest asset for specimens)"
                )
        result = job.execute_in_process(
            partition_key=args.partition,
            instance=instance,
            run_config=config,
            tags=location_tags(),
            raise_on_error=False,
        )
    print(run_summary(result, args.partition))
    return 0 if result.success else 1


def dagster_dev_command(port: int, workspace: Path) -> list[str]:
    """`dagster dev` for this code location (named by `workspace`), web UI on loopback only."""
    dagster = str(Path(sys.executable).with_name("dagster"))
    return [dagster, "dev", "-w", str(workspace), "-h", "127.0.0.1", "-p", str(port)]


def quiet_dev_environment() -> dict[str, str]:
    """The environment for `dagster dev` without its one expected warning: the CLI marks
    `dagster dev` as superseded by the `dg` tool, which this project does not use. (Started from
    the Dagster home, it also does not warn about the repository's own dagster.yaml.)"""
    quiet = "ignore:Function `dev_command` is superseded:FutureWarning"
    current = os.environ.get("PYTHONWARNINGS")
    return {**os.environ, "PYTHONWARNINGS": f"{current},{quiet}" if current else quiet}


def _dev(args: argparse.Namespace) -> int:
    from imaging_assets.demo.runner import DemoPaths, prepare_environment

    paths = DemoPaths(Path(args.workdir).resolve())
    prepare_environment(paths)
    command = dagster_dev_command(args.port, paths.dagster_home / "workspace.yaml")
    print(f"DAGSTER_HOME={os.environ['DAGSTER_HOME']} {' '.join(command)}", file=sys.stderr)
    return subprocess.call(command, cwd=paths.dagster_home, env=quiet_dev_environment())


def _lake_resource(args: argparse.Namespace):
    from imaging_assets.core.settings import default_lake_root
    from imaging_assets.defs.common.stores import LakeResource, lake_from_env

    lake = lake_from_env(default_lake_root())
    if args.lake is None:
        return lake
    return LakeResource(
        root=args.lake, endpoint_url=lake.endpoint_url, region=lake.region, anonymous=lake.anonymous
    )


def _lake_tables(args: argparse.Namespace) -> int:
    from imaging_assets.core.maintenance import parquet_tables, summarize
    from imaging_assets.core.units import human_bytes

    lake = _lake_resource(args)
    summaries = summarize(lake.store(), lake.dataset_uri, lake.storage_options())
    summaries += parquet_tables(lake.store())
    print(f"{'table':<26} {'format':<8} {'rows':>12} {'version':>8} {'files':>6} {'size':>10}  uri")
    for t in sorted(summaries, key=lambda t: t.name):
        size = "-" if t.bytes_on_disk is None else human_bytes(t.bytes_on_disk)
        version = "-" if t.version is None else str(t.version)
        print(
            f"{t.name:<26} {t.format:<8} {t.rows:>12,} {version:>8} {t.fragments:>6} "
            f"{size:>10}  {t.uri}"
        )
    if not summaries:
        print(f"(no tables under {lake.root})")
    return 0


def _lake_cleanup(args: argparse.Namespace) -> int:
    import uuid
    from datetime import timedelta

    from imaging_assets.core.maintenance import clean_dataset, lance_datasets

    lake = _lake_resource(args)
    store = lake.store()
    names = args.tables or lance_datasets(store)
    holder = f"maintenance-{uuid.uuid4().hex[:12]}"
    for name in names:
        report = clean_dataset(
            store,
            name,
            lake.dataset_uri(name),
            lake.storage_options(),
            older_than=timedelta(days=args.older_than_days),
            holder_id=holder,
            delete_unverified=not args.keep_unverified,
        )
        print(
            f"{name}: removed {report.versions_removed} old versions, "
            f"{report.bytes_removed / 1e6:,.1f} MB; current version {report.version}"
        )
    return 0


def _lake_plate(args: argparse.Namespace) -> int:
    from imaging_assets.jump.keys import parse_plate_partition_key
    from imaging_assets.jump.status import plate_status

    parse_plate_partition_key(args.partition)  # a malformed key is named before the lake is read
    print(plate_status(_lake_resource(args).handle(), args.partition).render())
    return 0


def _lake_verify(args: argparse.Namespace) -> int:
    from imaging_assets.core.progress import ProgressBar

    lake = _lake_resource(args).handle()
    bar = ProgressBar(args.what)
    if args.what == "plates":
        from imaging_assets.core.settings import default_source_root
        from imaging_assets.defs.common.stores import source_from_env
        from imaging_assets.jump.verify import verify_plates

        source = source_from_env(default_source_root()).store()
        report = verify_plates(lake, source, args.keys, args.sample, bar)
    elif args.what == "specimens":
        from imaging_assets.core.settings import home
        from imaging_assets.defs.stacks.resources import collection_from_env
        from imaging_assets.stacks.verify import verify_specimens

        collection = collection_from_env(str(home() / "stacks")).store()
        report = verify_specimens(lake, collection, args.keys, args.sample, bar)
    else:
        from imaging_assets.frames.verify import verify_datasets

        report = verify_datasets(lake, args.keys, args.sample, bar)
    bar.finish()
    for mismatch in report.mismatches:
        print(mismatch.describe())
    print(report.summary())
    for key in report.unknown:
        print(
            f"imaging-assets lake verify: error: {args.what[:-1]} {key} is not in the lake "
            f"at {lake.root}",
            file=sys.stderr,
        )
    return report.exit_code()


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default next to its help."""


def build_parser() -> argparse.ArgumentParser:
    from imaging_assets import __version__

    parser = argparse.ArgumentParser(
        prog="imaging-assets", description=__doc__, formatter_class=_HelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return commands.add_parser(
            name, help=help, description=help, formatter_class=_HelpFormatter
        )

    sample = command("sample", "write the sample Cell Painting gallery (synthetic images)")
    sample.add_argument("--root", required=True, help="folder to write the gallery into")
    sample.add_argument("--preset", default="default", help="default (2 GB) or tiny (4 MB)")
    sample.add_argument("--seed", type=int, default=0, help="same seed, same bytes")
    sample.add_argument("--workers", type=int, default=None, help="processes (None: all cores)")
    sample.set_defaults(run=_sample)

    demo = command("demo", "generate the gallery and materialize every asset for every plate")
    demo.add_argument("--workdir", default=".demo", help="holds gallery/, lake/, dagster_home/")
    demo.add_argument("--preset", default="default", help="default (2 GB) or tiny (4 MB)")
    demo.add_argument("--seed", type=int, default=0, help="sample gallery seed")
    demo.add_argument("--plates", nargs="*", help="only these partition keys (<source>__<plate>)")
    demo.set_defaults(run=_demo)

    run = command(
        "run",
        "run one job (one partition of it) in this process, without a daemon: metadata_job, "
        "plate_job, images_job, stacks_job, imaging_datasets_job, frames_job",
    )
    run.add_argument("job", help="the job's name")
    run.add_argument("--partition", help="plate <source>__<plate>, specimen or dataset id")
    run.add_argument("--config", help="run config, YAML or JSON file (as the Launchpad shows)")
    run.add_argument(
        "--workdir", default=".demo", help="the demo's work directory when DAGSTER_HOME is unset"
    )
    run.set_defaults(run=_run)

    dev = command("dev", "dagster dev (web UI on 127.0.0.1) on the demo work directory")
    dev.add_argument("--workdir", default=".demo", help="the demo's work directory")
    dev.add_argument("--port", type=int, default=3000, help="web UI port")
    dev.set_defaults(run=_dev)

    lake = command("lake", "inspect and maintain the lake's Lance tables")
    lake_commands = lake.add_subparsers(dest="lake_command", required=True, metavar="ACTION")

    def action(name: str, help: str) -> argparse.ArgumentParser:
        return lake_commands.add_parser(
            name, help=help, description=help, formatter_class=_HelpFormatter
        )

    tables = action("tables", "every table of the lake (Lance and Parquet): rows, version, size")
    plate = action(
        "plate", "one plate: rows per table, failures by kind, image QC flags, the last runs"
    )
    plate.add_argument("partition", help="the plate's partition key, <source>__<plate>")
    verify = action(
        "verify",
        "re-hash raw objects (where they were read) and stored bytes against the recorded "
        "digests; exit 1 when anything differs, 2 when a key is unknown",
    )
    verify.add_argument("what", choices=["plates", "specimens", "datasets"], help="which domain")
    verify.add_argument("keys", nargs="*", help="plates, specimens or dataset ids (none: all)")
    verify.add_argument(
        "--sample", type=int, default=None, help="rows per partition, spread evenly (none: all)"
    )
    cleanup = action(
        "cleanup",
        "remove old versions and the files that killed or refused writes left behind "
        "(refuses while a plate is being written)",
    )
    cleanup.add_argument("tables", nargs="*", help="table names (none: every table)")
    cleanup.add_argument(
        "--older-than-days",
        type=float,
        default=7.0,
        help="keep versions younger than this many days, for time travel",
    )
    cleanup.add_argument(
        "--keep-unverified",
        action="store_true",
        help="leave unreferenced staged files younger than 7 days (Lance's own rule)",
    )
    for sub, run in (
        (tables, _lake_tables),
        (plate, _lake_plate),
        (verify, _lake_verify),
        (cleanup, _lake_cleanup),
    ):
        sub.add_argument(
            "--lake", default=None, help="lake root (None: $IMAGING_ASSETS_LAKE, else the demo's)"
        )
        sub.set_defaults(run=run)
    from imaging_assets.cli.datasets import register as register_datasets
    from imaging_assets.cli.runs import register as register_runs

    register_datasets(commands)
    register_runs(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return args.run(args)
    except LookupError as error:  # an unknown plate, specimen or dataset: one line, non-zero
        message = error.args[0] if error.args else str(error)
        print(f"imaging-assets {args.command}: error: {message}", file=sys.stderr)
        return 2
    except (ValueError, OSError, RuntimeError) as error:  # bad input, busy or unreachable store
        print(f"imaging-assets {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
