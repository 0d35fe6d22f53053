from imaging_assets.jump.backfill import plates_to_run


def test_missing_before_stale_and_in_flight_skipped():
    chosen, counts = plates_to_run(
        ["s__c", "s__a", "s__b", "s__d"],
        {"s__a": "v1", "s__b": "v2", "s__d": None},
        current_code_version="v2",
        in_flight={"s__c"},
        limit=10,
    )
    assert chosen == ["s__d", "s__a"]
    assert counts == {"missing": 1, "stale": 1, "in_flight": 1, "current": 1}


def test_limit_bounds_a_tick():
    keys = [f"s__p{i:03}" for i in range(50)]
    chosen, counts = plates_to_run(keys, {}, "v", set(), limit=7)
    assert chosen == keys[:7]
    assert counts["missing"] == 50
