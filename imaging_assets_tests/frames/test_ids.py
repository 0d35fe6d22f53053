from datetime import datetime

import pytest

from imaging_assets.core.errors import InputError
from imaging_assets.frames.ids import is_dataset_id, make_dataset_id, parse_dataset_id


def test_a_valid_id_is_parsed_into_project_time_and_serial():
    parsed = parse_dataset_id("ISP-2021-03-09-15-30-05-0042")
    assert parsed.project == "ISP"
    assert parsed.acquired_at == datetime(2021, 3, 9, 15, 30, 5)
    assert parsed.serial == 42
    assert str(parsed) == "ISP-2021-03-09-15-30-05-0042"


def test_projects_may_carry_digits_and_underscores():
    assert parse_dataset_id("Lab_2-2020-01-31-00-00-00-0001").project == "Lab_2"
    assert make_dataset_id("AB", datetime(2020, 1, 2, 3, 4, 5), 7) == "AB-2020-01-02-03-04-05-0007"


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("ISP-2021-03-09-15-30-00", "does not have the form"),
        ("ISP-2021-03-09-15-30-00-001", "serial '001' is not 4 digits"),
        ("ISP-2021-03-09-15-30-00-00a1", "serial '00a1' is not 4 digits"),
        ("ISP-2021-13-09-15-30-00-0001", "not a valid date and time"),
        ("ISP-2021-02-30-15-30-00-0001", "not a valid date and time"),
        ("ISP-2021-03-09-25-30-00-0001", "not a valid date and time"),
        ("1SP-2021-03-09-15-30-00-0001", "project '1SP' is not valid"),
        ("IS P-2021-03-09-15-30-00-0001", "project 'IS P' is not valid"),
        ("IS/P-2021-03-09-15-30-00-0001", "project 'IS/P' is not valid"),
        (" ISP-2021-03-09-15-30-00-0001", "surrounding spaces"),
        ("", "empty"),
    ],
)
def test_a_malformed_id_names_the_id_and_the_rule(text, rule):
    with pytest.raises(InputError) as error:
        parse_dataset_id(text, file="manifest.csv", column="dataset_id", row=3)
    message = str(error.value)
    assert rule in message
    assert "manifest.csv" in message and "row 3" in message and "dataset_id" in message
    if text.strip():
        assert text.strip() in message
    assert not is_dataset_id(text)
