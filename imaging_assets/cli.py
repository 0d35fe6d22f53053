"""`imaging-assets`: generate the sample gallery, run the demo, start `dagster dev` on it."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from imaging_assets.progress import ProgressBar


def _sample(args: argparse.Namespace) -> int:
    from imaging_assets.sample import generate_gallery

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
    from imaging_assets.demo import run_demo

    report = run_demo(
        Path(args.workdir),
        preset=args.preset,
        seed=args.seed,
        plates=args.plates or (),
        progress=ProgressBar("images"),
    )
    print(report.render())
    return 1 if report.failed_plates else 0


def dagster_dev_command(port: int) -> list[str]:
    """`dagster dev` for this code location, web UI on loopback only."""
    dagster = str(Path(sys.executable).with_name("dagster"))
    return [dagster, "dev", "-m", "imaging_assets.definitions", "-h", "127.0.0.1", "-p", str(port)]


def _dev(args: argparse.Namespace) -> int:
    from imaging_assets.demo import DemoPaths, prepare_environment

    paths = DemoPaths(Path(args.workdir).resolve())
    prepare_environment(paths)
    command = dagster_dev_command(args.port)
    print(f"DAGSTER_HOME={os.environ['DAGSTER_HOME']} {' '.join(command)}", file=sys.stderr)
    return subprocess.call(command)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="imaging-assets", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    sample = commands.add_parser("sample", help="write the sample Cell Painting gallery")
    sample.add_argument("--root", required=True, help="folder to write the gallery into")
    sample.add_argument("--preset", default="default", help="default or tiny")
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--workers", type=int, default=None, help="processes (default: cores)")
    sample.set_defaults(run=_sample)

    demo = commands.add_parser("demo", help="generate the gallery and materialize every asset")
    demo.add_argument("--workdir", default=".demo", help="holds gallery/, lake/, dagster_home/")
    demo.add_argument("--preset", default="default", help="default or tiny")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--plates", nargs="*", help="only these partition keys (<source>__<plate>)")
    demo.set_defaults(run=_demo)

    dev = commands.add_parser("dev", help="dagster dev on the demo work directory")
    dev.add_argument("--workdir", default=".demo")
    dev.add_argument("--port", type=int, default=3000)
    dev.set_defaults(run=_dev)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, OSError) as error:  # bad input or an unreachable store: say so, briefly
        print(f"imaging-assets {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
