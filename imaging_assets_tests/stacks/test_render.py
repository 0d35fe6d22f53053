"""Projections worth opening: the kind that shows the specimen, a robust stretch, a readable size,
and the skeleton drawn where the SWC says."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pytest
import tifffile
from PIL import Image

from imaging_assets.demo.gallery.stacks import generate_stacks
from imaging_assets.stacks.projection import Projection, reduce_blocks
from imaging_assets.stacks.render import EDGE, GREYS, SOMA, render, stretch
from imaging_assets.stacks.swc import NODE_SCHEMA


def _indices(png: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(png))
    assert image.mode == "P"
    return np.asarray(image)


def _nodes(rows: list[tuple]) -> pa.Table:
    """SWC rows (n, type, x, y, radius, parent) as the skeleton table's columns."""
    n, kind, x, y, r, parent = zip(*rows, strict=True)
    columns = {"line": range(1, len(n) + 1), "n": n, "type": kind, "x": x, "y": y}
    columns |= {"z": [0.0] * len(n), "radius": r, "parent": parent}
    return pa.table({f.name: pa.array(list(columns[f.name]), f.type) for f in NODE_SCHEMA})


def test_brightfield_stacks_get_the_minimum_projection(tmp_path):
    collection = generate_stacks(tmp_path / "collection")
    slices = [tifffile.imread(collection.slice_path("neuron_001", z)) for z in range(6)]
    projection = Projection(96, 128)
    for array in slices:
        projection.add(array)
    assert projection.kind == "min" and "brightfield" in projection.choice.reason
    np.testing.assert_array_equal(projection.array, np.min(slices, axis=0))

    # the same specimen inverted (bright neurites on a dark field): the maximum
    inverted = Projection(96, 128)
    for array in slices:
        inverted.add(65535 - array)
    assert inverted.kind == "max"
    np.testing.assert_array_equal(inverted.array, np.max([65535 - a for a in slices], axis=0))

    fixed = Projection(96, 128, kind="max")
    fixed.add(slices[0])
    assert fixed.kind == "max" and fixed.minimum is None
    with pytest.raises(ValueError, match="kind"):
        Projection(96, 128, kind="mean")


def test_blocks_keep_a_thin_dark_line():
    array = np.full((1024, 2048), 3000, np.uint16)
    array[500, :] = 100  # one row: a neurite thinner than a block
    projection = Projection(1024, 2048, max_side=512)
    projection.add(array)
    assert projection.factor == 4 and projection.array.shape == (256, 512)
    assert projection.kind == "min"  # a dark line on a bright field
    assert (projection.array[125] == 100).all() and (projection.array[124] == 3000).all()
    maximum = Projection(1024, 2048, max_side=512, kind="max")
    maximum.add(array)
    assert (maximum.array == 3000).all()  # what a max projection shows of it: nothing


def test_stretch_ignores_a_few_hot_pixels():
    array = np.full((100, 100), 1000, np.uint16)
    array[40:60, 40:60] = 500  # a dark object, 4 % of the pixels
    array[0, :3] = 65535  # three hot pixels
    grey = stretch(array)
    assert grey[50, 50] == 0 and grey[10, 10] == GREYS - 1  # min/max scaling would give ~2 and ~3


def test_a_small_projection_is_enlarged_to_be_read():
    picture = render(np.arange(96 * 128, dtype=np.uint16).reshape(96, 128), 1, (96, 128))
    assert (picture.width, picture.height, picture.scale) == (512, 384, 4.0)
    assert picture.nodes_drawn is None and picture.note == "no skeleton"
    indices = _indices(picture.png)
    assert indices.shape == (384, 512) and indices.max() < GREYS  # no overlay colours


def test_the_skeleton_is_drawn_where_the_swc_says_on_a_reduced_stack():
    # a 1000 x 600 stack reduced by 2 (max side 512): PNG pixel = (x + 0.5) / 2 - 0.5
    projection = np.full((300, 500), 3000, np.uint16)
    nodes = _nodes(
        [
            (1, 1, 400.0, 300.0, 12.0, -1),  # soma at PNG (199.75, 149.75)
            (2, 3, 800.0, 300.0, 1.0, 1),  # a horizontal edge to (399.75, 149.75)
            (3, 3, 400.0, 100.0, 1.0, 1),  # a vertical edge to (199.75, 49.75)
        ]
    )
    picture = render(projection, 2, (600, 1000), nodes)
    assert (picture.width, picture.height, picture.scale) == (500, 300, 0.5)
    assert picture.nodes_drawn == 3 and "3 nodes, 2 edges" in picture.note
    indices = _indices(picture.png)
    for x in (260, 300, 350, 395):  # along the horizontal edge, row 150 (149.75 rounded)
        assert indices[150, x] == EDGE, x
    for y in (55, 80, 120):  # along the vertical edge, column 200
        assert indices[y, 200] == EDGE, y
    assert indices[150, 194] == SOMA or indices[150, 193] == SOMA  # ring of radius 6 px
    assert indices[120, 250] < GREYS and indices[250, 200] < GREYS  # away from the skeleton
    assert np.count_nonzero(indices == EDGE) < 0.01 * indices.size


def test_swc_units_are_checked_against_the_stack():
    """An SWC traced on the stack at twice its resolution (2 SWC units per stack pixel): read as
    pixels, its nodes fall outside the stack and nothing is drawn; with the units, it lands."""
    projection = np.full((96, 128), 3000, np.uint16)
    nodes = _nodes([(1, 1, 80.0, 40.0, 4.0, -1), (2, 3, 200.0, 120.0, 2.0, 1)])
    wrong = render(projection, 1, (96, 128), nodes)
    assert wrong.nodes_drawn == 0 and "1 of its 2 nodes lie outside the 128x96 stack" in wrong.note
    assert _indices(wrong.png).max() < GREYS
    right = render(projection, 1, (96, 128), nodes, units_per_pixel=2.0)
    assert right.nodes_drawn == 2
    indices = _indices(right.png)
    # stack pixels (40, 20) -> (100, 120) -> PNG (161.5, 81.5) -> (401.5, 241.5) at scale 4
    for t in (0.25, 0.5, 0.75):
        x, y = 161.5 + t * 240, 81.5 + t * 160
        assert EDGE in indices[round(y) - 1 : round(y) + 2, round(x) - 1 : round(x) + 2], t


@pytest.mark.parametrize(("shape", "factor"), [((64, 64), 4), ((1000, 601), 3), ((7, 5), 2)])
def test_block_reduction_equals_the_block_min_and_max(shape, factor):
    array = np.random.default_rng(1).integers(0, 4000, shape, dtype=np.uint16)
    padded = np.pad(array, ((0, -shape[0] % factor), (0, -shape[1] % factor)), mode="edge")
    blocks = padded.reshape(padded.shape[0] // factor, factor, padded.shape[1] // factor, factor)
    np.testing.assert_array_equal(reduce_blocks(array, factor, "max"), blocks.max(axis=(1, 3)))
    np.testing.assert_array_equal(reduce_blocks(array, factor, "min"), blocks.min(axis=(1, 3)))
