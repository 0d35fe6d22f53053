"""The JUMP metadata tables of the sample gallery, in exactly the datasets repository's schema."""

from __future__ import annotations

import gzip
import hashlib
import io
from collections.abc import Iterable, Sequence
from pathlib import Path

from imaging_assets.demo.gallery.presets import Preset
from imaging_assets.jump.schemas import METADATA_SCHEMAS

# The canonical control list of jump-cellpainting/datasets (metadata/perturbation_control.csv).
PERTURBATION_CONTROLS = [
    ("JCP2022_999999", "empty", "Empty", "any"),
    ("JCP2022_033924", "negcon", "DMSO", "compound"),
    ("JCP2022_037716", "poscon", "AMG900", "compound"),
    ("JCP2022_025848", "poscon", "dexamethasone", "compound"),
    ("JCP2022_046054", "poscon", "FK-866", "compound"),
    ("JCP2022_035095", "poscon", "LY2109761", "compound"),
    ("JCP2022_064022", "poscon", "NVS-PAK1-1", "compound"),
    ("JCP2022_050797", "poscon", "quinidine", "compound"),
    ("JCP2022_012818", "poscon", "TC-S-7004", "compound"),
    ("JCP2022_085227", "poscon", "aloxistatin", "compound"),
    ("JCP2022_800001", "negcon", "no-guide", "crispr"),
    ("JCP2022_800002", "negcon", "non-targeting", "crispr"),
    ("JCP2022_805264", "poscon", "PLK1", "crispr"),
    ("JCP2022_915128", "negcon", "BFP", "orf"),
    ("JCP2022_915129", "negcon", "HcRed", "orf"),
    ("JCP2022_915130", "negcon", "LUCIFERASE", "orf"),
    ("JCP2022_915131", "negcon", "LacZ", "orf"),
    ("JCP2022_915132", "poscon", "eGFP", "orf"),
]
MICROSCOPES = {
    "source_3": ("Opera Phenix", "Widefield", "Laser", "1.0", "1", "1", "", "6", "B", "0.597976"),
    "source_4": ("Opera Phenix", "Widefield", "Laser", "1.0", "1", "1", "", "4", "B", "0.597976"),
    "source_13": ("CV8000", "Confocal", "Laser", "1.0", "1", "1", "", "5", "A", "0.65"),
}
FILTERS = {
    "A": "405,488,488,561,640,405,488,488,561,640,422.5,500,581.5,581.5,661.5,467.5,550,618.5,618.5,690.5,http://broad.io/JUMPProductionConfigCV8000",
    "B": "405,488,488,561,640,405,488,488,561,640,435,500,570,570,650,480,550,630,630,760,http://broad.io/JUMPProductionConfigPhenix405",
}
CELLPROFILER_VERSIONS = {"source_3": "4.1.3", "source_4": "4.2.1", "source_13": "4.2.1"}
GENES = ["NAT1", "AANAT", "AKT1", "BRCA1", "CDK2", "EGFR", "MTOR", "TP53", "KRAS", "MYC"]


def _csv_line(values: Sequence[str]) -> str:
    return ",".join(f'"{v}"' if "," in v else v for v in values) + "\n"


def csv_bytes(name: str, rows: Iterable[Sequence[str]]) -> bytes:
    """A table's CSV with its schema's header; gzip (mtime 0, deterministic) for .csv.gz names."""
    text = io.StringIO()
    text.write(_csv_line(METADATA_SCHEMAS[name].names))
    for row in rows:
        text.write(_csv_line([str(v) for v in row]))
    return text.getvalue().encode()


def gzip_bytes(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=6, mtime=0)


def _fake_inchikey(jcp: str) -> str:
    digest = hashlib.sha256(jcp.encode()).hexdigest().upper()
    letters = "".join(chr(65 + int(c, 16) % 26) for c in digest)
    return f"{letters[:14]}-{letters[14:24]}-N"


def metadata_tables(preset: Preset) -> dict[str, list[tuple]]:
    """Rows of every table for a preset."""
    plates, wells = [], []
    compounds, orfs, crisprs = set(), set(), set()
    for plate in preset.plates:
        plates.append((plate.source, plate.batch, plate.plate, plate.plate_type))
        for well in plate.wells:
            if well.in_well_table:
                wells.append((plate.source, plate.plate, well.well, well.jcp2022))
            number = int(well.jcp2022.split("_")[1])
            if 800000 <= number < 900000:
                crisprs.add(well.jcp2022)
            elif number >= 900000 and well.jcp2022 != "JCP2022_999999":
                orfs.add(well.jcp2022)
            elif well.jcp2022 != "JCP2022_999999":
                compounds.add(well.jcp2022)
    compound_rows = [
        (
            jcp,
            _fake_inchikey(jcp),
            f"InChI=1S/C{6 + i % 9}H{6 + i % 7}O/sample{i}",
            "C" * (1 + i % 6) + "O",
        )
        for i, jcp in enumerate(sorted(compounds))
    ]
    orf_rows = [
        (
            jcp,
            f"ccsbBroad304_{i:05d}",
            f"ORF{i:06d}.1_TRC304.1",
            "pLX_304",
            f"NM_{100000 + i}.1",
            GENES[i % len(GENES)],
            str(9 + i),
            "9606",
            f"{GENES[i % len(GENES)]} gene",
            "100.0",
            str(600 + 30 * i),
            "control" if jcp.startswith("JCP2022_9151") else "trt",
        )
        for i, jcp in enumerate(sorted(orfs))
    ]
    crispr_rows = [
        (jcp, str(1000 + i), GENES[i % len(GENES)]) for i, jcp in enumerate(sorted(crisprs))
    ]
    sources = sorted({p.source for p in preset.plates})
    return {
        "plate": plates,
        "well": wells,
        "compound": compound_rows,
        "compound_source": [(sources[0], jcp) for jcp in sorted(compounds)],
        "orf": orf_rows,
        "crispr": crispr_rows,
        "perturbation_control": PERTURBATION_CONTROLS,
        "microscope_config": [(s, *MICROSCOPES[s]) for s in sources],
        "microscope_filter": [(k, *v.split(",")) for k, v in sorted(FILTERS.items())],
        "cellprofiler_version": [(s, CELLPROFILER_VERSIONS[s]) for s in sources],
    }


def write_metadata(root: Path, preset: Preset, write) -> list[Path]:
    """Write every table under `root` with `write(path, bytes)` (atomic); returns the paths."""
    from imaging_assets.jump.metadata import FILE_NAMES

    written = []
    for name, rows in metadata_tables(preset).items():
        data = csv_bytes(name, rows)
        file_name = FILE_NAMES[name]
        if file_name.endswith(".gz"):
            data = gzip_bytes(data)
        path = root / file_name
        write(path, data)
        written.append(path)
    return written
