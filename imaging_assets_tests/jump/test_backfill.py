"""Which plates a backfill tick runs: missing, stale, then failing ones after their back-off."""

import pytest

from imaging_assets.jump.backfill import Backoff, PlateHistory, needing_attention, plates_to_run

HOUR = 3600.0


def test_missing_before_stale_and_in_flight_skipped():
    chosen, counts = plates_to_run(
        ["s__c", "s__a", "s__b", "s__d"],
        {"s__a": "v1", "s__b": "v2", "s__d": None},
        current_code_version="v2",
        in_flight={"s__c"},
        limit=10,
    )
    assert chosen == ["s__d", "s__a"]
    assert counts["missing"] == 1 and counts["stale"] == 1
    assert counts["in_flight"] == 1 and counts["current"] == 1


def test_limit_bounds_a_tick():
    keys = [f"s__p{i:03}" for i in range(50)]
    chosen, counts = plates_to_run(keys, {}, "v", set(), limit=7)
    assert chosen == keys[:7]
    assert counts["missing"] == 50


def test_failing_plates_never_crowd_out_a_new_plate():
    """25 plates that always fail sort before the new one by name; with 20 runs a tick the new
    plate is still chosen first, and the failing ones wait out their back-off."""
    failing = [f"s__a{i:02}" for i in range(25)]
    history = {
        key: PlateHistory(3, last_failure_at=0.0, last_error="corrupt TIFF") for key in failing
    }
    chosen, counts = plates_to_run([*failing, "s__znew"], {}, "v", set(), 20, history, now=HOUR)
    assert chosen == ["s__znew"] and counts["backing_off"] == 25
    later = 4 * HOUR + 1  # 3 failures: 1 h * 2**2 = 4 h
    chosen, counts = plates_to_run([*failing, "s__znew"], {}, "v", set(), 20, history, now=later)
    assert chosen[0] == "s__znew" and len(chosen) == 20 and counts["retry_due"] == 25


def test_back_off_doubles_and_is_capped():
    backoff = Backoff(base_s=HOUR, cap_s=10 * HOUR)
    assert [backoff.wait_s(n) for n in range(6)] == [
        0,
        HOUR,
        2 * HOUR,
        4 * HOUR,
        8 * HOUR,
        10 * HOUR,
    ]


def test_retries_longest_waiting_first_and_attention_list():
    history = {
        "s__x": PlateHistory(1, last_failure_at=50.0, last_error="timeout"),
        "s__y": PlateHistory(5, last_failure_at=10.0, last_error="corrupt TIFF"),
    }
    chosen, _ = plates_to_run(["s__x", "s__y"], {}, "v", set(), 5, history, now=1e9)
    assert chosen == ["s__y", "s__x"]
    assert [key for key, _ in needing_attention(history)] == ["s__y"]


def test_plate_batches_keep_the_order_and_one_source_per_batch():
    from imaging_assets.jump.backfill import plate_batches

    keys = ["source_1__A", "source_2__X", "source_1__B", "source_1__C", "source_2__Y"]
    assert plate_batches(keys, 2) == [
        ["source_1__A", "source_1__B"],
        ["source_2__X", "source_2__Y"],
        ["source_1__C"],
    ]
    assert plate_batches([], 5) == []
    with pytest.raises(ValueError, match="at least 1, not 0"):
        plate_batches(keys, 0)
