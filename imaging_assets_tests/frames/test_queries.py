from datetime import date

import pytest

from imaging_assets.frames.queries import datasets_filter, frames_filter, indices, parse_selector


def test_dataset_filters_combine_every_criterion():
    assert datasets_filter() is None
    text = datasets_filter(
        project=["A", "B"],
        start="2024-01-02",
        end=date(2024, 1, 3),
        microscope="M'1",
        description="time lapse",
    )
    assert text == (
        "project IN ('A', 'B') AND acquired_at >= TIMESTAMP '2024-01-02 00:00:00' AND "
        "acquired_at <= TIMESTAMP '2024-01-03 23:59:59.999999' AND microscope = 'M''1' AND "
        "contains(description, 'time lapse')"
    )
    with pytest.raises(ValueError, match="not a date"):
        datasets_filter(start="yesterday")


def test_selectors_from_text_and_python():
    assert parse_selector("2") == [2]
    assert parse_selector("0,2") == [0, 2]
    assert parse_selector("4-7") == [4, 5, 6, 7]
    assert parse_selector("DAPI,1") == ["DAPI", 1]
    assert parse_selector("") is None
    with pytest.raises(ValueError, match="backwards"):
        parse_selector("7-4")
    assert indices(range(2, 4)) == [2, 3]
    assert indices(["GFP", 0], ["DAPI", "GFP"]) == [0, 1]
    with pytest.raises(ValueError, match="indices start at 0"):
        indices(-1, axis="z")
    with pytest.raises(ValueError, match="z='a': not an index"):
        indices("a", axis="z")


def test_frame_filters_use_equality_ranges_or_lists():
    assert frames_filter("D", c=[1], z=[2, 3, 4], t=[0, 5]) == (
        "dataset_id = 'D' AND c = 1 AND z BETWEEN 2 AND 4 AND t IN (0, 5)"
    )
    assert frames_filter("D") == "dataset_id = 'D'"
