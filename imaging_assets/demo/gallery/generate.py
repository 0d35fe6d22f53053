"""Write the sample gallery: metadata tables, images, illumination, load_data, CellProfiler output.

Deterministic by seed: every site draws from its own generator seeded by (seed, plate, well, site),
so the bytes do not depend on the number of worker processes. Every file is written atomically
(temp file + rename), so re-running into the same root rewrites identical files. Defective sites
(presets.SiteDefect: blurred, saturated) are drawn as the others, then degraded without drawing
from the generator, so every other site's bytes are the same with or without defects.
"""

from __future__ import annotations

import csv
import hashlib
import io
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import tifffile
from scipy import ndimage

from imaging_assets.demo.gallery.cellprofiler import (
    SiteMeasurements,
    measure_objects,
    parquet_bytes,
    well_profiles_table,
    write_backend_sqlite,
)
from imaging_assets.demo.gallery.cells import (
    draw_channel,
    illumination_field,
    make_layout,
    site_seed,
)
from imaging_assets.demo.gallery.metadata_tables import write_metadata
from imaging_assets.demo.gallery.presets import (
    BLUR,
    SATURATED,
    SamplePlate,
    SiteDefect,
    get_preset,
)
from imaging_assets.jump import layout

CANONICAL_ROOT = "s3://cellpainting-gallery/cpg0016-jump"
SOURCE_DIR = "cpg0016-jump"
METADATA_DIR = "metadata"


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def well_row_col(well: str) -> tuple[int, int]:
    return ord(well[0].upper()) - ord("A") + 1, int(well[1:])


def image_key(plate: SamplePlate, well: str, site: int, channel: str) -> str:
    row, col = well_row_col(well)
    number = plate.channels[channel]
    return (
        f"{layout.images_prefix(plate.source, plate.batch)}{plate.folder}/Images/"
        f"r{row:02d}c{col:02d}f{site:02d}p01-ch{number}sk1fk1fl1.tiff"
    )


@dataclass(frozen=True)
class _SiteJob:
    source_root: str
    plate: SamplePlate
    well: str
    brightness: float
    site: int
    seed: int
    cells_per_megapixel: float
    defects: tuple[SiteDefect, ...] = ()


BLUR_SIGMA_AT_1080 = 4.0  # px: a clearly defocused Phenix site at 1080 px
SATURATION_GAIN = 8.0  # exposure x8: the bright structures clip at the camera's maximum


def degrade(image: np.ndarray, channel: str, defects: tuple[SiteDefect, ...]) -> np.ndarray:
    """The channel as a defective site shows it: blurred (out of focus), over-exposed."""
    for defect in defects:
        if defect.kind == BLUR:
            sigma = max(1.5, BLUR_SIGMA_AT_1080 * image.shape[0] / 1080)
            image = ndimage.gaussian_filter(image.astype(np.float32), sigma)
            image = np.clip(np.rint(image), 0, 65535).astype(np.uint16)
        elif defect.kind == SATURATED and defect.channel == channel:
            scaled = image.astype(np.float32) * SATURATION_GAIN
            image = np.clip(scaled, 0, 65535).astype(np.uint16)
    return image


def _tiff_bytes(image: np.ndarray) -> bytes:
    sink = io.BytesIO()
    tifffile.imwrite(sink, image, compression="lzw", metadata=None, software=False)
    return sink.getvalue()


def _render_site(job: _SiteJob) -> SiteMeasurements:
    plate = job.plate
    rng = np.random.default_rng(site_seed(job.seed, plate.source, plate.plate, job.well, job.site))
    site_layout = make_layout(rng, plate.image_size, job.cells_per_megapixel)
    images, md5, files, paths = {}, {}, {}, {}
    for channel in plate.channels:
        image = draw_channel(site_layout, channel, rng, job.brightness)
        if job.defects:
            image = degrade(image, channel, job.defects)
        data = _tiff_bytes(image)
        key = image_key(plate, job.well, job.site, channel)
        write_atomic(Path(job.source_root) / key, data)
        images[channel] = image
        md5[channel] = hashlib.md5(data).hexdigest()
        folder, name = key.rsplit("/", 1)
        files[channel], paths[channel] = name, f"{CANONICAL_ROOT}/{folder}"
    return SiteMeasurements(
        source=plate.source,
        plate=plate.plate,
        well=job.well,
        site=job.site,
        file_names=files,
        path_names=paths,
        md5=md5,
        objects=measure_objects(site_layout, images, rng),
    )


def _load_data_rows(plate: SamplePlate) -> list[dict[str, str]]:
    rows = []
    for well in plate.wells:
        row, col = well_row_col(well.well)
        for site in plate.sites:
            record = {
                "Metadata_Source": plate.source,
                "Metadata_Batch": plate.batch,
                "Metadata_Plate": plate.plate,
                "Metadata_Well": well.well,
                "Metadata_Site": str(site),
                "Metadata_Col": str(col),
                "Metadata_Row": str(row),
                "Metadata_FieldID": str(site),
            }
            for channel in plate.channels:
                record[f"URL_Orig{channel}"] = (
                    f"{CANONICAL_ROOT}/{image_key(plate, well.well, site, channel)}"
                )
                record[f"URL_Illum{channel}"] = (
                    f"{CANONICAL_ROOT}/{layout.illum_key(plate.source, plate.batch, plate.plate, channel)}"
                )
            rows.append(record)
    return rows


def _csv(rows: list[dict[str, str]], columns: list[str]) -> bytes:
    sink = io.StringIO()
    writer = csv.DictWriter(sink, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return sink.getvalue().encode()


def write_load_data(source_root: Path, plate: SamplePlate) -> None:
    rows = _load_data_rows(plate)
    channels = list(plate.channels)
    metadata = [c for c in rows[0] if c.startswith("Metadata_")]
    if "csv" in plate.load_data_formats:
        orig = [f"URL_Orig{c}" for c in channels]
        illum = [f"URL_Illum{c}" for c in channels]
        write_atomic(
            source_root / layout.load_data_csv_key(plate.source, plate.batch, plate.plate, False),
            _csv(rows, orig + metadata),
        )
        write_atomic(
            source_root / layout.load_data_csv_key(plate.source, plate.batch, plate.plate, True),
            _csv(rows, illum + orig + metadata),
        )
    if "parquet" in plate.load_data_formats:
        columns: dict[str, list[str]] = {c: [r[c] for r in rows] for c in metadata[:5]}
        for channel in channels:
            for kind in ("Orig", "Illum"):
                uris = [r[f"URL_{kind}{channel}"] for r in rows]
                columns[f"FileName_{kind}{channel}"] = [u.rsplit("/", 1)[1] for u in uris]
                columns[f"PathName_{kind}{channel}"] = [u.rsplit("/", 1)[0] + "/" for u in uris]
        write_atomic(
            source_root / layout.load_data_orig_key(plate.source, plate.batch, plate.plate),
            parquet_bytes(pa.table(columns)),
        )


@dataclass(frozen=True)
class GalleryManifest:
    root: Path
    metadata_root: Path
    source_root: Path
    preset: str
    seed: int
    plates: tuple[SamplePlate, ...]
    images: int
    bytes: int
    defects: tuple[tuple[str, SiteDefect], ...] = ()  # (partition key, defect) drawn

    def defective_sites(self) -> dict[str, str]:
        """site_key -> what is wrong ("blur", "saturated AGP") of every defective site drawn."""
        return {
            f"{key}__{d.well}__{d.site}": d.kind + (f" {d.channel}" if d.channel else "")
            for key, d in self.defects
        }

    def summary(self) -> str:
        lines = [
            f"sample gallery '{self.preset}' (seed {self.seed}) at {self.root}: "
            f"{len(self.plates)} imaged plates, {self.images} TIFFs, {self.bytes / 1e6:.1f} MB",
            f"  metadata: {self.metadata_root}",
            f"  source:   {self.source_root}",
        ]
        for p in self.plates:
            lines.append(
                f"  {p.source}/{p.batch}/{p.plate} ({p.plate_type}): {len(p.wells)} wells x "
                f"{p.sites_per_well} sites, {p.image_size}px, {len(p.channels)} channels"
            )
        if self.defects:
            sites = ", ".join(f"{k} ({v})" for k, v in self.defective_sites().items())
            lines.append(f"  defective sites (for image QC): {sites}")
        return "\n".join(lines)


def generate_gallery(
    root: str | Path,
    preset: str = "default",
    seed: int = 0,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    defects: bool | None = None,
) -> GalleryManifest:
    """Write a sample gallery under `root`: metadata/ and cpg0016-jump/ (the source root).

    defects: draw the plates' defective sites (blurred, saturated); None: the preset's default
    (the default preset does, the tiny one does not)."""
    spec = get_preset(preset)
    with_defects = spec.defects if defects is None else defects
    root = Path(root)
    source_root = root / SOURCE_DIR
    metadata_root = root / METADATA_DIR
    write_metadata(metadata_root, spec, write_atomic)
    imaged = tuple(p for p in spec.plates if p.imaged)
    jobs = []
    for plate in imaged:
        for index, well in enumerate(plate.wells):
            brightness = 0.7 + 0.6 * ((index * 7) % 10) / 10
            for site in plate.sites:
                defects = tuple(d for d in plate.defects if (d.well, d.site) == (well.well, site))
                jobs.append(
                    _SiteJob(
                        str(source_root),
                        plate,
                        well.well,
                        brightness,
                        site,
                        seed,
                        spec.cells_per_megapixel,
                        defects if with_defects else (),
                    )
                )
    total_images = sum(len(job.plate.channels) for job in jobs)
    workers = workers or os.cpu_count() or 1
    measurements: list[SiteMeasurements] = []
    done = 0
    if workers == 1 or len(jobs) < 16:
        results = map(_render_site, jobs)
        executor = None
    else:
        executor = ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context("forkserver")
        )
        results = executor.map(_render_site, jobs, chunksize=4)
    try:
        for job, result in zip(jobs, results, strict=True):
            measurements.append(result)
            done += len(job.plate.channels)
            if progress:
                progress(done, total_images)
    finally:
        if executor:
            executor.shutdown()

    for plate in imaged:
        for channel in plate.channels:
            field = illumination_field(plate.image_size, channel, seed)
            sink = io.BytesIO()
            np.save(sink, field)
            write_atomic(
                source_root / layout.illum_key(plate.source, plate.batch, plate.plate, channel),
                sink.getvalue(),
            )
        write_load_data(source_root, plate)
        sites = [m for m in measurements if m.plate == plate.plate and m.source == plate.source]
        backend = source_root / layout.backend_sqlite_key(plate.source, plate.batch, plate.plate)
        backend.parent.mkdir(parents=True, exist_ok=True)
        write_backend_sqlite(backend, sites, list(plate.channels))
        write_atomic(
            source_root / layout.well_profiles_key(plate.source, plate.batch, plate.plate),
            parquet_bytes(well_profiles_table(sites, plate.source, plate.plate)),
        )
    size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    drawn = tuple((f"{p.source}__{p.plate}", d) for p in imaged for d in p.defects if with_defects)
    return GalleryManifest(
        root, metadata_root, source_root, preset, seed, imaged, total_images, size, drawn
    )
