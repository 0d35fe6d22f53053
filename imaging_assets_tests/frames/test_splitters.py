"""Splitting files into frames: OME-TIFF, multi-position sets, folders, shaped TIFFs, NDTiff."""

import json

import numpy as np
import pytest
import tifffile

from imaging_assets.core.errors import InputError
from imaging_assets.demo.gallery.frames import write_ome
from imaging_assets.frames.splitters import detect_format, open_frames
from imaging_assets_tests.frames.conftest import NDTIFF


def frames_by_index(source):
    return {(f.c, f.z, f.t, f.p): f for f in source.frames()}


def test_ome_tiff_frames_follow_the_series_axes_and_ome_metadata(tmp_path):
    array = np.random.default_rng(1).integers(0, 4096, (3, 2, 4, 20, 16), dtype=np.uint16)
    write_ome(tmp_path / "a.ome.tif", array, ["DAPI", "GFP"])
    assert detect_format(tmp_path / "a.ome.tif") == "ome-tiff"
    source = open_frames(tmp_path / "a.ome.tif")
    assert (source.format, source.axes, source.frame_count) == ("ome-tiff", "TCZYX", 24)
    assert source.channel_names == ["DAPI", "GFP"]
    pixels = source.global_meta["ome"][0]["pixels"]
    assert float(pixels["PhysicalSizeZ"]) == 0.5 and float(pixels["PhysicalSizeX"]) == 0.325
    frames = frames_by_index(source)
    assert len(frames) == 24
    for (c, z, t, p), frame in frames.items():
        assert p == 0
        np.testing.assert_array_equal(frame.array, array[t, c, z])
        assert frame.channel_name == ["DAPI", "GFP"][c]


def test_a_multi_position_set_makes_each_file_a_position(tmp_path):
    arrays = [np.full((2, 1, 3, 8, 8), p, dtype=np.uint8) for p in range(3)]
    names = []
    for p, array in enumerate(arrays):
        write_ome(tmp_path / f"pos{p}.ome.tif", array, ["BF"])
        names.append(tmp_path / f"pos{p}.ome.tif")
    source = open_frames(tmp_path, positions=[n.relative_to(tmp_path) for n in names])
    frames = frames_by_index(source)
    assert source.frame_count == len(frames) == 18
    assert {k[3] for k in frames} == {0, 1, 2}
    assert all(int(f.array[0, 0]) == p for (c, z, t, p), f in frames.items())


def test_a_position_set_with_different_channels_is_refused(tmp_path):
    write_ome(tmp_path / "a.ome.tif", np.zeros((1, 1, 1, 4, 4), np.uint8), ["BF"])
    write_ome(tmp_path / "b.ome.tif", np.zeros((1, 1, 1, 4, 4), np.uint8), ["GFP"])
    with pytest.raises(InputError, match="b.ome.tif.*differ from the first position"):
        open_frames(tmp_path, positions=[tmp_path / "a.ome.tif", tmp_path / "b.ome.tif"])


def test_a_plain_tiff_with_axes_in_the_description(tmp_path):
    array = np.arange(2 * 3 * 4 * 5, dtype=np.uint16).reshape(2, 3, 4, 5)
    tifffile.imwrite(tmp_path / "p.tif", array, metadata={"axes": "ZCYX"})
    source = open_frames(tmp_path / "p.tif")
    assert (source.format, source.axes) == ("tiff", "ZCYX")
    for (c, z, t, _p), frame in frames_by_index(source).items():
        assert t == 0
        np.testing.assert_array_equal(frame.array, array[z, c])


def test_an_imagej_hyperstack(tmp_path):
    array = np.arange(2 * 3 * 2 * 4 * 4, dtype=np.uint16).reshape(2, 3, 2, 4, 4)  # TZCYX
    tifffile.imwrite(tmp_path / "ij.tif", array, imagej=True, metadata={"axes": "TZCYX"})
    frames = frames_by_index(open_frames(tmp_path / "ij.tif"))
    assert len(frames) == 12
    np.testing.assert_array_equal(frames[(1, 2, 1, 0)].array, array[1, 2, 1])


@pytest.mark.parametrize(
    ("array", "kwargs", "message"),
    [
        (np.zeros((3, 4, 4), np.uint8), {"metadata": {"axes": "QYX"}}, "axis 'Q' is not a frame"),
        # five pages and no axes in the ImageDescription
        (np.zeros((5, 16, 16), np.uint8), {"metadata": None}, "axis 'I' is not a frame"),
        (np.zeros((4, 4, 3), np.uint8), {"photometric": "rgb"}, "'YXS' (shape (4, 4, 3)) do not"),
    ],
)
def test_a_file_with_wrong_axes_is_refused_naming_file_and_axes(tmp_path, array, kwargs, message):
    tifffile.imwrite(tmp_path / "w.tif", array, **kwargs)
    with pytest.raises(InputError) as error:
        open_frames(tmp_path / "w.tif")
    assert message in str(error.value) and "w.tif" in str(error.value)
    assert "expected axes among T, C, Z" in str(error.value)


def test_an_unreadable_file_is_a_clear_error(tmp_path):
    (tmp_path / "bad.tif").write_bytes(b"this is not a TIFF at all")
    with pytest.raises(InputError, match=r"bad.tif: not a readable TIFF"):
        open_frames(tmp_path / "bad.tif")
    with pytest.raises(InputError, match="does not exist"):
        open_frames(tmp_path / "missing.tif")


def test_a_folder_of_single_frame_tiffs_with_metadata_txt(samples):
    folder_id = "OTHER-2024-06-10-14-00-00-0002"
    source = open_frames(samples.root / "frames" / "folder" / folder_id)
    assert source.format == "tiff-folder"
    assert source.channel_names == ["Cy5", "FITC"]
    expected = samples.expected[folder_id][0]
    frames = frames_by_index(source)
    assert len(frames) == expected.shape[0] * expected.shape[1] * expected.shape[2]
    for (c, z, t, _p), frame in frames.items():
        np.testing.assert_array_equal(frame.array, expected[t, c, z])
        assert frame.meta["ChannelIndex"] == c and frame.meta["SliceIndex"] == z
        assert frame.meta["Exposure-ms"] == 10 + 5 * c
        assert frame.channel_name == ["Cy5", "FITC"][c]


def test_a_folder_with_unparseable_names_is_refused(tmp_path):
    tifffile.imwrite(tmp_path / "whatever.tif", np.zeros((4, 4), np.uint8))
    with pytest.raises(InputError, match="whatever.tif: cannot tell the frame's channel"):
        open_frames(tmp_path, "tiff-folder")


def test_the_real_ndtiff_matches_what_tifffile_reports(real_fixtures):
    folder = real_fixtures / NDTIFF
    stack = next(folder.glob("*NDTiffStack.tif"))
    assert detect_format(folder) == "ndtiff" and detect_format(stack) == "ndtiff"
    source = open_frames(folder)
    assert source.channel_names == ["DAPI", "FITC"]
    frames = list(source.frames())
    with tifffile.TiffFile(stack) as tif:
        series = tif.series[0]
        assert (series.axes, series.shape) == ("TCYX", (4, 2, 64, 64))
        full = series.asarray()
        tags = {}
        for page in tif.pages:
            tags[page.dataoffsets[0]] = page.tags["MicroManagerMetadata"].value
    assert len(frames) == 8
    assert sorted((f.t, f.c) for f in frames) == [(t, c) for t in range(4) for c in range(2)]
    for frame in frames:
        np.testing.assert_array_equal(frame.array, full[frame.t, frame.c])
        assert (frame.z, frame.p) == (0, 0)
        # the per-frame metadata is tag 51123 of the page holding these pixels
        (offset,) = [o for o, meta in tags.items() if meta["Axes"] == frame.meta["Axes"]]
        expected = tags[offset]
        assert frame.meta == json.loads(json.dumps(expected))
        for key in ("ChannelIndex", "Exposure", "Position", "PositionIndex", "FrameIndex"):
            assert frame.meta[key] == expected[key]
        assert frame.meta["Axes"] == {"channel": frame.channel_name, "time": frame.t}
    assert source.global_meta["Summary"]["PixelType"] == "GRAY16"
