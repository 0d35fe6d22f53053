"""Reading codec-encoded sites: lake.site, the shuffled batch iterator, SiteDataset (no torch),
older lakes whose rows hold raw bytes, and readers that do not select the codec column."""

from __future__ import annotations

import io
import multiprocessing
import pickle
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import tifffile

from imaging_assets.core.lance_tables import ensure_dataset
from imaging_assets.core.objects import FetchedObject
from imaging_assets.demo.gallery.cells import draw_channel, make_layout
from imaging_assets.jump.images import (
    contact_sheet,
    process_sites,
    site_array,
    site_tasks_from_table,
)
from imaging_assets.jump.schemas import ZSTD_LEVEL_1, site_images_schema
from imaging_assets.processing import apply_recipe, center_crop, get_recipe
from imaging_assets.read import SiteDataset, open_lake
from imaging_assets_tests.lakes import write_plate

CHANNELS = ["DNA", "AGP", "Mito"]
SITES = 9
RECIPE = {"crop": 96}


def _images(folder: Path) -> list[dict]:
    rows = []
    for n in range(SITES):
        rng = np.random.default_rng(n)
        layout = make_layout(rng, 128, 6)
        for channel in CHANNELS:
            path = folder / f"{n}_{channel}.tiff"
            sink = io.BytesIO()
            tifffile.imwrite(sink, draw_channel(layout, channel, rng), compression="lzw")
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
                    "control_role": "negcon" if n % 3 == 0 else "trt",
                    "plate_type": "COMPOUND",
                }
            )
    return rows


def _write(
    root: Path,
    rows: list[dict],
    codec: str | None,
    schema: pa.Schema | None = None,
    run_id: str = "r1",
):
    tasks = site_tasks_from_table(pa.Table.from_pylist(rows), CHANNELS)
    result = process_sites(
        tasks,
        lambda uri: FetchedObject(uri, Path(uri).read_bytes()),
        recipe=get_recipe("robust_8bit_crop", RECIPE),
        channels=CHANNELS,
        workers=2,
        run_id=run_id,
        codec=codec,
    )
    batches = result.batches()
    if schema is not None:  # an older writer: only its columns
        batches = (
            pa.RecordBatch.from_arrays([b.column(n) for n in schema.names], schema=schema)
            for b in batches
        )
    write_plate(root, "site_images", "s__P", schema or site_images_schema(CHANNELS), batches)


def _expected(folder: Path, n: int) -> np.ndarray:
    recipe = get_recipe("robust_8bit_crop", RECIPE)
    return np.stack(
        [apply_recipe(recipe, tifffile.imread(folder / f"{n}_{c}.tiff")).array for c in CHANNELS]
    )


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    images = tmp_path_factory.mktemp("images")
    root = tmp_path_factory.mktemp("lake")
    _write(root, _images(images), codec=None)  # the recipe's default: pzstd
    return open_lake(str(root)), images


def test_rows_carry_their_codec_and_decode_to_the_recipe_output(written):
    lake, images = written
    table = lake.site_images(columns=["site_key", "dna_codec", "agp_codec", "mito_codec"])
    assert set(table["dna_codec"].to_pylist()) == {"pzstd/1"}
    site = lake.site("s__P__A01__4")
    assert site.provenance["DNA"]["codec"] == "pzstd/1"
    assert np.array_equal(site.array, _expected(images, 4))
    assert site.array.shape == (3, 96, 96) and site.array.dtype == np.uint8
    stored = lake.dataset("site_images").to_table(columns=["dna_pixels"])["dna_pixels"]
    assert max(len(v.as_py()) for v in stored) < 96 * 96  # compressed by the codec itself


def test_readers_that_do_not_select_the_codec_column_still_decode(written):
    lake, images = written
    # as cell_crops reads site_images: pixels, shape, dtype (no codec column)
    row = (
        lake.dataset("site_images")
        .to_table(columns=["site_key", "agp_pixels", "agp_shape", "agp_dtype"], filter="site = '2'")
        .to_pylist()[0]
    )
    assert np.array_equal(site_array(row, "AGP"), _expected(images, 2)[1])
    png = contact_sheet(lake.dataset("site_images").to_table(limit=2), CHANNELS, n_sites=2)
    assert png.startswith(b"\x89PNG")


def test_shuffled_batches_cover_every_site_once_in_a_seeded_order(written):
    lake, images = written
    ordered = list(lake.iter_batches(batch_size=4))
    shuffled = list(lake.iter_batches(batch_size=4, shuffle=True, seed=7))
    again = list(lake.iter_batches(batch_size=4, shuffle=True, seed=7))
    keys = [k for t, _ in shuffled for k in t["site_key"].to_pylist()]
    assert keys == [k for t, _ in again for k in t["site_key"].to_pylist()]
    assert sorted(keys) == sorted(k for t, _ in ordered for k in t["site_key"].to_pylist())
    assert keys != sorted(keys) and len(keys) == SITES
    assert [a.shape for _, a in shuffled] == [(4, 3, 96, 96), (4, 3, 96, 96), (1, 3, 96, 96)]
    for table, arrays in shuffled:
        for key, array in zip(table["site_key"].to_pylist(), arrays, strict=True):
            assert np.array_equal(array, _expected(images, int(key.rsplit("__", 1)[1])))
    negcon = list(lake.iter_batches("control_role = 'negcon'", batch_size=8, shuffle=True))
    assert sorted(negcon[0][0]["site"].to_pylist()) == ["0", "3", "6"]


def test_site_dataset_is_map_style_and_pickles_for_worker_processes(written):
    lake, images = written
    sites = SiteDataset(lake.root, filter="control_role = 'trt'", channels=["Mito", "DNA"])
    assert len(sites) == 6
    array, key = sites[0]
    n = int(key.rsplit("__", 1)[1])
    assert array.shape == (2, 96, 96)
    assert np.array_equal(array, _expected(images, n)[[2, 0]])
    batch = sites.__getitems__([5, 1, 5])  # DataLoader's batched fetch, repeats allowed
    assert [k for _, k in batch] == [sites.site_keys[5], sites.site_keys[1], sites.site_keys[5]]
    assert sites[-1][1] == sites.site_keys[5]
    with pytest.raises(IndexError):
        sites[6]
    clone = pickle.loads(pickle.dumps(sites))
    assert clone._dataset is None and clone.version == sites.version
    assert np.array_equal(clone[3][0], sites[3][0])
    scaled = SiteDataset(lake.root, transform=lambda a: a.astype(np.float32) / 255)
    assert scaled[0][0].dtype == np.float32 and len(scaled) == SITES


def _keys_of(dataset: SiteDataset, indices: list[int]) -> list[str]:
    return [key for _, key in dataset.__getitems__(indices)]


def test_site_dataset_in_two_worker_processes(written):
    lake, _ = written
    sites = SiteDataset(lake.root)
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        keys = pool.starmap(_keys_of, [(sites, [0, 1, 2, 3]), (sites, [4, 5, 6, 7, 8])])
    assert [k for part in keys for k in part] == sites.site_keys


def test_a_lake_written_before_codecs_reads_as_raw_and_gains_the_column(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    rows = _images(images)
    # as datasets were created before codecs: no codec column, the pixels under column zstd
    old = pa.schema(
        [
            f.with_metadata(ZSTD_LEVEL_1) if f.name.endswith("_pixels") else f
            for f in site_images_schema(CHANNELS)
            if not f.name.endswith("_codec")
        ],
        site_images_schema(CHANNELS).metadata,
    )
    ensure_dataset(str(tmp_path / "site_images.lance"), old)
    _write(tmp_path, rows, codec="raw", schema=old)
    lake = open_lake(str(tmp_path))
    assert "dna_codec" not in lake.dataset("site_images").schema.names
    assert np.array_equal(lake.site("s__P__A00__3").array, _expected(images, 3))
    assert np.array_equal(
        next(iter(SiteDataset(lake.root).__getitems__([0])))[0].shape, (3, 96, 96)
    )
    _write(tmp_path, rows[: 3 * len(CHANNELS)], codec="pzstd")  # a newer writer, sites 0-2
    codecs = lake.site_images(columns=["site_key", "dna_codec"]).to_pylist()
    assert {r["dna_codec"] for r in codecs} == {"pzstd/1"}  # the plate was replaced
    assert np.array_equal(lake.site("s__P__A02__2").array, _expected(images, 2))
    raw = center_crop(tifffile.imread(images / "2_DNA.tiff"), 96)
    assert lake.site("s__P__A02__2").to_raw()[0].shape == raw.shape
    assert lake.dataset("site_images").schema.field("dna_pixels").metadata  # kept as it was


def test_a_new_lake_leaves_compression_to_the_codec(written):
    lake, _ = written
    assert not lake.dataset("site_images").schema.field("dna_pixels").metadata


def test_provenance_comes_from_the_version_the_pixels_came_from(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    rows = _images(images)
    _write(tmp_path, rows, codec=None, run_id="first")
    lake = open_lake(str(tmp_path))
    site = lake.site("s__P__A01__4")  # pixels now, provenance on first use
    _write(tmp_path, rows, codec="raw", run_id="second")  # the plate is rewritten meanwhile
    assert site.provenance["dagster_run_id"] == "first"
    assert site.provenance["DNA"]["codec"] == "pzstd/1"
    assert site.provenance["recipe"]["params"]["crop"] == 96
    again = lake.site("s__P__A01__4")  # the same Lake sees the new version
    assert again.provenance["dagster_run_id"] == "second"
    assert again.provenance["DNA"]["codec"] == "raw/1"
    assert np.array_equal(again.array, site.array)
    assert "s__P__A01__4" in repr(site) and "(3, 96, 96) uint8" in repr(site)
    with pytest.raises(KeyError, match="nope"):
        lake.site("nope")


# -- image QC: flagged sites stay out of training reads unless asked ---------------------------

FLAGGED = ("s__P__A01__4", "s__P__A02__8")


def _judge(root: Path, flagged: tuple[str, ...] = FLAGGED) -> None:
    """Write site_qc for the lake's plate as the site_images asset does, flagging `flagged`."""
    from imaging_assets.core.lake import Lake
    from imaging_assets.core.partition_write import write_partition
    from imaging_assets.jump.quality import (
        SITE_COLUMNS,
        PlateFlags,
        site_qc_partition,
        site_qc_schema,
        site_qc_table,
    )

    sites = open_lake(str(root)).site_images(columns=list(SITE_COLUMNS)).sort_by("site_key")
    keys = sites["site_key"].to_pylist()
    reasons = [
        ["DNA PowerLogLogSlope below plate median - 3 MAD"] if k in flagged else [] for k in keys
    ]
    flags = PlateFlags(keys, reasons, {}, len(keys))
    table = site_qc_table(sites, flags, site_images_version=1, run_id="qc-run")
    write_partition(
        Lake.open(root),
        site_qc_partition("s__P"),
        site_qc_schema(),
        table.to_batches(),
        run_id="qc-run",
    )


@pytest.fixture(scope="module")
def judged(tmp_path_factory):
    images = tmp_path_factory.mktemp("images")
    root = tmp_path_factory.mktemp("judged")
    _write(root, _images(images), codec=None)
    _judge(root)
    return open_lake(str(root)), images


def test_site_images_filters_on_the_qc_verdict_and_adds_it(judged):
    lake, _ = judged
    every = lake.site_images(columns=["site_key", "well"])
    assert every.column_names == ["site_key", "well"] and every.num_rows == SITES  # as before
    failing = lake.site_images(qc="fail", columns=["well", "qc_reasons"])
    assert failing.column_names == ["well", "qc_reasons", "qc_pass"]
    assert failing.num_rows == 2 and failing["qc_pass"].to_pylist() == [False, False]
    assert failing["qc_reasons"].to_pylist()[0] == [
        "DNA PowerLogLogSlope below plate median - 3 MAD"
    ]
    passing = lake.site_images(qc="pass")
    assert sorted(passing["site_key"].to_pylist()) == sorted(
        set(every["site_key"].to_pylist()) - set(FLAGGED)
    )
    assert set(passing["qc_pass"].to_pylist()) == {True}
    assert "dna_pixels" not in passing.column_names and "dna_raw_md5" in passing.column_names
    assert lake.site_images(qc="all").num_rows == SITES
    assert lake.site_images("control_role = 'trt'", qc="fail").num_rows == 2
    assert set(lake.flagged_site_keys().to_pylist()) == set(FLAGGED)
    with pytest.raises(ValueError, match="qc must be"):
        lake.site_images(qc="flagged")


def test_training_batches_leave_flagged_sites_out_unless_asked(judged):
    lake, images = judged

    def keys(**options) -> list[str]:
        return [
            k
            for t, _ in lake.iter_batches(batch_size=4, **options)
            for k in t["site_key"].to_pylist()
        ]

    kept = keys()
    assert len(kept) == SITES - 2 and not set(kept) & set(FLAGGED)
    assert kept == sorted(kept)  # in storage order, as without QC
    shuffled = keys(shuffle=True, seed=3)
    assert sorted(shuffled) == sorted(kept) and shuffled != kept
    assert sorted(keys(qc="fail")) == sorted(FLAGGED)
    assert len(keys(qc="all")) == SITES
    for table, arrays in lake.iter_batches(batch_size=4, qc="fail"):
        for key, array in zip(table["site_key"].to_pylist(), arrays, strict=True):
            assert np.array_equal(array, _expected(images, int(key.rsplit("__", 1)[1])))


def test_site_dataset_leaves_flagged_sites_out_unless_asked(judged):
    lake, images = judged
    sites = SiteDataset(lake.root)
    assert len(sites) == SITES - 2 and not set(sites.site_keys) & set(FLAGGED)
    array, key = sites[0]
    assert np.array_equal(array, _expected(images, int(key.rsplit("__", 1)[1])))
    assert sorted(SiteDataset(lake.root, qc="fail").site_keys) == sorted(FLAGGED)
    assert len(SiteDataset(lake.root, qc="all")) == SITES
    trt = SiteDataset(lake.root, filter="control_role = 'trt'")
    assert len(trt) == 4  # 6 treatment sites, 2 of them flagged
    clone = pickle.loads(pickle.dumps(trt))
    assert clone.site_keys == trt.site_keys and np.array_equal(clone[1][0], trt[1][0])


def test_a_lake_without_site_qc_reads_every_site(written):
    lake, _ = written
    assert lake.site_qc().num_rows == 0
    assert lake.site_images(qc="pass").num_rows == SITES
    assert lake.site_images(qc="fail").num_rows == 0
    assert len(SiteDataset(lake.root)) == SITES
