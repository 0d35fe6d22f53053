"""The sample gallery: faithful schemas, determinism, and real links between files."""

from __future__ import annotations

import gzip
import hashlib
import sqlite3

import numpy as np
import pytest
import tifffile

from imaging_assets.demo.gallery import PRESETS, generate_gallery
from imaging_assets.jump import layout
from imaging_assets.jump.load_data import normalize_load_data, resolve_uris
from imaging_assets.jump.metadata import FILE_NAMES, read_metadata_table


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return generate_gallery(tmp_path_factory.mktemp("tiny"), preset="tiny", seed=0, workers=2)


def _tree_digest(root) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _header(path) -> list[str]:
    data = path.read_bytes()
    text = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
    return text.decode().splitlines()[0].split(",")


def test_metadata_has_the_real_columns_in_order(tiny, real_fixtures):
    for name, file_name in FILE_NAMES.items():
        ours = tiny.metadata_root / file_name
        real = real_fixtures / "jump_metadata" / file_name
        if real.exists():
            assert _header(ours) == _header(real), name
        read_metadata_table(name, ours.read_bytes(), str(ours))  # and it parses strictly


def test_same_seed_same_bytes_other_seed_differs(tiny, tmp_path):
    again = generate_gallery(tmp_path / "again", preset="tiny", seed=0, workers=1)
    assert _tree_digest(again.root) == _tree_digest(tiny.root)
    other = generate_gallery(tmp_path / "other", preset="tiny", seed=1, workers=1)
    assert _tree_digest(other.root) != _tree_digest(tiny.root)


def test_every_load_data_uri_exists_and_decodes(tiny):
    for plate in tiny.plates:
        if "csv" in plate.load_data_formats:
            key, fmt = layout.load_data_csv_key(plate.source, plate.batch, plate.plate), "csv"
        else:
            key, fmt = layout.load_data_orig_key(plate.source, plate.batch, plate.plate), "parquet"
        path = tiny.source_root / key
        table = resolve_uris(
            normalize_load_data(path.read_bytes(), str(path), fmt), str(tiny.source_root)
        )
        assert table.num_rows == len(plate.wells) * plate.sites_per_well * len(plate.channels)
        for uri in table["uri"].to_pylist()[:12]:
            with tifffile.TiffFile(uri) as tiff:
                page = tiff.pages[0]
                assert page.compression == tifffile.COMPRESSION.LZW
                assert page.shape == (plate.image_size, plate.image_size)
                assert page.dtype == np.uint16


def test_digests_in_the_backend_are_the_md5_of_the_tiffs(tiny):
    plate = tiny.plates[0]
    db = sqlite3.connect(
        tiny.source_root / layout.backend_sqlite_key(plate.source, plate.batch, plate.plate)
    )
    rows = db.execute(
        "SELECT Image_PathName_OrigDNA, Image_FileName_OrigDNA, Image_MD5Digest_OrigDNA FROM Per_Image"
    ).fetchall()
    assert rows
    for folder, name, md5 in rows:
        key = folder.split("cpg0016-jump/", 1)[1] + "/" + name
        assert hashlib.md5((tiny.source_root / key).read_bytes()).hexdigest() == md5
    assert db.execute("SELECT count(*) FROM Per_Cytoplasm").fetchone()[0] > 0


def test_the_gallery_covers_what_the_pipeline_must_handle(tiny):
    plate_types = {p.plate_type for p in tiny.plates}
    assert {"COMPOUND", "ORF", "CRISPR", "TARGET2", "DMSO"} <= plate_types
    assert len({p.source for p in tiny.plates}) >= 2 and len({p.batch for p in tiny.plates}) >= 2
    crispr = next(p for p in tiny.plates if p.plate_type == "CRISPR")
    assert crispr.sites[0] == 0 and "Brightfield" in crispr.channels
    assert crispr.load_data_formats == ("parquet",)
    assert any(" " in p.folder for p in tiny.plates)
    assert any(not w.in_well_table for p in tiny.plates for w in p.wells)
    default = PRESETS["default"]
    imaged = [p for p in default.plates if p.imaged]
    assert len(imaged) >= 5 and all(len(p.wells) >= 8 for p in imaged)
    assert all(4 <= p.sites_per_well <= 9 for p in imaged)
    assert {p.image_size for p in imaged} == {1080, 970}
    assert any(not p.imaged for p in default.plates)


def test_defective_sites_are_blurred_or_saturated_and_nothing_else_changes(tiny, tmp_path):
    from imaging_assets.demo.gallery.generate import image_key
    from imaging_assets.jump.quality import measure_features

    assert tiny.defects == ()  # the tiny preset draws none unless asked
    seeded = generate_gallery(tmp_path / "seeded", preset="tiny", seed=0, workers=1, defects=True)
    assert _tree_digest(seeded.root) != _tree_digest(tiny.root)
    defects = seeded.defective_sites()
    assert sorted(defects.values()) == ["blur", "saturated AGP"]
    changed = set()
    for plate in tiny.plates:
        for well in plate.wells:
            for site in plate.sites:
                for channel in plate.channels:
                    key = image_key(plate, well.well, site, channel)
                    clean = (tiny.source_root / key).read_bytes()
                    if (seeded.source_root / key).read_bytes() != clean:
                        changed.add(
                            (f"{plate.source}__{plate.plate}__{well.well}__{site}", channel)
                        )
    blurred = next(k for k, v in defects.items() if v == "blur")
    saturated = next(k for k, v in defects.items() if v.startswith("saturated"))
    channels = tiny.plates[0].channels
    assert changed == {(blurred, c) for c in channels} | {(saturated, "AGP")}

    def image(gallery, site_key, channel):
        plate = next(p for p in gallery.plates if site_key.startswith(f"{p.source}__{p.plate}"))
        well, site = site_key.split("__")[2:]
        return tifffile.imread(gallery.source_root / image_key(plate, well, int(site), channel))

    slope = ["PowerLogLogSlope"]
    before = measure_features(image(tiny, blurred, "DNA"), slope)["PowerLogLogSlope"]
    after = measure_features(image(seeded, blurred, "DNA"), slope)["PowerLogLogSlope"]
    assert after < before - 0.3  # out of focus: the power spectrum falls off faster
    share = ["PercentMaximal"]
    assert measure_features(image(tiny, saturated, "AGP"), share)["PercentMaximal"] < 0.05
    assert measure_features(image(seeded, saturated, "AGP"), share)["PercentMaximal"] > 0.5


def test_the_default_and_qc_presets_carry_defects_on_one_plate_in_sampled_roles():
    from imaging_assets.jump.sampling import DEFAULT_SITES_PER_ROLE

    for name in ("default", "qc"):
        preset = PRESETS[name]
        assert preset.defects
        seeded = [p for p in preset.plates if p.defects]
        assert [p.plate for p in seeded] == ["BR00117035"]
        roles = {w.well: w.jcp2022 for w in seeded[0].wells}
        kinds = sorted(d.kind for d in seeded[0].defects)
        assert kinds == ["blur", "blur", "saturated"]
        for defect in seeded[0].defects:
            assert defect.site in seeded[0].sites and defect.well in roles
        # trt and poscon wells: the default sampling keeps every site of them (<= 6 and 4)
        assert seeded[0].sites_per_well <= min(
            DEFAULT_SITES_PER_ROLE["trt"], DEFAULT_SITES_PER_ROLE["poscon"]
        )
    assert not PRESETS["tiny"].defects
