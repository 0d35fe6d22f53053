"""`imaging-assets datasets query|get|verify`: frame datasets from the command line.

    imaging-assets datasets query --project ISP --start 2021-03-01 --microscope Nikon-Ti2
    imaging-assets datasets get ISP-2021-03-09-15-30-00-0001 ./out -c DAPI -z 4-7 -t 3
    imaging-assets datasets verify [ID ...]          # exit code 1 when anything differs

The lake is --lake, else $IMAGING_ASSETS_LAKE (+ _ENDPOINT, _REGION), else the demo's lake.
Wired into imaging_assets/cli/main.py with `register(subparsers)`.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

QUERY_COLUMNS = [
    "dataset_id",
    "acquired_at",
    "microscope",
    "upload_type",
    "frame_count",
    "parent_id",
    "description",
]


def _lake(args: argparse.Namespace):
    """(root, storage_options, store) of the lake the command reads."""
    from imaging_assets.core.settings import default_lake_root
    from imaging_assets.defs.common.stores import LakeResource, lake_from_env

    lake = lake_from_env(default_lake_root())
    if args.lake is not None:
        lake = LakeResource(
            root=args.lake,
            endpoint_url=lake.endpoint_url,
            region=lake.region,
            anonymous=lake.anonymous,
        )
    handle = lake.handle()
    return handle.root, handle.storage_options, handle.store


def _print_table(rows: list[dict], columns: list[str], stream=None) -> None:
    stream = stream or sys.stdout
    texts = [[("" if r.get(c) is None else str(r.get(c))) for c in columns] for r in rows]
    widths = [min(60, max([len(c), *(len(t[i]) for t in texts)])) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip(), file=stream)
    for t in texts:
        print(
            "  ".join(v[:w].ljust(w) for v, w in zip(t, widths, strict=True)).rstrip(), file=stream
        )


def _query(args: argparse.Namespace) -> int:
    from imaging_assets.frames.reading import query_datasets

    root, options, _ = _lake(args)
    table = query_datasets(
        root,
        options,
        columns=QUERY_COLUMNS,
        project=args.project,
        start=args.start,
        end=args.end,
        microscope=args.microscope,
        description=args.description,
        parent_id=args.parent,
        dataset_id=args.id,
    )
    rows = table.to_pylist() if table.num_columns else []
    _print_table(rows, QUERY_COLUMNS)
    print(f"({len(rows)} datasets)", file=sys.stderr)
    return 0


def _get(args: argparse.Namespace) -> int:
    import tifffile

    from imaging_assets.core.progress import ProgressBar
    from imaging_assets.frames import reading
    from imaging_assets.frames.files import iter_chunks, stored_location
    from imaging_assets.frames.ingest import decode_pixels
    from imaging_assets.frames.queries import parse_selector
    from imaging_assets.frames.schema import FRAMES

    root, options, store = _lake(args)
    row = reading.get_dataset(root, args.id, options)
    dest = Path(args.dest) / args.id
    dest.mkdir(parents=True, exist_ok=True)
    if not args.no_metadata:
        meta = {
            k: (v.isoformat() if hasattr(v, "isoformat") else v)
            for k, v in row.items()
            if k != "global_meta"
        }
        (dest / "dataset.json").write_text(json.dumps(meta, indent=1, default=str))
        (dest / "global_metadata.json").write_text(
            json.dumps(row.get("global_meta") or {}, indent=1, default=str)
        )
    if row["upload_type"] == "file":
        stored = reading.dataset_file(root, args.id, options)
        if not args.metadata_only:
            target = dest / stored["stored_uri"].rstrip("/").rsplit("/", 1)[-1]
            with open(target, "wb") as handle:
                for chunk in iter_chunks(store, stored_location(stored["stored_uri"])):
                    handle.write(chunk)
            print(f"{target} ({stored['size']} bytes, sha256 {stored['sha256']})")
        return 0
    selection = reading.select(
        root,
        args.id,
        options,
        c=parse_selector(args.c),
        z=parse_selector(args.z),
        t=parse_selector(args.t),
        p=parse_selector(args.p),
    )
    info = reading.frames_table(
        root, args.id, options, c=selection.c, z=selection.z, t=selection.t, p=selection.p
    )
    if not args.no_metadata:
        with open(dest / "frames_metadata.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            columns = ["frame_key", "c", "z", "t", "p", "channel_name", "height", "width"]
            writer.writerow([*columns, "dtype", "sha256", "meta"])
            for r in info.to_pylist():
                writer.writerow([*(r[c] for c in columns), r["dtype"], r["sha256"], r["meta"]])
    if args.metadata_only:
        print(f"{dest}: metadata of {info.num_rows} frames")
        return 0
    dataset = reading._open(root, FRAMES, options)  # noqa: SLF001
    bar = ProgressBar("frames")
    written = 0
    total = info.num_rows
    for r, data in reading.iter_pixels(
        dataset, selection.filter(), ["c", "z", "t", "p", "height", "width", "dtype"]
    ):
        array = decode_pixels(data, r["dtype"], r["height"], r["width"])
        name = f"img_c{r['c']:03d}_z{r['z']:03d}_t{r['t']:06d}_p{r['p']:03d}.tif"
        tifffile.imwrite(dest / name, array, photometric="minisblack")
        written += 1
        bar(written, total)
    if total == 0:
        bar(0, 0)
    print(f"{dest}: {written} frames")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from imaging_assets.core.lake import Lake
    from imaging_assets.core.progress import ProgressBar
    from imaging_assets.frames.verify import verify_datasets

    root, options, store = _lake(args)
    report = verify_datasets(Lake(root, store, options), args.ids, None, ProgressBar("frames"))
    for mismatch in report.mismatches:
        print(mismatch.describe())
    print(report.summary())
    for dataset_id in report.unknown:
        print(
            f"imaging-assets datasets verify: error: dataset {dataset_id} is not registered "
            f"in the lake at {root}",
            file=sys.stderr,
        )
    return report.exit_code()


def register(subparsers) -> argparse.ArgumentParser:
    """Add `datasets query|get|verify` to an argparse subparsers object."""
    datasets = subparsers.add_parser("datasets", help="frame datasets: query, get, verify")
    commands = datasets.add_subparsers(dest="datasets_command", required=True)

    query = commands.add_parser("query", help="datasets by project, dates, microscope, text")
    query.add_argument("--project", action="append", help="project id (repeatable)")
    query.add_argument("--start", help="acquired on or after (YYYY-MM-DD[THH:MM:SS])")
    query.add_argument("--end", help="acquired on or before (a bare date includes that day)")
    query.add_argument("--microscope", action="append", help="microscope (repeatable)")
    query.add_argument("--description", help="substring of the description")
    query.add_argument("--parent", help="children of this dataset id")
    query.add_argument("--id", action="append", help="these dataset ids (repeatable)")
    query.set_defaults(run=_query)

    get = commands.add_parser(
        "get", help="write selected frames as TIFFs plus global and per-frame metadata"
    )
    get.add_argument("id", help="dataset id")
    get.add_argument("dest", help="folder to write <dest>/<id>/ into")
    for axis, what in (("c", "channels (indices or names)"), ("z", "slices"), ("t", "times")):
        get.add_argument(f"-{axis}", help=f"{what}: 2, 0,2 or 4-7 (default: all)")
    get.add_argument("-p", help="positions: 0, 0,2 or 0-3 (default: all)")
    group = get.add_mutually_exclusive_group()
    group.add_argument("--no-metadata", action="store_true", help="only the frames")
    group.add_argument("--metadata-only", action="store_true", help="only the metadata files")
    get.set_defaults(run=_get)

    check = commands.add_parser(
        "verify", help="re-hash frames and stored files; exit code 1 when anything differs"
    )
    check.add_argument("ids", nargs="*", help="dataset ids (default: every dataset)")
    check.set_defaults(run=_verify)

    for command in (query, get, check):
        command.add_argument(
            "--lake", default=None, help="lake root (default: $IMAGING_ASSETS_LAKE or the demo's)"
        )
    return datasets
