"""Metadata tables at full JUMP size (no images), for benchmarks of the metadata assets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from imaging_assets.demo.gallery.generate import METADATA_DIR, write_atomic
from imaging_assets.demo.gallery.metadata_tables import (
    PERTURBATION_CONTROLS,
    csv_bytes,
    gzip_bytes,
    metadata_tables,
)
from imaging_assets.demo.gallery.presets import get_preset

PLATE_TYPES = ["COMPOUND"] * 14 + ["ORF", "CRISPR", "TARGET2", "DMSO", "COMPOUND_EMPTY", "POSCON8"]
WELLS_384 = [f"{r}{c:02d}" for r in "ABCDEFGHIJKLMNOP" for c in range(1, 25)]
WELLS_1536 = [
    f"{r}{c:02d}"
    for r in [*"ABCDEFGHIJKLMNOPQRSTUVWXYZ", "AA", "AB", "AC", "AD", "AE", "AF"]
    for c in range(1, 49)
]


def _table_csv_gz(table: pa.Table) -> bytes:
    from io import BytesIO

    sink = BytesIO()
    pacsv.write_csv(table, sink, pacsv.WriteOptions(quoting_style="none"))
    return gzip_bytes(sink.getvalue())


def generate_metadata_at_scale(
    root: str | Path,
    seed: int = 0,
    plates: int = 2500,
    batches: int = 200,
    compounds: int = 117_000,
) -> Path:
    """plate/well/compound tables at JUMP size (~1.1M wells); the small tables as in the sample."""
    rng = np.random.default_rng(seed)
    out = Path(root) / METADATA_DIR
    batch_of = np.sort(rng.integers(0, batches, plates))
    source_of_batch = rng.integers(1, 14, batches)
    plate_ids = [f"P{n:06d}" for n in range(plates)]
    plate_types = [PLATE_TYPES[i % len(PLATE_TYPES)] for i in rng.integers(0, 1 << 30, plates)]
    plate_table = pa.table(
        {
            "Metadata_Source": [f"source_{source_of_batch[b]}" for b in batch_of],
            "Metadata_Batch": [f"Batch_{b:04d}" for b in batch_of],
            "Metadata_Plate": plate_ids,
            "Metadata_PlateType": plate_types,
        }
    )
    jcp = [f"JCP2022_{n:06d}" for n in range(1, compounds + 1)]
    controls = [row[0] for row in PERTURBATION_CONTROLS]
    sources, well_plates, wells, perturbations = [], [], [], []
    for index, plate in enumerate(plate_ids):
        names = WELLS_1536 if index % 25 == 0 else WELLS_384
        picks = rng.integers(0, compounds, len(names))
        chosen = [jcp[p] if p % 12 else controls[p % len(controls)] for p in picks]
        sources.extend([plate_table["Metadata_Source"][index].as_py()] * len(names))
        well_plates.extend([plate] * len(names))
        wells.extend(names)
        perturbations.extend(chosen)
    well_table = pa.table(
        {
            "Metadata_Source": sources,
            "Metadata_Plate": well_plates,
            "Metadata_Well": wells,
            "Metadata_JCP2022": perturbations,
        }
    )
    compound_table = pa.table(
        {
            "Metadata_JCP2022": jcp,
            "Metadata_InChIKey": [f"KEY{n:011d}-SAMPLEKEYX-N" for n in range(compounds)],
            "Metadata_InChI": [f"InChI=1S/C{n % 30}H{n % 40}/scale{n}" for n in range(compounds)],
            "Metadata_SMILES": ["C" * (1 + n % 12) for n in range(compounds)],
        }
    )
    write_atomic(out / "plate.csv.gz", _table_csv_gz(plate_table))
    write_atomic(out / "well.csv.gz", _table_csv_gz(well_table))
    write_atomic(out / "compound.csv.gz", _table_csv_gz(compound_table))
    small = metadata_tables(get_preset("default"))
    for name, file_name in (
        ("perturbation_control", "perturbation_control.csv"),
        ("orf", "orf.csv.gz"),
        ("crispr", "crispr.csv.gz"),
        ("compound_source", "compound_source.csv.gz"),
        ("microscope_config", "microscope_config.csv"),
        ("microscope_filter", "microscope_filter.csv"),
        ("cellprofiler_version", "cellprofiler_version.csv"),
    ):
        data = csv_bytes(name, small[name])
        write_atomic(out / file_name, gzip_bytes(data) if file_name.endswith(".gz") else data)
    return out
