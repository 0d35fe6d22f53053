"""The notebook read API on a real site_images dataset written by the pipeline."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import tifffile

from imaging_assets.core.objects import FetchedObject
from imaging_assets.jump.images import process_sites, site_tasks_from_table
from imaging_assets.jump.schemas import site_images_schema
from imaging_assets.processing import center_crop, get_recipe
from imaging_assets.read import open_lake
from imaging_assets_tests.lakes import write_plate

CHANNELS = ["DNA", "AGP"]


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    root = tmp_path_factory.mktemp("lake")
    images = tmp_path_factory.mktemp("images")
    rows = []
    for n in range(10):
        for c, channel in enumerate(CHANNELS):
            image = np.random.default_rng(n * 2 + c).integers(200, 9000, (80, 80), dtype=np.uint16)
            path = images / f"{n}_{channel}.tiff"
            sink = io.BytesIO()
            tifffile.imwrite(sink, image, compression="lzw")
            path.write_bytes(sink.getvalue())
            rows.append(
                {
                    "source": "s",
                    "batch": "b",
                    "plate": "P",
                    "well": f"A{n % 3:02d}",
                    "site": str(n),
                    "channel": channel,
                    "uri": str(path),
                    "illum_uri": None,
                    "site_key": f"s__P__A{n % 3:02d}__{n}",
                    "jcp2022": "J",
                    "control_role": "poscon" if n % 3 == 0 else "trt",
                    "plate_type": "COMPOUND",
                }
            )
    tasks = site_tasks_from_table(pa.Table.from_pylist(rows), CHANNELS)
    result = process_sites(
        tasks,
        lambda uri: FetchedObject(uri, Path(uri).read_bytes()),
        recipe=get_recipe("robust_8bit_crop", {"crop": 64}),
        channels=CHANNELS,
        workers=2,
        run_id="r1",
    )
    write_plate(root, "site_images", "s__P", site_images_schema(CHANNELS), result.batches())
    return open_lake(str(root)), images


def test_listing_has_no_pixels_and_filters(lake):
    lake, _ = lake
    table = lake.site_images("control_role = 'poscon'")
    assert table.num_rows == 4
    assert not [c for c in table.column_names if c.endswith("_pixels")]
    assert "dna_raw_md5" in table.column_names


def test_one_site_as_an_array_and_back_to_raw(lake):
    lake, images = lake
    site = lake.site("s__P__A01__4")
    assert site.array.shape == (2, 64, 64) and site.array.dtype == np.uint8
    assert site.channels == ("DNA", "AGP")
    raw = center_crop(tifffile.imread(images / "4_DNA.tiff"), 64).astype(np.float32)
    approx = site.to_raw()[0]
    low, high = site.provenance["DNA"]["low"], site.provenance["DNA"]["high"]
    inside = (raw > low) & (raw < high)
    step = (high - low) / 255
    assert np.all(np.abs(approx[inside] - raw[inside]) <= step + 1e-3)
    assert site.provenance["recipe"]["params"] == {"crop": 64, "percentile": 1.0}
    with pytest.raises(KeyError, match="nope"):
        lake.site("nope")


def test_batches_for_training(lake):
    lake, _ = lake
    batches = list(lake.iter_batches(batch_size=4))
    assert [arrays.shape for _, arrays in batches] == [
        (4, 2, 64, 64),
        (4, 2, 64, 64),
        (2, 2, 64, 64),
    ]
    keys = [k for table, _ in batches for k in table["site_key"].to_pylist()]
    assert len(set(keys)) == 10
