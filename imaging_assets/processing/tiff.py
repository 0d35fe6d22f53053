"""Decoding raw TIFF bytes, with errors that say what kind of failure it was."""

from __future__ import annotations

import io

import numpy as np
import tifffile


class ImageDecodeError(ValueError):
    """A raw image that cannot be used. kind: "empty", "corrupt" or "page"."""

    def __init__(self, source: str, kind: str, message: str) -> None:
        self.source = source
        self.kind = kind
        super().__init__(f"{source}: {kind}: {message}")


def decode_tiff(data: bytes, *, page: int = 0, source: str = "<bytes>") -> np.ndarray:
    """The pixels of one page (default the first) of a TIFF held in memory."""
    if not data:
        raise ImageDecodeError(source, "empty", "zero bytes")
    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tiff:
            pages = len(tiff.pages)
            if pages == 0:
                raise ImageDecodeError(
                    source, "corrupt", "no image pages (truncated or not a TIFF)"
                )
            if page >= pages or page < 0:
                raise ImageDecodeError(source, "page", f"page {page} requested, file has {pages}")
            image = tiff.pages[page].asarray()
    except ImageDecodeError:
        raise
    except Exception as error:  # tifffile raises many types for bad bytes
        raise ImageDecodeError(source, "corrupt", f"{type(error).__name__}: {error}") from error
    if image.ndim != 2:
        image = np.squeeze(image)
        if image.ndim != 2:
            raise ImageDecodeError(
                source, "corrupt", f"expected a 2-D page, got shape {image.shape}"
            )
    return image
