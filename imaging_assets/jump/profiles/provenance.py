"""The provenance round trip: CellProfiler's image digests against the raw md5 in site_images.

CellProfiler records Image_MD5Digest_Orig{Ch}, the md5 of the raw file it measured; site_images
records the md5 of the raw bytes it fetched. Equal digests prove a profile row and an image row
describe the same raw object.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pyarrow as pa

from imaging_assets.core.errors import InputError
from imaging_assets.jump.keys import SEPARATOR
from imaging_assets.jump.profiles.backend import inspect_backend, open_backend
from imaging_assets.jump.schemas import channel_prefix

DIGEST = re.compile(r"^Image_MD5Digest_Orig(?P<channel>.+)$")
STATUSES = ("verified", "contradicted", "unknown")


def _first(names: list[str], candidates: tuple[str, ...], file: str) -> str:
    for candidate in candidates:
        if candidate in names:
            return candidate
    raise InputError(file, "missing column", column=" or ".join(candidates))


def _site(value) -> str:
    text = str(value)
    return text[:-2] if text.endswith(".0") else text


def image_digests(
    sqlite: str | Path | sqlite3.Connection, *, source: str, plate: str | None = None
) -> pa.Table:
    """site_key and every Image_MD5Digest_Orig{Ch} of a backend SQLite's Image table.

    Channels are discovered from the columns; an empty digest is null. `plate` overrides the
    Image table's Metadata_Plate in the site_key.
    """
    path = sqlite if isinstance(sqlite, sqlite3.Connection) else Path(sqlite)
    with open_backend(sqlite, str(path)) as db:
        layout = inspect_backend(db, str(path))
        columns = layout.columns[layout.image_table]
        digests = [c for c in columns if DIGEST.match(c)]
        well = _first(columns, ("Image_Metadata_Well", "Metadata_Well"), str(path))
        site = _first(columns, ("Image_Metadata_Site", "Metadata_Site"), str(path))
        plate_col = next(
            (c for c in ("Image_Metadata_Plate", "Metadata_Plate") if c in columns), None
        )
        selected = [well, site, *([plate_col] if plate_col else []), *digests]
        quoted = ", ".join(f'"{c}"' for c in selected)
        try:
            rows = db.execute(f'SELECT {quoted} FROM "{layout.image_table}"').fetchall()
        except sqlite3.DatabaseError as error:
            raise InputError(str(path), f"cannot read image digests ({error})") from error
    data: dict[str, list] = {"site_key": []} | {c: [] for c in digests}
    for row in rows:
        values = dict(zip(selected, row, strict=True))
        row_plate = plate or str(values.get(plate_col))
        data["site_key"].append(
            SEPARATOR.join((source, row_plate, str(values[well]), _site(values[site])))
        )
        for column in digests:
            data[column].append(values[column] or None)
    return pa.table({k: pa.array(v, pa.string()) for k, v in data.items()})


def image_digests_from_merged(table: pa.Table, *, source: str) -> pa.Table:
    """The same from an already merged single-cell table (one row per cell, Image_* repeated)."""
    names = table.column_names
    digests = [c for c in names if DIGEST.match(c)]
    plate = _first(names, ("Metadata_Plate", "Image_Metadata_Plate"), "merged profiles")
    well = _first(names, ("Metadata_Well", "Image_Metadata_Well"), "merged profiles")
    site = _first(names, ("Metadata_Site", "Image_Metadata_Site"), "merged profiles")
    seen: dict[str, dict] = {}
    for row in table.select([plate, well, site, *digests]).to_pylist():
        key = SEPARATOR.join((source, str(row[plate]), str(row[well]), _site(row[site])))
        seen.setdefault(key, {c: row[c] for c in digests})
    return pa.table(
        {"site_key": list(seen)} | {c: [seen[k][c] for k in seen] for c in digests},
        schema=pa.schema(
            [pa.field("site_key", pa.string())] + [pa.field(c, pa.string()) for c in digests]
        ),
    )


def verify_digests(image_digests: pa.Table, site_images: pa.Table) -> pa.Table:
    """Per measured site: verified (every digest present matches), contradicted, or unknown.

    Only channels that both sides have are compared; a site with no image row, or with no digest
    for any stored channel, is unknown.
    """
    stored = {row["site_key"]: row for row in site_images.to_pylist()}
    channels = {
        DIGEST.match(c)["channel"]: c for c in image_digests.column_names if DIGEST.match(c)
    }
    out: dict[str, list] = {
        k: [] for k in ("site_key", "status", "channels_checked", "mismatched_channels", "detail")
    }
    for row in image_digests.to_pylist():
        key = row["site_key"]
        image = stored.get(key)
        checked, mismatched = [], []
        if image is not None:
            for channel, column in channels.items():
                mine = image.get(f"{channel_prefix(channel)}_raw_md5")
                theirs = row.get(column)
                if mine is None or theirs is None:
                    continue
                checked.append(channel)
                if mine.lower() != theirs.lower():
                    mismatched.append(channel)
        if image is None:
            status, detail = "unknown", "no image row in site_images"
        elif not checked:
            status, detail = "unknown", "no digest for any stored channel"
        elif mismatched:
            status, detail = "contradicted", f"md5 differs for {', '.join(mismatched)}"
        else:
            status, detail = "verified", f"{len(checked)} channels match"
        out["site_key"].append(key)
        out["status"].append(status)
        out["channels_checked"].append(",".join(checked))
        out["mismatched_channels"].append(",".join(mismatched))
        out["detail"].append(detail)
    return pa.table(out, schema=pa.schema([pa.field(k, pa.string()) for k in out]))


def digest_summary(verification: pa.Table) -> dict[str, int]:
    statuses = verification["status"].to_pylist()
    return {status: statuses.count(status) for status in STATUSES}
