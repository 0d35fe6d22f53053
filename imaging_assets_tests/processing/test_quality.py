"""imaging_assets.processing.quality: agreement with CellProfiler's own MeasureImageQuality.

The reference numbers below were computed once, outside this project, by CellProfiler 4.2.8's own
module: cellprofiler/modules/measureimagequality.py, MeasureImageQuality.run on a
cellprofiler_core Workspace, in a scratch Python 3.11 venv (CellProfiler 4.2.8 and
cellprofiler-core 4.2.8 wheels installed with --no-deps next to numpy 1.26.4, scipy 1.10.1,
scikit-image 0.19.3, centrosome 1.3.4, h5py 3.11; javabridge/bioformats/wx replaced by empty
stubs, which this module never calls). Each image was read with tifffile, built as below, handed to
cellprofiler_core.image.Image as the raw integer array (Image.set_image makes float32(raw) / 65535,
/ 255 for uint8, exactly as NamesAndTypes loads a TIFF; the divisor_4095 case was handed
float32(raw) / 4095.0 instead, bioformats' rescale by a MaxSampleValue), named "OrigDNA", with
blur (one scale group: 20, or 7 where the case says so), saturation and intensity on, and image
scalings and thresholds off; the module's Image measurements were then read back.
cellprofiler-library-nightly 5.0.0.dev784 (cellprofiler_library.modules._measureimagequality.
measure_image_quality, the same code as a library) gives bit-identical numbers for every image.
Each tuple is in FEATURES order.

Tolerances (see _assert_agrees): CellProfiler measures float32 pixels (relative rounding 2**-24)
and sums them in float32, measure() computes exactly on raw / divisor. Counts (TotalArea,
PercentMaximal, PercentMinimal) are equal; Correlation agrees to 1e-9 (the grey levels are
identical, only float64 round-off differs); every other feature to rel 2e-6, with an absolute
floor of a few float32 roundings of the image's scale (2**-22 * MaxIntensity for intensities,
its square over MeanIntensity for the variance-over-mean focus scores) where CellProfiler's
float32 noise stands in for an exact 0 (the constant image).
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import tifffile
from scipy.ndimage import gaussian_filter

from imaging_assets.processing.quality import (
    FEATURES,
    METRIC_SET,
    METRIC_SET_VERSION,
    QualityConfig,
    feature_name,
    measure,
    measure_features,
)

# CellProfiler 4.2.8's values, produced as the module docstring says (kept as printed).
# fmt: off
CELLPROFILER_REAL: dict[str, tuple[float, ...]] = {
    "cpg0000_BR00117006/r01c01f01p01-ch2sk1fk1fl1.tiff": (
        0.06310124232070387, 0.03811241882796754, 0.26149924647912953, -1.8487633789954983,
        8.573388203017832e-05, 8.573388203017832e-05, 1166400.0, 63494.2109375,
        0.054436051901148835, 0.03686579689383507, 0.05860872194170952, 0.026321809738874435,
        0.004257267341017723, 0.6029297113418579,
    ),
    "cpg0000_BR00117006/r01c01f01p01-ch3sk1fk1fl1.tiff": (
        0.11811905147207209, 0.07988966342756577, 0.3136931462809029, -2.1414304684813126,
        8.573388203017832e-05, 8.573388203017832e-05, 1166400.0, 96607.484375,
        0.08282534668638546, 0.04434271901845932, 0.09891031682491302, 0.03598077595233917,
        0.003784237429499626, 0.8554818034172058,
    ),
    "cpg0000_BR00117006/r01c01f01p01-ch5sk1fk1fl1.tiff": (
        0.1284478923973799, 5.34560745184203, 0.02812060849160598, -1.6290307515157965,
        0.001800411522633745, 8.573388203017832e-05, 1166400.0, 33229.61328125,
        0.028489037449631344, 0.009826810099184513, 0.0604926198720932, 0.002990768291056156,
        0.0027008468750864267, 1.0,
    ),
    "phenix_site_v1/r01c01f01p01-ch1sk1fk1fl1.tiff": (
        0.041606947350734114, 5.090139543394269, 0.30173361982082797, -1.8596208605639106,
        8.573388203017832e-05, 8.573388203017832e-05, 1166400.0, 15230.8935546875,
        0.013058036312317816, 0.01095597818493843, 0.023308904841542244, 0.0013885712251067162,
        0.0023498893715441227, 1.0,
    ),
    "phenix_site_v1/r01c01f01p01-ch2sk1fk1fl1.tiff": (
        0.05527531139371091, 5.582833676897326, 0.4140873431133555, -2.1645821443887763,
        8.573388203017832e-05, 8.573388203017832e-05, 1166400.0, 20999.009765625,
        0.018003266259966563, 0.014587624929845333, 0.03154577687382698, 0.0025787753984332085,
        0.006363012362271547, 0.9673762321472168,
    ),
    "phenix_site_v1/r01c01f01p01-ch3sk1fk1fl1.tiff": (
        0.04325292273280904, 4.840710614410193, 0.36264494017818444, -2.119992336522154,
        8.573388203017832e-05, 8.573388203017832e-05, 1166400.0, 6955.8994140625,
        0.005963562597790209, 0.0045014116913080215, 0.01606055721640587, 0.0006408791523426771,
        0.0018616006709635258, 0.5179217457771301,
    ),
    "phenix_site_v1/r01c01f01p01-ch4sk1fk1fl1.tiff": (
        0.09248396989473208, 24.53615540095904, 0.38501649736766125, -2.0340972643224733,
        8.573388203017832e-05, 8.573388203017832e-05, 1166400.0, 15372.1181640625,
        0.013179113652316958, 0.009826810099184513, 0.03491212800145149, 0.0015564197674393654,
        0.003479056991636753, 0.8461280465126038,
    ),
    "phenix_site_v1/r01c01f01p01-ch5sk1fk1fl1.tiff": (
        0.04169298937477175, 6.717922533739858, 0.15945117858529453, -2.0317754215589043,
        0.004629629629629629, 8.573388203017832e-05, 1166400.0, 8720.4990234375,
        0.007476422345196759, 0.006713969632983208, 0.01765543594956398, 0.0009155413135886192,
        0.002594033721834421, 1.0,
    ),
    "phenix_site_v1/r01c01f01p01-ch6sk1fk1fl1.tiff": (
        9.900205698150701e-05, 0.0034641543419559155, 0.2078500732650756, -0.7074392787895738,
        8.573388203017832e-05, 8.573388203017832e-05, 1166400.0, 373483.4375,
        0.3202018497085048, 0.3205157518386841, 0.0056303320452570915, 0.0036774277687072754,
        0.17940032482147217, 0.48146793246269226,
    ),
    "phenix_site_v5/r01c01f01p01-ch1sk1fk1fl1.tiff": (
        0.0072749323398442894, 0.005011177169870953, 0.291782485209477, -2.476099885207854,
        8.573388203017832e-05, 9.305298353909466, 1166400.0, 2539.503173828125,
        0.002177214655202439, 0.0008850232698023319, 0.003979835659265518, 0.000839246204122901,
        0.0, 0.06845197081565857,
    ),
    "phenix_site_v5/r01c01f01p01-ch2sk1fk1fl1.tiff": (
        0.0002833333260352133, 0.0036518172390108575, 0.48416196258554606, -0.7095915464469481,
        8.573388203017832e-05, 8.573388203017832e-05, 1166400.0, 140801.203125,
        0.12071433738425925, 0.12100404500961304, 0.005848281551152468, 0.0033112093806266785,
        0.06219577416777611, 0.27522698044776917,
    ),
    "phenix_site_v5/r01c01f01p01-ch3sk1fk1fl1.tiff": (
        0.020340554860210417, 0.05750989557408927, 0.012806165401481525, -0.535230023443938,
        0.0009430727023319616, 8.573388203017832e-05, 1166400.0, 49068.9765625,
        0.0420687384795096, 0.03550774231553078, 0.029252376407384872, 0.00817883387207985,
        0.009460593573749065, 1.0,
    ),
    "phenix_site_v5/r01c01f01p01-ch4sk1fk1fl1.tiff": (
        0.003346212230971385, 0.06944100705904584, -0.0004445409266894267, -0.7259393839573745,
        8.573388203017832e-05, 8.573388203017832e-05, 1166400.0, 32819.09765625,
        0.028137086467978394, 0.027573052793741226, 0.009703229181468487, 0.004287786781787872,
        0.00871290173381567, 0.9156328439712524,
    ),
    "phenix_site_v5/r01c01f01p01-ch5sk1fk1fl1.tiff": (
        0.051212868239047464, 0.03628643965635743, 0.04937724889924052, -0.7037194951815009,
        8.573388203017832e-05, 8.573388203017832e-05, 1166400.0, 20443.1484375,
        0.017526704764660495, 0.0053101396188139915, 0.02995985373854637, 0.0020141908898949623,
        0.0014496070798486471, 0.8686350584030151,
    ),
    "phenix_site_v5/r01c01f01p01-ch6sk1fk1fl1.tiff": (
        4.2429731590432145e-05, 0.0001277192167561392, 0.5005484493505966, -0.8984754591819616,
        8.573388203017832e-05, 8.573388203017832e-05, 1166400.0, 2844.795654296875,
        0.0024389537502545224, 0.002471961546689272, 0.00032168952748179436, 0.00021362630650401115,
        0.0012207217514514923, 0.008484016172587872,
    ),
}
CELLPROFILER_CASES: dict[str, tuple[float, ...]] = {
    "crop_997x1003": (
        0.0458982157767134, 5.842375554461748, 0.3014155312595185, -1.879088679085615,
        0.00010000090000810007, 0.00010000090000810007, 999991.0, 13717.1083984375,
        0.013717231853524182, 0.011367971077561378, 0.025091761723160744, 0.0013427939265966415,
        0.0023498893715441227, 1.0,
    ),
    "crop_500x333_scale7": (
        0.04419375047277264, 0.018000046662827868, 0.6804723742804188, -1.7475923789262677,
        0.0006006006006006006, 0.0006006006006006006, 166500.0, 12916.3974609375,
        0.07757596072635135, 0.06034943088889122, 0.05855230614542961, 0.02830548956990242,
        0.007064927369356155, 0.531120777130127,
    ),
    "uint8_400x300": (
        0.07141256911442154, 0.009323785087036579, 0.19153506492647374, -0.869699544985789,
        9.620833333333334, 0.0016666666666666668, 120000.0, 69031.234375,
        0.5752602864583334, 0.5215686559677124, 0.20268402993679047, 0.10588234663009644,
        0.2078431397676468, 1.0,
    ),
    "divisor_4095": (
        0.6922048477165222, 77.46909775766895, 0.36264494017818444, -2.119992350705364,
        8.573388203017832e-05, 8.573388203017832e-05, 1166400.0, 111319.9296875,
        0.0954388971943587, 0.07203907519578934, 0.2570277750492096, 0.010256413370370865,
        0.029792429879307747, 8.288644790649414,
    ),
    "constant": (
        2.273701782944936e-16, 0.0, 0.0, 0.0,
        100.0, 100.0, 4096.0, 62.50096130371094,
        0.015259023755788803, 0.015259021893143654, 1.862645149230957e-09, 0.0,
        0.015259021893143654, 0.015259021893143654,
    ),
    "zeros": (
        0.0, 0.0, 0.0, 0.0,
        100.0, 100.0, 4096.0, 0.0,
        0.0, 0.0, 0.0, 0.0,
        0.0, 0.0,
    ),
    "tiny_20x30": (
        0.0025520767060459703, 3.361622616518354e-08, -0.21002831066336075, 0.0,
        0.16666666666666666, 0.16666666666666666, 600.0, 4.606698989868164,
        0.007677831649780273, 0.0076981764286756516, 0.004426558036357164, 0.0038910508155822754,
        0.0, 0.015243763104081154,
    ),
    "stripes": (
        6.198978588520976e-08, 3.240675029773363e-10, 1.0, 2.8219082766815453,
        20.3125, 20.3125, 4096.0, 6.250094413757324,
        0.0015259019564837217, 0.0015259021893143654, 9.725756171974353e-06, 0.0,
        0.0015106431674212217, 0.001541161211207509,
    ),
}
# fmt: on


def _stripes() -> np.ndarray:
    """Rows of 99 / 100 / 101 (20 / 60 / 20 %): over half the pixels equal the exact mean, so
    rps' MAD about the mean is 0 in exact arithmetic; CellProfiler's float32 mean misses it, so
    it still reports a (positive) slope, and so must measure()."""
    image = np.full((64, 64), 100, np.uint16)
    image[::5, :] = 99
    image[2::5, :] = 101
    return image


def _case(name: str, real: Path) -> tuple[np.ndarray, float | None, int]:
    """The image of a CELLPROFILER_CASES entry, its divisor (None: the dtype's) and its scale."""

    def read(relative: str) -> np.ndarray:
        return tifffile.imread(real / relative)

    v1, v5 = "phenix_site_v1/images", "phenix_site_v5/images"
    if name == "crop_997x1003":  # tiles of unequal size, an odd pixel count
        return read(f"{v1}/r01c01f01p01-ch1sk1fk1fl1.tiff")[:997, 5:1008], None, 20
    if name == "crop_500x333_scale7":
        cpg = read("cpg0000_BR00117006/images/r01c01f01p01-ch2sk1fk1fl1.tiff")
        return cpg[:500, :333], None, 7
    if name == "uint8_400x300":
        bright = read(f"{v5}/r01c01f01p01-ch3sk1fk1fl1.tiff")[:400, :300]
        return (bright >> 4).clip(0, 255).astype(np.uint8), None, 20
    if name == "divisor_4095":
        return read(f"{v1}/r01c01f01p01-ch3sk1fk1fl1.tiff"), 4095.0, 20
    if name == "constant":
        return np.full((64, 64), 1000, np.uint16), None, 20
    if name == "zeros":
        return np.zeros((64, 64), np.uint16), None, 20
    if name == "tiny_20x30":  # too small for any power-spectrum ring
        return (np.arange(600).reshape(20, 30) * 37 % 1000).astype(np.uint16), None, 20
    if name == "stripes":
        return _stripes(), None, 20
    raise KeyError(name)


def _assert_agrees(got: dict[str, float], reference: tuple[float, ...], slope_rtol=1e-6) -> None:
    ref = dict(zip(FEATURES, reference, strict=True))
    floor = 2.0**-22 * ref["MaxIntensity"]
    focus_floor = floor * floor / ref["MeanIntensity"] if ref["MeanIntensity"] else 0.0
    for feature in FEATURES:
        if feature in ("TotalArea", "PercentMaximal", "PercentMinimal"):
            rtol, atol = 0.0, 0.0
        elif feature == "Correlation":
            rtol, atol = 1e-9, 1e-12
        elif feature == "PowerLogLogSlope":
            rtol, atol = slope_rtol, 0.0
        elif feature in ("FocusScore", "LocalFocusScore"):
            rtol, atol = 2e-6, focus_floor
        else:
            rtol, atol = 2e-6, floor
        assert math.isclose(got[feature], ref[feature], rel_tol=rtol, abs_tol=atol), (
            f"{feature}: {got[feature]!r} vs CellProfiler {ref[feature]!r}"
        )


@pytest.mark.parametrize("relative", sorted(CELLPROFILER_REAL))
def test_every_feature_agrees_with_cellprofiler_on_the_real_fixtures(real_fixtures, relative):
    folder, file = relative.split("/")
    image = tifffile.imread(real_fixtures / folder / "images" / file)
    assert image.shape == (1080, 1080) and image.dtype == np.uint16
    _assert_agrees(measure(image), CELLPROFILER_REAL[relative])


@pytest.mark.parametrize("name", sorted(CELLPROFILER_CASES))
def test_every_feature_agrees_with_cellprofiler_on_crops_and_edge_cases(real_fixtures, name):
    image, divisor, scale = _case(name, real_fixtures)
    got = measure(image, QualityConfig(local_focus_scale=scale), scale=divisor)
    # The stripes' spectrum is a few peaks; its other rings hold only float32 FFT round-off,
    # CellProfiler's and ours.
    _assert_agrees(got, CELLPROFILER_CASES[name], slope_rtol=1e-5 if name == "stripes" else 1e-6)


def test_a_constant_image_gets_cellprofilers_zeros_not_nan():
    got = measure(np.full((64, 64), 1000, np.uint16))
    level = 1000 / 65535
    assert got == {
        "FocusScore": 0.0,
        "LocalFocusScore": 0.0,
        "Correlation": 0.0,
        "PowerLogLogSlope": 0.0,
        "PercentMaximal": 100.0,
        "PercentMinimal": 100.0,
        "TotalArea": 4096.0,
        "TotalIntensity": 4096 * 1000 / 65535,
        "MeanIntensity": level,
        "MedianIntensity": level,
        "StdIntensity": 0.0,
        "MADIntensity": 0.0,
        "MinIntensity": level,
        "MaxIntensity": level,
    }


def _cpg(real: Path, channel: int) -> np.ndarray:
    path = real / "cpg0000_BR00117006" / "images" / f"r01c01f01p01-ch{channel}sk1fk1fl1.tiff"
    return tifffile.imread(path)


@pytest.mark.parametrize("channel", [2, 3, 5])
def test_blur_lowers_the_focus_scores_and_steepens_the_power_slope(real_fixtures, channel):
    sharp = _cpg(real_fixtures, channel)
    blurred = gaussian_filter(sharp, sigma=2)
    assert blurred.dtype == np.uint16
    before, after = measure(sharp), measure(blurred)
    assert after["FocusScore"] < before["FocusScore"]
    assert after["LocalFocusScore"] < before["LocalFocusScore"]
    assert after["PowerLogLogSlope"] < before["PowerLogLogSlope"] - 0.5


def test_saturated_and_dark_shares_are_the_percent_maximal_and_minimal(real_fixtures):
    image = _cpg(real_fixtures, 2)  # its own maximum (39513) and minimum (279) are single pixels
    flat = image.reshape(-1)
    flat[::40] = 65535
    flat[1::40] = 0
    got = measure(image)
    assert got["PercentMaximal"] == 2.5 and got["PercentMinimal"] == 2.5
    assert got["MaxIntensity"] == 1.0 and got["MinIntensity"] == 0.0


def test_clipping_at_a_value_makes_everything_above_it_maximal(real_fixtures):
    image = _cpg(real_fixtures, 5)
    ceiling = int(np.percentile(image, 97))
    got = measure(np.minimum(image, ceiling))
    assert got["PercentMaximal"] == pytest.approx(100 * np.mean(image >= ceiling), abs=1e-12)
    assert got["PercentMaximal"] > 3.0


def test_the_divisor_scales_intensities_and_focus_but_not_shape_features(real_fixtures):
    image = _cpg(real_fixtures, 3)
    as_16bit, as_12bit = measure(image), measure(image, scale=4095)
    ratio = 65535 / 4095
    for feature in ("FocusScore", "LocalFocusScore", "TotalIntensity", "MADIntensity"):
        assert as_12bit[feature] == pytest.approx(as_16bit[feature] * ratio, rel=1e-12)
    for feature in ("PowerLogLogSlope", "PercentMaximal", "TotalArea"):
        assert as_12bit[feature] == as_16bit[feature]
    # CellProfiler's float32 rounding at exact grey-level boundaries depends on the divisor.
    assert as_12bit["Correlation"] == pytest.approx(as_16bit["Correlation"], rel=1e-4)


def test_a_strided_view_measures_like_its_copy(real_fixtures):
    view = _cpg(real_fixtures, 5)[::2, 1::3].T
    assert not view.flags.c_contiguous
    assert measure(view) == measure(np.ascontiguousarray(view))


def test_names_are_cellprofilers():
    assert METRIC_SET == "cellprofiler.MeasureImageQuality" and METRIC_SET_VERSION == "1"
    assert [feature_name(f, "OrigDNA") for f in FEATURES] == [
        "ImageQuality_FocusScore_OrigDNA",
        "ImageQuality_LocalFocusScore_OrigDNA_20",
        "ImageQuality_Correlation_OrigDNA_20",
        "ImageQuality_PowerLogLogSlope_OrigDNA",
        "ImageQuality_PercentMaximal_OrigDNA",
        "ImageQuality_PercentMinimal_OrigDNA",
        "ImageQuality_TotalArea_OrigDNA",
        "ImageQuality_TotalIntensity_OrigDNA",
        "ImageQuality_MeanIntensity_OrigDNA",
        "ImageQuality_MedianIntensity_OrigDNA",
        "ImageQuality_StdIntensity_OrigDNA",
        "ImageQuality_MADIntensity_OrigDNA",
        "ImageQuality_MinIntensity_OrigDNA",
        "ImageQuality_MaxIntensity_OrigDNA",
    ]
    wide = QualityConfig(local_focus_scale=7)
    assert feature_name("Correlation", "OrigAGP", wide) == "ImageQuality_Correlation_OrigAGP_7"
    assert feature_name("FocusScore", "OrigAGP", wide) == "ImageQuality_FocusScore_OrigAGP"
    with pytest.raises(ValueError, match="Sharpness"):
        feature_name("Sharpness", "OrigDNA")


def test_measure_returns_python_floats_in_feature_order():
    got = measure((np.arange(4096).reshape(64, 64) % 251).astype(np.uint8))
    assert list(got) == list(FEATURES)
    assert all(type(value) is float for value in got.values())


@pytest.mark.parametrize("shape", [(2, 3, 4), (64,), (0, 5), ()])
def test_anything_but_a_non_empty_2d_image_is_a_value_error_naming_the_shape(shape):
    with pytest.raises(ValueError, match=f"shape {shape}".replace("(", r"\(").replace(")", r"\)")):
        measure(np.zeros(shape, np.uint16))


@pytest.mark.parametrize("dtype", [np.float32, np.int16, np.uint32, bool])
def test_only_unsigned_8_and_16_bit_images_are_accepted(dtype):
    with pytest.raises(TypeError, match=np.dtype(dtype).name):
        measure(np.ones((32, 32), dtype))


@pytest.mark.parametrize("scale", [0, -1.0, float("nan"), float("inf")])
def test_the_divisor_must_be_positive_and_finite(scale):
    with pytest.raises(ValueError, match="scale"):
        measure(np.ones((32, 32), np.uint16), scale=scale)


@pytest.mark.parametrize("local_focus_scale", [0, -20, 2.5, True])
def test_the_local_focus_scale_must_be_a_positive_int(local_focus_scale):
    with pytest.raises(ValueError, match="local_focus_scale"):
        QualityConfig(local_focus_scale=local_focus_scale)


SUBSET_FOLDERS = ("cpg0000_BR00117006", "phenix_site_v1")


def _subset_images(real_fixtures) -> list[np.ndarray]:
    paths = [sorted((real_fixtures / f / "images").glob("*.tiff"))[0] for f in SUBSET_FOLDERS]
    rng = np.random.default_rng(3)
    edge = [
        np.full((64, 64), 700, np.uint16),  # constant: CellProfiler's zeros
        rng.integers(0, 256, (50, 70), dtype=np.uint8),  # uint8, tiles not dividing the size
        np.pad(rng.integers(0, 4000, (40, 40), dtype=np.uint16), 12),  # a zero median border
    ]
    return [tifffile.imread(p) for p in paths] + edge


def test_every_feature_alone_or_in_pairs_is_exactly_what_measure_gives(real_fixtures):
    for image in _subset_images(real_fixtures):
        full = measure(image)
        assert measure_features(image, FEATURES) == full
        for feature in FEATURES:
            assert measure_features(image, [feature]) == {feature: full[feature]}, feature
        for pair in itertools.combinations(FEATURES, 2):
            assert measure_features(image, pair) == {f: full[f] for f in pair}, pair
