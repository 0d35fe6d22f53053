"""Sample frame datasets and their ingest manifest, deterministic for a seed.

Written under `<root>/frames/`:
- an OME-TIFF (TCZYX, channel names, physical sizes);
- a multi-position OME-TIFF set, one file per position;
- a folder of single-frame TIFFs named as Micro-Manager 2 names them, with a metadata.txt;
- a plain multi-page TIFF whose ImageDescription carries the axes (a child of the OME dataset);
- a CSV uploaded as a file (a child of the multi-position set);
- manifest.csv listing them (keys relative to `root`, the source root).
`expected` holds each frames dataset's full array (P, T, C, Z, Y, X) for checks.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tifffile

from imaging_assets.frames.schema import MANIFEST_COLUMNS

MANIFEST_KEY = "frames/manifest.csv"
MANIFEST_HEADER = list(MANIFEST_COLUMNS)


@dataclass
class FrameSamples:
    root: Path
    manifest_key: str
    rows: list[dict]
    expected: dict[str, np.ndarray] = field(default_factory=dict)
    channel_names: dict[str, list[str]] = field(default_factory=dict)

    @property
    def manifest_path(self) -> Path:
        return self.root / self.manifest_key

    def ids(self, upload_type: str | None = None) -> list[str]:
        return [r["dataset_id"] for r in self.rows if upload_type in (None, r["upload_type"])]


def _pixels(rng: np.random.Generator, shape: tuple[int, ...], offset: int) -> np.ndarray:
    """12-bit-like frames: a smooth ramp per frame plus noise, distinct for every frame."""
    *outer, height, width = shape
    ramp = (np.add.outer(np.arange(height), np.arange(width)) * 7).astype(np.int64)
    count = int(np.prod(outer)) if outer else 1
    frames = np.empty((count, height, width), dtype=np.uint16)
    for i in range(count):
        noise = rng.integers(0, 200, size=(height, width))
        frames[i] = np.clip(ramp + 97 * (i + offset) % 3000 + noise, 0, 4095)
    return frames.reshape(shape)


def write_ome(path: Path, array: np.ndarray, channels: list[str], axes: str = "TCZYX") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(
        path,
        array,
        ome=True,
        photometric="minisblack",
        metadata={
            "axes": axes,
            "Channel": {"Name": channels},
            "PhysicalSizeX": 0.325,
            "PhysicalSizeY": 0.325,
            "PhysicalSizeZ": 0.5,
            "TimeIncrement": 60.0,
        },
    )


def write_tiff_folder(folder: Path, array: np.ndarray, channels: list[str]) -> None:
    """array (T, C, Z, Y, X) as img_channelCCC_position000_timeTTTTTTTTT_zZZZ.tif + metadata.txt."""
    folder.mkdir(parents=True, exist_ok=True)
    t_count, c_count, z_count = array.shape[:3]
    metadata: dict = {
        "Summary": {
            "ChNames": channels,
            "Channels": c_count,
            "Slices": z_count,
            "Frames": t_count,
            "Positions": 1,
            "Prefix": folder.name,
        }
    }
    for t in range(t_count):
        for c in range(c_count):
            for z in range(z_count):
                name = f"img_channel{c:03d}_position000_time{t:09d}_z{z:03d}.tif"
                tifffile.imwrite(folder / name, array[t, c, z], photometric="minisblack")
                metadata[f"Metadata-Default/{name}"] = {
                    "FileName": name,
                    "ChannelIndex": c,
                    "SliceIndex": z,
                    "FrameIndex": t,
                    "PositionIndex": 0,
                    "Channel": channels[c],
                    "Exposure-ms": 10 + 5 * c,
                    "ZPositionUm": 0.5 * z,
                    "ElapsedTime-ms": 60_000 * t,
                }
    (folder / "metadata.txt").write_text(json.dumps(metadata, indent=1))


def generate_frame_samples(root: Path | str, seed: int = 0) -> FrameSamples:
    """Write the sample frame datasets and manifest under `root` (the source root)."""
    root = Path(root)
    base = root / "frames"
    rng = np.random.default_rng(seed)
    rows: list[dict] = []
    samples = FrameSamples(root=root, manifest_key=MANIFEST_KEY, rows=rows)

    def add(
        dataset_id,
        file,
        description,
        upload_type="frames",
        fmt="",
        parent="",
        positions="",
        microscope="Nikon-Ti2",
    ):
        rows.append(
            {
                "dataset_id": dataset_id,
                "file": file,
                "description": description,
                "parent_id": parent,
                "positions": positions,
                "microscope": microscope,
                "upload_type": upload_type,
                "format": fmt,
            }
        )

    ome_id = "DEMO-2024-05-01-10-00-00-0001"
    channels = ["DAPI", "GFP"]
    ome = _pixels(rng, (3, 2, 4, 48, 40), 0)
    write_ome(base / "ome" / f"{ome_id}.ome.tif", ome, channels)
    samples.expected[ome_id] = ome[None]
    samples.channel_names[ome_id] = channels
    add(ome_id, f"frames/ome/{ome_id}.ome.tif", "HeLa time lapse, DAPI GFP", fmt="ome-tiff")

    multi_id = "DEMO-2024-05-02-09-30-00-0001"
    multi_channels = ["BF", "mCherry"]
    multi = _pixels(rng, (3, 2, 2, 3, 32, 32), 1000)
    names = []
    for p in range(multi.shape[0]):
        name = f"{multi_id}_Pos{p:03d}.ome.tif"
        write_ome(base / "multipos" / name, multi[p], multi_channels)
        names.append(name)
    samples.expected[multi_id] = multi
    samples.channel_names[multi_id] = multi_channels
    add(
        multi_id,
        "frames/multipos",
        "iPSC cardiomyocytes, three positions",
        fmt="ome-tiff",
        positions=";".join(names),
        microscope="Zeiss-LSM980",
    )

    folder_id = "OTHER-2024-06-10-14-00-00-0002"
    folder_channels = ["Cy5", "FITC"]
    folder = _pixels(rng, (2, 2, 2, 24, 28), 2000)
    write_tiff_folder(base / "folder" / folder_id, folder, folder_channels)
    samples.expected[folder_id] = folder[None]
    samples.channel_names[folder_id] = folder_channels
    add(
        folder_id,
        f"frames/folder/{folder_id}",
        "organoid z-stack exported as single frames",
        fmt="tiff-folder",
        microscope="Nikon-Ti2",
    )

    plain_id = "DEMO-2024-05-01-12-00-00-0002"
    plain = ome.max(axis=2, keepdims=True)  # (T, C, 1, Y, X): a max projection
    (base / "plain").mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(
        base / "plain" / f"{plain_id}.tif",
        plain[:, :, 0],
        photometric="minisblack",
        metadata={"axes": "TCYX"},
    )
    samples.expected[plain_id] = plain[None]
    samples.channel_names[plain_id] = []
    add(
        plain_id,
        f"frames/plain/{plain_id}.tif",
        "max projection of the HeLa time lapse",
        fmt="tiff",
        parent=ome_id,
    )

    file_id = "DEMO-2024-05-03-08-00-00-0001"
    (base / "files").mkdir(parents=True, exist_ok=True)
    counts = rng.integers(50, 500, size=6)
    (base / "files" / "cell_counts.csv").write_text(
        "position,cells\n" + "".join(f"{i},{n}\n" for i, n in enumerate(counts))
    )
    add(
        file_id,
        "frames/files/cell_counts.csv",
        "cell counts per position (analysis output)",
        upload_type="file",
        fmt="csv",
        parent=multi_id,
        microscope="",
    )

    with open(samples.manifest_path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=MANIFEST_HEADER)
        writer.writeheader()
        writer.writerows(rows)
    return samples
