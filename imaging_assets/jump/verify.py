"""Verify plates: re-read each site's raw objects where they were read and re-hash the pixel bytes
stored in the lake, against the size, md5 and sha256 recorded when the rows were written."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

from imaging_assets.core.errors import MissingObjectError
from imaging_assets.core.lake import Lake
from imaging_assets.core.lance_tables import open_dataset, quote
from imaging_assets.core.partition_write import read_record
from imaging_assets.core.stores import ObjectStore, StoreUnavailableError
from imaging_assets.core.verify import Mismatch, VerifyReport, digests, spread_sample
from imaging_assets.jump.datasets import SITE_IMAGES, plate_filter
from imaging_assets.jump.keys import plate_partition_key
from imaging_assets.jump.schemas import CHANNELS_METADATA_KEY, channel_prefix

RAW = "raw objects"
STORED = "stored cells"


def known_plates(lake: Lake) -> list[str]:
    """Every plate with rows in site_images (partition keys), sorted."""
    dataset = open_dataset(lake.uri(SITE_IMAGES), lake.storage_options)
    if dataset is None:
        return []
    table = (
        dataset.to_table(columns=["source", "plate"]).group_by(["source", "plate"]).aggregate([])
    )
    return sorted(plate_partition_key(s, p) for s, p in zip(*table.columns, strict=True))


def verify_plates(
    lake: Lake,
    source: ObjectStore,
    plates: Sequence[str] | None = None,
    sample: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> VerifyReport:
    """Every plate (or `plates`), every site (or `sample` sites per plate, spread evenly)."""
    report = VerifyReport()
    dataset = open_dataset(lake.uri(SITE_IMAGES), lake.storage_options)
    held = known_plates(lake)
    wanted = list(plates) if plates else held
    for plate in wanted:
        if plate not in held and read_record(lake, SITE_IMAGES, plate) is None:
            report.unknown.append(plate)
    if dataset is None:
        return report
    channels = dataset.schema.metadata.get(CHANNELS_METADATA_KEY, b"").decode().split(",")
    prefixes = [channel_prefix(c) for c in channels if c]
    done = 0
    for plate in (p for p in wanted if p in held):
        keys = dataset.to_table(columns=["site_key"], filter=plate_filter(plate))["site_key"]
        chosen = spread_sample(keys.to_pylist(), sample)
        selection = f"site_key IN ({', '.join(quote(k) for k in chosen)})"
        for batch in dataset.to_batches(filter=selection, batch_size=4):
            for row in batch.to_pylist():
                for c in prefixes:
                    _check_raw(report, source, plate, row, c)
                    _check_stored(report, plate, row, c)
                done += 1
                if progress:
                    progress(done, None)
    return report


def _check_raw(report: VerifyReport, source: ObjectStore, plate: str, row: dict, c: str) -> None:
    where = row.get(f"{c}_read_uri") or row[f"{c}_raw_uri"]
    report.checked[RAW] += 1
    try:
        data = source.read(where).data
    except (MissingObjectError, StoreUnavailableError, OSError) as error:
        report.mismatches.append(Mismatch(plate, "raw object", where, None, None, str(error)))
        return
    md5, sha256 = digests(data)
    recorded = (row[f"{c}_raw_size"], row[f"{c}_raw_md5"], row[f"{c}_raw_sha256"])
    if (len(data), md5, sha256) != recorded:
        report.mismatches.append(
            Mismatch(
                plate,
                "raw object",
                where,
                f"md5 {recorded[1]}",
                f"md5 {md5}",
                f"{len(data)} bytes, recorded {recorded[0]}",
            )
        )


def _check_stored(report: VerifyReport, plate: str, row: dict, c: str) -> None:
    recorded = row.get(f"{c}_pixels_sha256")
    if recorded is None:  # written before stored digests existed
        return
    report.checked[STORED] += 1
    actual = hashlib.sha256(row[f"{c}_pixels"]).hexdigest()
    if actual != recorded:
        where = f"{row['site_key']} {c}_pixels"
        report.mismatches.append(Mismatch(plate, "stored cell", where, recorded, actual))
