"""Provenance: CellProfiler's image digests against md5 of the real raw TIFFs."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from imaging_assets.core.errors import InputError
from imaging_assets.jump.profiles import (
    digest_summary,
    image_digests,
    image_digests_from_merged,
    verify_digests,
)

CHANNEL_FILES = {"AGP": "ch2", "RNA": "ch3", "DNA": "ch5"}


def _site_images_from_tiffs(images_dir, site_key: str) -> pa.Table:
    row = {"site_key": site_key}
    for channel, number in CHANNEL_FILES.items():
        data = (images_dir / f"r01c01f01p01-{number}sk1fk1fl1.tiff").read_bytes()
        row[f"{channel.lower()}_raw_md5"] = hashlib.md5(data).hexdigest()
    return pa.Table.from_pylist([row])


def test_real_digests_verified_altered_copy_contradicted_absent_unknown(real_fixtures, tmp_path):
    fixture = real_fixtures / "cpg0000_BR00117006"
    merged = pq.read_table(fixture / "BR00117006_shrunken.parquet")
    digests = image_digests_from_merged(merged, source="source_4")
    assert digests["site_key"].to_pylist() == ["source_4__BR00117006__A01__1"]
    key = digests["site_key"][0].as_py()

    verified = verify_digests(digests, _site_images_from_tiffs(fixture / "images", key))
    assert verified["status"].to_pylist() == ["verified"]
    assert sorted(verified["channels_checked"][0].as_py().split(",")) == ["AGP", "DNA", "RNA"]
    assert digest_summary(verified) == {"verified": 1, "contradicted": 0, "unknown": 0}

    altered = tmp_path / "images"
    shutil.copytree(fixture / "images", altered)
    tiff = altered / "r01c01f01p01-ch5sk1fk1fl1.tiff"
    data = bytearray(tiff.read_bytes())
    data[-1] ^= 0xFF
    tiff.write_bytes(bytes(data))
    contradicted = verify_digests(digests, _site_images_from_tiffs(altered, key))
    assert contradicted["status"].to_pylist() == ["contradicted"]
    assert contradicted["mismatched_channels"][0].as_py() == "DNA"

    absent = verify_digests(digests, pa.table({"site_key": pa.array([], pa.string())}))
    assert absent["status"].to_pylist() == ["unknown"]
    assert absent.column_names == [
        "site_key",
        "status",
        "channels_checked",
        "mismatched_channels",
        "detail",
    ]


def test_backend_without_digests_is_unknown(real_fixtures):
    path = real_fixtures / "cpg0016_BR00126114" / "test_BR00126114.sqlite"
    digests = image_digests(path, source="source_4")
    assert digests.column_names == ["site_key"]
    assert digests["site_key"].to_pylist() == [
        "source_4__BR00126114__A01__1",
        "source_4__BR00126114__A01__2",
    ]
    site_images = pa.table({"site_key": digests["site_key"], "dna_raw_md5": ["a", "b"]})
    result = verify_digests(digests, site_images)
    assert digest_summary(result) == {"verified": 0, "contradicted": 0, "unknown": 2}


def test_backend_digests_missing_values_are_null(tmp_path):
    path = tmp_path / "b.sqlite"
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE Image (ImageNumber, Metadata_Plate, Metadata_Well, Metadata_Site, "
        "Image_MD5Digest_OrigDNA, Image_MD5Digest_OrigRNA)"
    )
    db.execute("CREATE TABLE Nuclei (ImageNumber, ObjectNumber)")
    db.execute("INSERT INTO Image VALUES (1, 'P', 'B02', 3, 'ABC', NULL)")
    db.commit()
    db.close()
    digests = image_digests(path, source="s")
    assert digests.to_pylist() == [
        {
            "site_key": "s__P__B02__3",
            "Image_MD5Digest_OrigDNA": "ABC",
            "Image_MD5Digest_OrigRNA": None,
        }
    ]
    site_images = pa.table(
        {"site_key": ["s__P__B02__3"], "dna_raw_md5": ["abc"], "rna_raw_md5": ["x"]}
    )
    result = verify_digests(digests, site_images).to_pylist()[0]
    assert result["status"] == "verified" and result["channels_checked"] == "DNA"


def test_merged_table_without_site_column_names_it():
    table = pa.table({"Metadata_Plate": ["P"], "Metadata_Well": ["A01"]})
    with pytest.raises(InputError, match="Metadata_Site"):
        image_digests_from_merged(table, source="s")
