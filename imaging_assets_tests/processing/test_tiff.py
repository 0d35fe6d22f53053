"""decode_tiff: header checks before any pixel is decoded, and error text without object bytes."""

from __future__ import annotations

import io
import time
import tracemalloc

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
