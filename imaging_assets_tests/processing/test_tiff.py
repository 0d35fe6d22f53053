"""decode_tiff: header checks before any pixel is decoded, and error text without object bytes."""

from __future__ import annotations

import io
import time
import tracemalloc

import imagecodecs
import numpy as np
import pytest
import tifffile

from imaging_assets.processing import ImageDecodeError, decode_tiff, read_tiff_header

SECRET = "TOPSECRETVALUE42-hunter2"


def _tiff(array: np.ndarray, compression: str | None = "zlib") -> bytes:
    sink = io.BytesIO()
    tifffile.imwrite(sink, array, compression=compression)
    return sink.getvalue()


@pytest.fixture(scope="module")
def bomb() -> bytes:
    """A ~120 KB deflate TIFF declaring 9000 x 9000 uint16 (162 MB once decoded)."""
    return _tiff(np.zeros((9000, 9000), np.uint16))


def _peak_while(function) -> tuple[int, float]:
    tracemalloc.start()
    started = time.perf_counter()
    try:
        function()
    finally:
        seconds = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return peak, seconds


def _rejected(data: bytes, **kwargs) -> ImageDecodeError:
    with pytest.raises(ImageDecodeError) as caught:
        decode_tiff(data, source="s3://bucket/bomb.tiff", **kwargs)
    return caught.value


def test_a_bomb_is_rejected_from_its_header_against_the_expected_shape(bomb):
    assert len(bomb) < 2_000_000
    errors = []
    peak, seconds = _peak_while(lambda: errors.append(_rejected(bomb, expected_shape=(64, 64))))
    error = errors[0]
    assert error.kind == "wrong_size"
    assert "(9000, 9000)" in str(error) and "(64, 64)" in str(error)
    assert peak < 16 * 2**20, f"peak {peak / 2**20:.0f} MiB: the pixels were decoded"
    assert seconds < 2


def test_a_bomb_is_rejected_by_the_default_pixel_limit_when_nothing_is_expected(bomb):
    errors = []
    peak, _ = _peak_while(lambda: errors.append(_rejected(bomb)))
    assert errors[0].kind == "wrong_size" and "81000000" in str(errors[0])
    assert peak < 16 * 2**20, f"peak {peak / 2**20:.0f} MiB: the pixels were decoded"


def test_a_configurable_pixel_limit():
    data = _tiff(np.zeros((100, 100), np.uint16))
    assert decode_tiff(data, max_pixels=10_000).shape == (100, 100)
    assert _rejected(data, max_pixels=9_999).kind == "wrong_size"


def test_wrong_dtype_names_both_dtypes():
    data = _tiff(np.zeros((32, 32), np.uint8))
    error = _rejected(data, expected_dtype="uint16")
    assert error.kind == "wrong_dtype"
    assert "uint8" in str(error) and "uint16" in str(error)


def test_float_images_are_wrong_dtype_unless_float_is_expected():
    image = np.ones((32, 32), np.float32)
    assert _rejected(_tiff(image)).kind == "wrong_dtype"
    assert decode_tiff(_tiff(image), expected_dtype="float32").dtype == np.float32
    image[3, 4] = np.nan
    assert _rejected(_tiff(image), expected_dtype="float32").kind == "non_finite"
    image[3, 4] = np.inf
    assert _rejected(_tiff(image), expected_dtype="float32").kind == "non_finite"


def test_the_header_of_a_real_phenix_tiff_without_decoding(real_fixtures):
    path = sorted((real_fixtures / "phenix_site_v1" / "images").glob("*.tiff"))[0]
    data = path.read_bytes()
    header = read_tiff_header(data)
    assert (header.shape, header.dtype) == ((1080, 1080), np.dtype("uint16"))
    image = decode_tiff(data, expected_shape=(1080, 1080), expected_dtype="uint16")
    assert image.shape == (1080, 1080)
    error = _rejected(data, expected_shape=(996, 996))
    assert (
        error.kind == "wrong_size" and "(1080, 1080)" in str(error) and "(996, 996)" in str(error)
    )


@pytest.mark.parametrize(
    "content",
    [
        SECRET.encode(),  # a text file such as /etc/hostname
        b"II*\x00" + SECRET.encode(),  # a TIFF signature followed by garbage
        b"MM\x00*" + SECRET.encode() * 4,
        b"II+\x00" + SECRET.encode() * 4,  # BigTIFF signature
        _tiff(np.zeros((8, 8), np.uint16), None)[:8] + SECRET.encode() * 8,
    ],
)
def test_decode_errors_never_echo_object_bytes(content):
    error = _rejected(content)
    text = str(error)
    assert text.startswith("s3://bucket/bomb.tiff: corrupt: ")
    for start in range(len(SECRET) - 3):
        assert SECRET[start : start + 4] not in text, text
    assert "b'" not in text and 'b"' not in text, text


@pytest.fixture
def libtiff_calls(monkeypatch):
    """Counts the pages libtiff decoded (the fast path) rather than tifffile."""
    calls = []
    original = imagecodecs.tiff_decode

    def counting(*args, **kwargs):
        calls.append(kwargs.get("index"))
        return original(*args, **kwargs)

    monkeypatch.setattr(imagecodecs, "tiff_decode", counting)
    return calls


def test_libtiff_decodes_the_real_tiffs_bit_exactly_as_tifffile(real_fixtures, libtiff_calls):
    paths = sorted(real_fixtures.glob("*/images/*.tif*"))
    for path in paths:
        data = path.read_bytes()
        assert np.array_equal(decode_tiff(data), tifffile.imread(io.BytesIO(data))), path.name
    assert len(libtiff_calls) == len(paths)  # every Phenix LZW page took the fast path


@pytest.mark.parametrize("compression", [None, "lzw", "zlib", "packbits"])
@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int16", "float32"])
def test_pages_libtiff_takes_and_the_page_asked_for(compression, dtype, libtiff_calls):
    rng = np.random.default_rng(3)
    pages = [(rng.normal(100, 20, (37, 53))).astype(dtype) for _ in range(3)]
    sink = io.BytesIO()
    with tifffile.TiffWriter(sink) as writer:
        for page in pages:
            writer.write(page, compression=compression, predictor=compression == "zlib")
    data = sink.getvalue()
    for index, page in enumerate(pages):
        expected = None if dtype != "float32" else "float32"
        assert np.array_equal(decode_tiff(data, page=index, expected_dtype=expected), page)
    assert libtiff_calls == [0, 1, 2]


def test_pages_libtiff_does_not_take_go_to_tifffile(libtiff_calls):
    rgb = np.random.default_rng(4).integers(0, 255, (20, 30, 3), dtype=np.uint8)
    grey = _tiff(np.arange(600, dtype=np.uint8).reshape(20, 30) % 7, None)
    with pytest.raises(ImageDecodeError, match="2-D page"):
        decode_tiff(_tiff(rgb, "zlib"))  # refused from the header, as before
    tiled = io.BytesIO()
    tifffile.imwrite(tiled, np.ones((64, 64), np.uint16), tile=(32, 32), compression="zstd")
    assert decode_tiff(tiled.getvalue()).sum() == 64 * 64
    assert decode_tiff(grey).shape == (20, 30)
    assert libtiff_calls == [0]  # only the plain grey page; zstd tiles went to tifffile


def test_bytes_libtiff_refuses_are_still_named_corrupt(real_fixtures, libtiff_calls):
    data = bytearray(sorted(real_fixtures.glob("phenix_site_v1/images/*.tiff"))[0].read_bytes())
    data[2000:2200] = bytes(200)  # inside the LZW strip
    error = _rejected(bytes(data))
    assert error.kind == "corrupt" and len(libtiff_calls) == 1
