"""Discovery by delimiter listings, on a local store (the S3 sensor test covers S3)."""

from pathlib import Path

from imaging_assets.core.stores import LocalStore
from imaging_assets.jump import layout
from imaging_assets.jump.discovery import ScanCursor, scan_for_new_plates


def _land(root: Path, source: str, batch: str, plate: str, orig: bool = False) -> None:
    key = (
        layout.load_data_orig_key(source, batch, plate)
        if orig
        else layout.load_data_csv_key(source, batch, plate)
    )
    path = root / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")


def _scan(store, cursor, known, **kwargs):
    found, cursor = scan_for_new_plates(store, cursor, known, **kwargs)
    known.update(p.partition_key for p in found)
    return sorted(p.partition_key for p in found), cursor


def test_scan_finds_each_plate_once_and_follows_growing_batches(tmp_path):
    _land(tmp_path, "source_1", "b1", "P1")
    _land(tmp_path, "source_1", "b1", "P2")
    _land(tmp_path, "source_2", "b9", "Q1", orig=True)
    store = LocalStore(tmp_path)
    known: set[str] = set()
    found, cursor = _scan(store, ScanCursor(), known, max_new=10)
    assert found == ["source_1__P1", "source_1__P2", "source_2__Q1"]

    cursor = ScanCursor.from_json(cursor.to_json())  # a daemon restart keeps the cursor
    found, cursor = _scan(store, cursor, known, max_new=10)
    assert found == []

    _land(tmp_path, "source_1", "b1", "P3")  # late plate in a still-watched batch
    found, cursor = _scan(store, cursor, known, max_new=10)
    assert found == ["source_1__P3"]


def test_scan_caps_new_plates_and_resumes(tmp_path):
    for n in range(5):
        _land(tmp_path, "source_1", "b1", f"P{n}")
    store = LocalStore(tmp_path)
    known: set[str] = set()
    first, cursor = _scan(store, ScanCursor(), known, max_new=3)
    second, cursor = _scan(store, cursor, known, max_new=3)
    assert len(first) == 3 and len(second) == 2
    assert set(first) | set(second) == {f"source_1__P{n}" for n in range(5)}


def test_settled_batches_cost_no_plate_listings(tmp_path):
    for batch in ("b1", "b2", "b3"):
        _land(tmp_path, "source_1", batch, f"P_{batch}")
    store = LocalStore(tmp_path)
    known: set[str] = set()
    cursor = ScanCursor()
    for _ in range(5):  # enough ticks for every batch to settle
        _, cursor = _scan(store, cursor, known, max_new=10, watch_ticks=2)
    assert cursor.watched == {}
    before = store.request_count
    _, cursor = _scan(store, cursor, known, max_new=10, watch_ticks=2)
    assert store.request_count - before == 1 + 2  # sources, then batches in both formats


def test_a_folder_whose_name_cannot_be_a_key_is_skipped_not_fatal(tmp_path, caplog):
    _land(tmp_path, "source_1", "b1", "P1")
    _land(tmp_path, "source_1", "b1", "bad__name")
    found, _ = _scan(LocalStore(tmp_path), ScanCursor(), set(), max_new=10)
    assert found == ["source_1__P1"]
    assert "bad__name" in caplog.text and "'__'" in caplog.text
