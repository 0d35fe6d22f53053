"""Decoding raw TIFF bytes, with errors that say what kind of failure it was.

The page's declared shape and dtype are read from the TIFF header and checked (against what the
caller expects, or against a pixel limit) before a single pixel is decoded: a 2 MB deflate file can
declare 30000 x 30000 pixels, and decoding it first would cost gigabytes. Error messages name the
source and a fixed description; they never carry bytes of the object (tifffile's own messages can
echo header bytes, so only its exception class is kept). The BytesIO is closed explicitly:
tifffile's objects reference each other in a cycle, which otherwise keeps every decoded file's
bytes alive until the next full garbage collection (measured: peak RSS grew with the slices read).
"""

from __future__ import annotations

import io
import logging
import math
from dataclasses import dataclass

import imagecodecs
import numpy as np
import tifffile

DEFAULT_MAX_PIXELS = 64 * 1024 * 1024  # 64 Mpx: 128 MiB as uint16, far above any JUMP site
ACCEPTED_KINDS = "ui"  # integer pixels; floats only when the caller expects them explicitly

# tifffile logs warnings about malformed files that can quote header values; keep them out of
# run logs (every problem still surfaces as an ImageDecodeError).
logging.getLogger("tifffile").setLevel(logging.ERROR)


class ImageDecodeError(ValueError):
    """A raw image that cannot be used.

    kind: "empty", "corrupt", "page", "wrong_size", "wrong_dtype" or "non_finite". The message is
    "<source>: <kind>: <description>" and never includes content of the object.
    """

    def __init__(self, source: str, kind: str, message: str) -> None:
        self.source = source
        self.kind = kind
        super().__init__(f"{source}: {kind}: {message}")


@dataclass(frozen=True)
class TiffHeader:
    """What a page declares, read without decoding: its 2-D shape, dtype and the file's pages."""

    shape: tuple[int, ...]
    dtype: np.dtype
    pages: int

    @property
    def pixels(self) -> int:
        return math.prod(self.shape)


def _squeezed(shape: tuple[int, ...]) -> tuple[int, ...]:
    kept = tuple(int(n) for n in shape if n != 1)
    return kept if len(kept) >= 2 else tuple(int(n) for n in shape[-2:])


def _corrupt(source: str, error: BaseException) -> ImageDecodeError:
    return ImageDecodeError(source, "corrupt", f"not a readable TIFF ({type(error).__name__})")


def _header(tiff: tifffile.TiffFile, page: int, source: str) -> TiffHeader:
    pages = len(tiff.pages)
    if pages == 0:
        raise ImageDecodeError(source, "corrupt", "no image pages (truncated or not a TIFF)")
    if page >= pages or page < 0:
        raise ImageDecodeError(source, "page", f"page {page} requested, file has {pages}")
    tiff_page = tiff.pages[page]
    return TiffHeader(_squeezed(tuple(tiff_page.shape)), np.dtype(tiff_page.dtype), pages)


def read_tiff_header(data: bytes, *, page: int = 0, source: str = "<bytes>") -> TiffHeader:
    """The declared shape (ones squeezed out) and dtype of one page, without decoding pixels."""
    if not data:
        raise ImageDecodeError(source, "empty", "zero bytes")
    try:
        with io.BytesIO(data) as buffer, tifffile.TiffFile(buffer) as tiff:
            return _header(tiff, page, source)
    except ImageDecodeError:
        raise
    except Exception as error:  # tifffile raises many types for bad bytes
        raise _corrupt(source, error) from error


def dtype_accepted(dtype: np.dtype, expected_dtype: str | np.dtype | None) -> bool:
    """Whether pixels of `dtype` may be used: exactly the expected dtype when one is given,
    otherwise any integer dtype (floats, bool, complex are refused)."""
    if expected_dtype is not None:
        return np.dtype(dtype) == np.dtype(expected_dtype)
    return np.dtype(dtype).kind in ACCEPTED_KINDS


def check_header(
    header: TiffHeader,
    source: str,
    *,
    expected_shape: tuple[int, ...] | None = None,
    expected_dtype: str | np.dtype | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> None:
    """Raise wrong_size / wrong_dtype / corrupt when the declared page is not what is wanted."""
    if len(header.shape) != 2:
        raise ImageDecodeError(source, "corrupt", f"expected a 2-D page, got shape {header.shape}")
    if expected_shape is not None and header.shape != tuple(expected_shape):
        raise ImageDecodeError(
            source,
            "wrong_size",
            f"declared shape {header.shape}, expected {tuple(expected_shape)}",
        )
    if max_pixels is not None and header.pixels > max_pixels:
        raise ImageDecodeError(
            source,
            "wrong_size",
            f"declared shape {header.shape} ({header.pixels} px) exceeds the limit of "
            f"{max_pixels} px",
        )
    if not dtype_accepted(header.dtype, expected_dtype):
        wanted = (
            str(np.dtype(expected_dtype))
            if expected_dtype is not None
            else "an integer dtype (configure expected_dtype to accept floats)"
        )
        raise ImageDecodeError(
            source, "wrong_dtype", f"declared dtype {header.dtype}, expected {wanted}"
        )


# Pages libtiff decodes exactly as tifffile does: one sample per pixel, grey, plain byte order of
# bits, compressed (or not) with a codec libtiff always has. JUMP's Phenix and ImageXpress TIFFs are
# all of this kind; anything else (tiles of several samples, palettes, ImageJ hyperstacks, ...)
# goes to tifffile.
_LIBTIFF_COMPRESSIONS = {1, 5, 8, 32773, 32946}  # none, LZW, Adobe deflate, PackBits, deflate
_LIBTIFF_PHOTOMETRIC = {1}  # min-is-black


def _libtiff_can_decode(tiff_page, header: TiffHeader) -> bool:
    return (
        int(tiff_page.compression) in _LIBTIFF_COMPRESSIONS
        and int(tiff_page.photometric) in _LIBTIFF_PHOTOMETRIC
        and tiff_page.samplesperpixel == 1
        and int(tiff_page.fillorder) == 1
        and len(tuple(tiff_page.shape)) == 2
        and tuple(tiff_page.shape) == header.shape
        and header.dtype.kind in "uif"
    )


def _decode_page(data: bytes, tiff_page, page: int, header: TiffHeader) -> np.ndarray:
    """The page's pixels: by libtiff when the page is of a kind it decodes exactly as tifffile
    does (measured ~40% less CPU on the real Phenix LZW TIFFs: 6.8 vs 11.3 ms), otherwise, or
    whenever libtiff refuses the bytes, by tifffile. libtiff decodes into an array of the shape
    and dtype tifffile read from the header and already checked: it cannot allocate more."""
    if _libtiff_can_decode(tiff_page, header):
        try:
            out = np.empty(header.shape, dtype=header.dtype)
            return imagecodecs.tiff_decode(data, index=page, out=out)
        except Exception:  # libtiff's verdict is not final: tifffile decodes or names the fault
            pass
    return tiff_page.asarray()


def decode_tiff(
    data: bytes,
    *,
    page: int = 0,
    source: str = "<bytes>",
    expected_shape: tuple[int, ...] | None = None,
    expected_dtype: str | np.dtype | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> np.ndarray:
    """The pixels of one page (default the first) of a TIFF held in memory, as a 2-D array.

    The header is checked first (see check_header), so memory is bounded by the largest image
    accepted. Float pixels are refused unless `expected_dtype` is a float dtype, and then must be
    finite (kind "non_finite" otherwise).
    """
    if not data:
        raise ImageDecodeError(source, "empty", "zero bytes")
    try:
        with io.BytesIO(data) as buffer, tifffile.TiffFile(buffer) as tiff:
            header = _header(tiff, page, source)
            check_header(
                header,
                source,
                expected_shape=expected_shape,
                expected_dtype=expected_dtype,
                max_pixels=max_pixels,
            )
            image = _decode_page(data, tiff.pages[page], page, header)
    except ImageDecodeError:
        raise
    except Exception as error:  # tifffile raises many types for bad bytes
        raise _corrupt(source, error) from error
    if image.size != header.pixels or image.dtype != header.dtype:
        raise ImageDecodeError(
            source,
            "corrupt",
            f"decoded {image.shape} {image.dtype}, header declared {header.shape} {header.dtype}",
        )
    image = image.reshape(header.shape)
    if image.dtype.kind in "fc" and not np.isfinite(image).all():
        raise ImageDecodeError(source, "non_finite", "NaN or infinite pixel values")
    return image
