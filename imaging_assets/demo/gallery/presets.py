"""What the sample gallery contains: sources, batches, plates, wells and their perturbations.

Modelled on cpg0016: Phenix sources with 4 or 6 sites a well at 1080x1080, and a CV8000-like
source that numbers sites from 0, images 970x970 and adds a brightfield channel.

One plate (source_4 BR00117035) carries a few defective sites, as real plates do: out of focus
(every channel blurred) and saturated (one channel over-exposed), so that image-quality flags,
the per-plate checks and the plate map have something to show. The default preset draws them;
the tiny one (what most tests build on) only when asked (generate_gallery(defects=True)).
"""

from __future__ import annotations

from dataclasses import dataclass

# Channel -> Phenix channel number, as in the real cpg0016 load_data (ch1 Mito ... ch5 DNA).
PHENIX_CHANNELS = {"DNA": 5, "AGP": 2, "ER": 4, "Mito": 1, "RNA": 3}
CV8000_CHANNELS = {**PHENIX_CHANNELS, "Brightfield": 6}

DMSO = "JCP2022_033924"
EMPTY = "JCP2022_999999"
COMPOUND_POSCONS = ("JCP2022_037716", "JCP2022_025848", "JCP2022_046054")
ORF_POSCON = "JCP2022_915132"
ORF_NEGCONS = ("JCP2022_915128", "JCP2022_915129")
CRISPR_POSCON = "JCP2022_805264"
CRISPR_NEGCONS = ("JCP2022_800001", "JCP2022_800002")


@dataclass(frozen=True)
class SampleWell:
    well: str
    jcp2022: str
    in_well_table: bool = True  # False: imaged, but absent from well.csv (must be flagged)


BLUR = "blur"  # out of focus: every channel of the site blurred
SATURATED = "saturated"  # one channel over-exposed: a share of its pixels clipped at 65535


@dataclass(frozen=True)
class SiteDefect:
    """A defective site of a plate: which well and site, what is wrong, in which channel."""

    well: str
    site: int
    kind: str  # BLUR or SATURATED
    channel: str | None = None  # SATURATED: the over-exposed channel

    def __post_init__(self) -> None:
        if self.kind not in (BLUR, SATURATED):
            raise ValueError(f"unknown defect kind {self.kind!r}")
        if self.kind == SATURATED and not self.channel:
            raise ValueError("a saturated site names its channel")


@dataclass(frozen=True)
class SamplePlate:
    source: str
    batch: str
    plate: str
    plate_type: str
    folder: str  # image folder under images/{batch}/images/
    wells: tuple[SampleWell, ...]
    sites: tuple[int, ...]
    image_size: int
    channels: dict[str, int]
    load_data_formats: tuple[str, ...] = ("csv", "parquet")
    imaged: bool = True
    defects: tuple[SiteDefect, ...] = ()  # drawn when the gallery is generated with defects

    @property
    def sites_per_well(self) -> int:
        return len(self.sites)


@dataclass(frozen=True)
class Preset:
    name: str
    plates: tuple[SamplePlate, ...]
    cells_per_megapixel: float = 50.0
    defects: bool = True  # whether the plates' defective sites are drawn by default


def _compound(n: int) -> str:
    return f"JCP2022_{10000 + n:06d}"


def _orf(n: int) -> str:
    return f"JCP2022_{900100 + n:06d}"


def _crispr(n: int) -> str:
    return f"JCP2022_{800100 + n:06d}"


def _wells(jcps: list[str], missing_from_table: int = 0) -> tuple[SampleWell, ...]:
    rows = "ABCDEFGHIJKLMNOP"
    wells = [SampleWell(f"{rows[i // 24]}{i % 24 + 1:02d}", jcp) for i, jcp in enumerate(jcps)]
    for n in range(missing_from_table):
        wells.append(SampleWell(f"P{24 - n:02d}", _compound(900 + n), in_well_table=False))
    return tuple(wells)


def _plates(
    trt: int, per_role: int, sizes: tuple[int, int], sites_scale: int
) -> tuple[SamplePlate, ...]:
    """The five imaged plates (+ one listed without images) at a given scale."""
    big, small = sizes
    compound = (
        [_compound(i) for i in range(trt)]
        + list(COMPOUND_POSCONS[:per_role])
        + [DMSO] * per_role
        + [EMPTY]
    )
    target2 = (
        [_compound(100 + i) for i in range(trt)]
        + list(COMPOUND_POSCONS[:per_role])
        + [DMSO] * per_role
    )
    dmso = [DMSO] * (trt + 2 * per_role)
    orf = [_orf(i) for i in range(trt)] + [ORF_POSCON] * per_role + list(ORF_NEGCONS[:per_role])
    crispr = (
        [_crispr(i) for i in range(trt)]
        + [CRISPR_POSCON] * per_role
        + list(CRISPR_NEGCONS[:per_role])
    )
    four = tuple(range(1, min(4, sites_scale) + 1))
    six = tuple(range(1, min(6, sites_scale) + 1))
    five_from_zero = tuple(range(min(5, sites_scale)))
    compound_wells = _wells(compound, 1)
    return (
        SamplePlate(
            "source_4",
            "2021_04_26_Batch1",
            "BR00117035",
            "COMPOUND",
            "BR00117035__2021-05-02T16_02_51-Measurement1",
            compound_wells,
            four,
            big,
            PHENIX_CHANNELS,
            defects=_defects(compound_wells, trt, four),
        ),
        SamplePlate(
            "source_4",
            "2021_04_26_Batch1",
            "BR00117036",
            "DMSO",
            "BR00117036__2021-05-02T18_10_07-Measurement1",
            _wells(dmso),
            four,
            big,
            PHENIX_CHANNELS,
        ),
        SamplePlate(
            "source_4",
            "2021_05_31_Batch2",
            "BR00121001",
            "TARGET2",
            "BR00121001__2021-06-03T10_21_44-Measurement1",
            _wells(target2),
            four,
            big,
            PHENIX_CHANNELS,
        ),
        SamplePlate(
            "source_4",
            "2021_05_31_Batch2",
            "BR00121002",
            "COMPOUND",
            "BR00121002__2021-06-03T12_30_00-Measurement1",
            _wells(compound[:2]),
            four,
            big,
            PHENIX_CHANNELS,
            load_data_formats=(),
            imaged=False,
        ),
        SamplePlate(
            "source_3",
            "2021_06_14_Batch3",
            "BR00125173",
            "ORF",
            "BR00125173__2021-06-20T09_15_00-Measurement 1",
            _wells(orf),
            six,
            big,
            PHENIX_CHANNELS,
        ),
        SamplePlate(
            "source_13",
            "20221009_Run1",
            "CP-CC9-R1-01",
            "CRISPR",
            "CP-CC9-R1-01",
            _wells(crispr),
            five_from_zero,
            small,
            CV8000_CHANNELS,
            load_data_formats=("parquet",),
        ),
    )


def _defects(
    wells: tuple[SampleWell, ...], trt: int, sites: tuple[int, ...]
) -> tuple[SiteDefect, ...]:
    """Blurred sites in the first treatment wells (one per well, up to two) and one saturated
    AGP site in the first positive control well: roles whose every site the default sampling
    keeps, so the defects are processed."""
    blurred = [
        SiteDefect(well.well, sites[index % len(sites)], BLUR)
        for index, well in enumerate(wells[: min(trt, 2)])
    ]
    return (*blurred, SiteDefect(wells[trt].well, sites[-1], SATURATED, "AGP"))


PRESETS: dict[str, Preset] = {
    "default": Preset("default", _plates(trt=5, per_role=2, sizes=(1080, 970), sites_scale=9)),
    "tiny": Preset(
        "tiny",
        _plates(trt=1, per_role=1, sizes=(96, 80), sites_scale=2),
        cells_per_megapixel=400.0,
        defects=False,
    ),
    # the tiny layout at a size and sample where per-plate QC statistics mean something (~30
    # sampled sites a plate), with the defective sites: for the image-quality tests and demos
    "qc": Preset(
        "qc",
        _plates(trt=4, per_role=2, sizes=(256, 240), sites_scale=4),
        cells_per_megapixel=200.0,
    ),
}


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise ValueError(f"unknown sample preset {name!r}; known: {', '.join(PRESETS)}")
    return PRESETS[name]
