"""jump/quality.py: the metric plan, per-plate outlier flags and the site_qc rows."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from imaging_assets.jump.quality import (
    DEFAULT_METRICS,
    DEFAULT_RULES,
    METRIC_SET_NAME,
    MetricPlan,
    OutlierRule,
    flag_plate,
    measure_features,
    reason_counts,
    rule_columns,
    site_qc_schema,
    site_qc_table,
)
from imaging_assets.jump.schemas import quality_column, site_images_schema
from imaging_assets.processing.quality import FEATURES, measure


def test_an_unknown_feature_is_refused():
    with pytest.raises(ValueError, match="Sharpness"):
        measure_features(np.zeros((8, 8), np.uint16), ["Sharpness"])
    with pytest.raises(ValueError, match="Sharpness"):
        MetricPlan({"Sharpness": ("*",)})


def test_the_default_plan_measures_saturation_everywhere_and_blur_on_dna():
    plan = MetricPlan()
    assert plan.metrics == DEFAULT_METRICS
    dna, agp = plan.features("DNA"), plan.features("AGP")
    assert {"PowerLogLogSlope", "FocusScore", "PercentMaximal", "MeanIntensity"} <= dna
    assert {"PercentMaximal", "PercentMinimal", "MaxIntensity"} <= agp
    assert "PowerLogLogSlope" not in agp and "FocusScore" not in agp
    off = {"Correlation", "MedianIntensity", "MADIntensity"}
    assert not off & (dna | agp)  # off by default (the budget), configurable
    described = plan.describe(["DNA", "AGP"])
    assert described["PowerLogLogSlope"] == ["DNA"]
    assert described["PercentMaximal"] == ["DNA", "AGP"] and "Correlation" not in described


def test_a_plan_measures_columns_by_their_cellprofiler_names():
    image = np.random.default_rng(0).integers(100, 3000, (96, 96), dtype=np.uint16)
    values, scale = MetricPlan({"Correlation": ("AGP",), "MeanIntensity": ("*",)}).measure(
        "AGP", image
    )
    assert scale == 65535.0
    assert set(values) == {
        "ImageQuality_Correlation_OrigAGP_20",
        "ImageQuality_MeanIntensity_OrigAGP",
    }
    assert values["ImageQuality_MeanIntensity_OrigAGP"] == measure(image)["MeanIntensity"]
    assert MetricPlan({"Correlation": ("AGP",)}).measure("DNA", image) == ({}, None)
    floats = image.astype(np.float32)  # CellProfiler's integer scaling does not apply
    assert MetricPlan().measure("DNA", floats) == ({}, None)


def test_site_images_has_every_feature_of_every_channel_as_float64():
    schema = site_images_schema(["DNA", "Mito"])
    for channel in ("DNA", "Mito"):
        for feature in FEATURES:
            field = schema.field(quality_column(feature, channel))
            assert field.type == pa.float64()
            assert field.metadata[b"imaging_assets.addable"] == b"true"  # older lakes gain it
    assert schema.field("qc_metric_set").type == pa.string()
    assert quality_column("LocalFocusScore", "DNA") == "ImageQuality_LocalFocusScore_OrigDNA_20"


def _plate(n: int = 24, seed: int = 0) -> dict[str, list]:
    rng = np.random.default_rng(seed)
    slope = list(-2.4 + 0.03 * rng.standard_normal(n))
    saturation = [1e-4] * n  # one pixel at the image's own maximum: the same on every site
    return {
        "site_key": [f"s__P__A{i:02d}__1" for i in range(n)],
        quality_column("PowerLogLogSlope", "DNA"): slope,
        quality_column("PercentMaximal", "DNA"): list(saturation),
        quality_column("PercentMaximal", "AGP"): list(saturation),
    }


def test_outliers_are_flagged_per_plate_and_channel_with_reasons():
    plate = _plate()
    plate[quality_column("PowerLogLogSlope", "DNA")][3] = -3.1  # blurred
    plate[quality_column("PercentMaximal", "AGP")][7] = 2.5  # saturated
    plate[quality_column("PercentMaximal", "DNA")][9] = 0.05  # a few more maximal pixels: fine
    flags = flag_plate(pa.table(plate), ["DNA", "AGP"], DEFAULT_RULES)
    flagged = {key: r for key, r in zip(flags.site_keys, flags.reasons, strict=True) if r}
    assert set(flagged) == {"s__P__A03__1", "s__P__A07__1"}
    (blur,) = flagged["s__P__A03__1"]
    assert blur.startswith("DNA PowerLogLogSlope below plate median - 3 MAD (-3.1 < ")
    (saturated,) = flagged["s__P__A07__1"]
    assert saturated.startswith("AGP PercentMaximal above plate median + 3 MAD (2.5 > ")
    assert flags.flagged == 2 and flags.sites == 24 and flags.passed.count(False) == 2
    threshold = flags.thresholds[quality_column("PowerLogLogSlope", "DNA")]
    assert threshold["flagged"] == 1 and threshold["threshold"] < threshold["median"]
    # no spread in PercentMaximal: the rule's min_delta (0.1 %) sets the threshold
    saturation = flags.thresholds[quality_column("PercentMaximal", "AGP")]
    assert saturation["spread"] == 0 and saturation["threshold"] == pytest.approx(1e-4 + 0.1)
    assert reason_counts(flags.reasons) == {
        "AGP PercentMaximal above plate median + 3 MAD": 1,
        "DNA PowerLogLogSlope below plate median - 3 MAD": 1,
    }


def test_a_clean_plate_flags_nothing_and_a_small_one_is_not_judged():
    assert flag_plate(pa.table(_plate()), ["DNA", "AGP"]).flagged == 0
    small = _plate(n=8)
    small[quality_column("PowerLogLogSlope", "DNA")][0] = -9.0
    flags = flag_plate(pa.table(small), ["DNA", "AGP"])
    assert flags.flagged == 0
    assert "fewer than 10" in flags.thresholds[quality_column("PowerLogLogSlope", "DNA")]["skipped"]
    assert flag_plate(pa.table(small), ["DNA", "AGP"], min_sites=5).flagged == 1


def test_sites_without_a_value_are_neither_counted_nor_flagged():
    plate = _plate()
    column = quality_column("PowerLogLogSlope", "DNA")
    plate[column][5] = None  # not computed (e.g. a plan without it)
    plate[column][6] = -3.5
    table = pa.table(plate)
    flags = flag_plate(table, ["DNA", "AGP"])
    assert flags.reasons[5] == [] and flags.reasons[6]
    assert flags.thresholds[column]["sites"] == 23


def test_iqr_rules_and_no_spread_without_min_delta():
    plate = _plate()
    plate[quality_column("PowerLogLogSlope", "DNA")][0] = -1.0  # far above
    rule = OutlierRule("PowerLogLogSlope", ("DNA",), side="high", method="iqr", k=1.5)
    flags = flag_plate(pa.table(plate), ["DNA"], [rule])
    assert flags.reasons[0] == [
        f"DNA PowerLogLogSlope above plate Q3 + 1.5 IQR (-1 > "
        f"{flags.thresholds[quality_column('PowerLogLogSlope', 'DNA')]['threshold']:.4g})"
    ]
    flat = OutlierRule("PercentMaximal", ("*",), side="high", min_delta=0.0)
    plate[quality_column("PercentMaximal", "DNA")][0] = 0.5
    flags = flag_plate(pa.table(plate), ["DNA"], [flat])
    # 23 of 24 sites equal: MAD 0, and no min_delta to stand in for it, so nothing tells an
    # outlier from a site that differs at all; the rule says so instead of flagging
    assert flags.flagged == 0
    column = flags.thresholds[quality_column("PercentMaximal", "DNA")]
    assert column["spread"] == 0 and column["skipped"] == "no spread and no min_delta"
    with_floor = OutlierRule("PercentMaximal", ("*",), side="high", min_delta=0.1)
    assert flag_plate(pa.table(plate), ["DNA"], [with_floor]).flagged == 1


def test_rules_are_validated_and_name_their_columns():
    with pytest.raises(ValueError, match="side"):
        OutlierRule("FocusScore", side="middle")
    with pytest.raises(ValueError, match="method"):
        OutlierRule("FocusScore", method="zscore")
    assert rule_columns(DEFAULT_RULES, ["DNA", "AGP"]) == [
        "ImageQuality_PowerLogLogSlope_OrigDNA",
        "ImageQuality_PercentMaximal_OrigDNA",
        "ImageQuality_PercentMaximal_OrigAGP",
    ]


def test_site_qc_rows_carry_verdicts_rules_and_provenance():
    plate = _plate(n=12)
    plate[quality_column("PowerLogLogSlope", "DNA")][2] = -3.0
    sites = pa.table(
        {
            **plate,
            "source": ["s"] * 12,
            "batch": ["b"] * 12,
            "plate": ["P"] * 12,
            "well": [f"A{i:02d}" for i in range(12)],
            "site": ["1"] * 12,
            "control_role": ["trt"] * 12,
        }
    )
    flags = flag_plate(sites, ["DNA", "AGP"])
    table = site_qc_table(sites, flags, site_images_version=7, run_id="run-9")
    assert table.schema == site_qc_schema()
    rows = table.to_pylist()
    assert [r["qc_pass"] for r in rows] == [i != 2 for i in range(12)]
    assert rows[2]["qc_reasons"][0].startswith("DNA PowerLogLogSlope below")
    assert {r["qc_metric_set"] for r in rows} == {METRIC_SET_NAME}
    assert {r["site_images_version"] for r in rows} == {7}
    assert {r["dagster_run_id"] for r in rows} == {"run-9"}
    rules = json.loads(rows[0]["qc_rules"])
    assert rules["ImageQuality_PowerLogLogSlope_OrigDNA"]["rule"] == "below plate median - 3 MAD"
