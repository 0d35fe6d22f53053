"""Cell crops: centre rule, zero padding and border flags, shapes, schema."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from imaging_assets.jump.profiles import cell_crops_schema, crop_cells


def test_crops_are_centred_padded_and_flagged():
    image = np.arange(2 * 20 * 30, dtype=np.uint16).reshape(2, 20, 30)
    centers = np.array([[15.4, 10.7], [0.0, 0.0], [29.9, 19.9]])
    crops, touches = crop_cells(image, centers, size=6)
    assert crops.shape == (3, 2, 6, 6) and crops.dtype == np.uint16
    assert touches.tolist() == [False, True, True]
    assert np.array_equal(crops[0], image[:, 7:13, 12:18])  # floor(centre) at size // 2
    assert crops[1, :, :3, :].sum() == 0 and crops[1, :, :, :3].sum() == 0
    assert np.array_equal(crops[1, :, 3:, 3:], image[:, :3, :3])
    assert np.array_equal(crops[2, :, :4, :4], image[:, 16:20, 26:30])  # centre pixel (19, 29)
    assert crops[2, :, 4:, :].sum() == 0 and crops[2, :, :, 4:].sum() == 0
    odd, _ = crop_cells(image[0], centers[:1], size=5)  # (H, W) is one channel
    assert odd.shape == (1, 1, 5, 5) and odd[0, 0, 2, 2] == image[0, 10, 15]
    none, flags = crop_cells(image, np.zeros((0, 2)), size=6)
    assert none.shape == (0, 2, 6, 6) and flags.shape == (0,)


def test_crop_schema():
    schema = cell_crops_schema(["DNA", "AGP"], 96)
    assert schema.field("dna_crop").type == pa.large_binary()
    assert schema.field("agp_crop").metadata == {
        b"lance-encoding:compression": b"zstd",
        b"lance-encoding:compression-level": b"1",
    }
    for name in ("cell_id", "site_key", "object_number", "touches_border", "crop_shape"):
        assert name in schema.names
    assert {"site_images_version", "recipe_name"} <= set(schema.names)
    assert schema.metadata[b"imaging_assets:crop_size"] == b"96"
