"""What to fetch for each site: the sampled load_data rows grouped into one task per site."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from imaging_assets.core.errors import InputError


@dataclass(frozen=True)
class ChannelSource:
    """One raw image of a site: where it is read from and the URI the load data names.

    `uri` is where the bytes are read (rebased onto the configured source root: a mirror, a test
    server, the bucket); `canonical_uri` is load_data's own URI (load_data_uri), the same whatever
    the source root, so lakes built from a mirror and from the bucket agree on provenance.
    """

    channel: str
    uri: str
    illum_uri: str | None
    frame: int = 0  # page of a multi-page TIFF
    canonical_uri: str | None = None

    @property
    def raw_uri(self) -> str:
        """The canonical URI (stored as <channel>_raw_uri); the read URI when none is known."""
        return self.canonical_uri or self.uri


@dataclass(frozen=True)
class SiteTask:
    site_key: str
    source: str
    batch: str
    plate: str
    well: str
    site: str
    jcp2022: str | None
    modality: str | None
    control_role: str | None
    plate_type: str | None
    channels: tuple[ChannelSource, ...]


def _column(rows: dict, name: str) -> str | None:
    value = rows.get(name)
    return None if value is None else str(value)


def site_tasks_from_table(table: pa.Table, channels: list[str] | tuple[str, ...]) -> list[SiteTask]:
    """One task per site_key (sorted), holding the requested channels in the requested order.

    A site that lacks one of the channels is an error naming the site and channel: silently
    writing a site with a channel missing would break every downstream array shape.
    """
    by_site: dict[str, dict] = {}
    for row in table.to_pylist():
        entry = by_site.setdefault(row["site_key"], {"row": row, "channels": {}})
        entry["channels"][row["channel"]] = ChannelSource(
            row["channel"],
            row["uri"],
            row.get("illum_uri"),
            int(row.get("frame") or 0),
            row.get("load_data_uri"),
        )
    tasks = []
    for key in sorted(by_site):
        entry = by_site[key]
        found = entry["channels"]
        for channel in channels:
            if channel not in found:
                raise InputError(
                    "sampled_sites",
                    f"site {key} has no {channel} image",
                    column="channel",
                    expected=", ".join(channels),
                    got=", ".join(sorted(found)),
                )
        row = entry["row"]
        tasks.append(
            SiteTask(
                site_key=key,
                source=row["source"],
                batch=row["batch"],
                plate=row["plate"],
                well=row["well"],
                site=str(row["site"]),
                jcp2022=_column(row, "jcp2022"),
                modality=_column(row, "modality"),
                control_role=_column(row, "control_role"),
                plate_type=_column(row, "plate_type"),
                channels=tuple(found[c] for c in channels),
            )
        )
    return tasks
