"""The strict SWC parser on NeuroM's real SWC test files and on hand-made malformed ones."""

from __future__ import annotations

import pytest

from imaging_assets.core.errors import InputError
from imaging_assets.stacks.swc import SwcError, parse_swc


def _parse(folder, name):
    path = folder / "swc_neurom" / name
    return parse_swc(path.read_text(), str(path))


def _data_lines(folder, name) -> int:
    text = (folder / "swc_neurom" / name).read_text()
    return sum(1 for line in text.splitlines() if line.split("#", 1)[0].strip())


@pytest.mark.parametrize(
    "name", ["Neuron.swc", "simple.swc", "custom_type.swc", "undefined_type.swc"]
)
def test_valid_files_keep_exactly_the_files_rows(real_fixtures, name):
    table, stats = _parse(real_fixtures, name)
    assert table.num_rows == stats.nodes == _data_lines(real_fixtures, name)
    assert table.column_names == ["line", "n", "type", "x", "y", "z", "radius", "parent"]


def test_simple_swc_counts(real_fixtures):
    table, stats = _parse(real_fixtures, "simple.swc")
    assert stats.nodes == 9
    assert stats.roots == 1
    assert stats.branch_points == 3  # the soma (1) and nodes 3 and 7
    assert stats.tips == 4
    assert stats.types_seen == [1, 2, 3]
    assert stats.nonstandard_types == []
    assert stats.zero_radius_nodes == 4
    # edges 2-1 and 6-1 have length 0; 3-2: 5, 4-3: 5, 5-3: 6, 7-6: 4, 8-7: 6, 9-7: 5
    assert stats.cable_length == pytest.approx(31.0)
    assert table["n"].to_pylist() == list(range(1, 10))


def test_neuron_swc_has_847_nodes(real_fixtures):
    _, stats = _parse(real_fixtures, "Neuron.swc")
    assert stats.nodes == 847
    assert stats.roots == 1
    assert stats.cable_length > 0


def test_multi_root_and_custom_types_are_reported_not_rejected(real_fixtures):
    _, stats = _parse(real_fixtures, "Neuron_disconnected_components.swc")
    assert stats.roots == 5
    _, multi = _parse(real_fixtures, "multiple_somata.swc")
    assert multi.nodes == _data_lines(real_fixtures, "multiple_somata.swc")
    _, custom = _parse(real_fixtures, "custom_type.swc")
    assert custom.nonstandard_types


def test_disordered_file_accepted(real_fixtures):
    table, stats = _parse(real_fixtures, "sample_disordered.swc")
    assert stats.nodes == table.num_rows == _data_lines(real_fixtures, "sample_disordered.swc")
    assert table["n"].to_pylist()[0] == 0  # id 0 is a valid id


def test_children_before_parents_accepted_and_counted():
    text = "3 3 0 0 2 1 2\n2 3 0 0 1 1 1\n1 1 0 0 0 2 -1\n"
    table, stats = parse_swc(text, "reversed.swc")
    assert table["n"].to_pylist() == [3, 2, 1]  # file order kept
    assert stats.children_before_parents == 2
    assert stats.cable_length == pytest.approx(2.0)


def test_repeated_id_names_the_line(real_fixtures):
    with pytest.raises(SwcError) as caught:
        _parse(real_fixtures, "repeated_id.swc")
    message = str(caught.value)
    assert "repeated_id.swc" in message
    assert "repeated id 4" in message
    line = next(
        i
        for i, text in enumerate(
            (real_fixtures / "swc_neurom" / "repeated_id.swc").read_text().splitlines(), 1
        )
        if "<--" in text
    )
    assert f"line {line}" in message and caught.value.line == line
    assert isinstance(caught.value, InputError)


def test_missing_parent_names_the_line(real_fixtures):
    with pytest.raises(
        SwcError, match=r"Neuron_missing_parents\.swc, line \d+: node \d+ has parent"
    ):
        _parse(real_fixtures, "Neuron_missing_parents.swc")


def test_extra_column_is_an_error(real_fixtures):
    text = (real_fixtures / "swc_neurom" / "simple.swc").read_text().splitlines()
    index = next(i for i, line in enumerate(text) if line.strip() and not line.startswith("#"))
    text[index] += " 42"
    with pytest.raises(SwcError, match=rf"extra\.swc, line {index + 1}: 8 fields \(expected 7"):
        parse_swc("\n".join(text), "extra.swc")


def test_non_numeric_and_cycles_are_errors():
    with pytest.raises(SwcError, match="line 2: non-numeric"):
        parse_swc("1 1 0 0 0 1 -1\n2 3 0 zero 0 1 1\n", "bad.swc")
    with pytest.raises(SwcError, match="cycle through ids"):
        parse_swc("1 1 0 0 0 1 -1\n2 3 0 0 0 1 3\n3 3 0 0 0 1 2\n", "cycle.swc")
    with pytest.raises(SwcError, match="cycle"):
        parse_swc("1 1 0 0 0 1 1\n", "self.swc")


def test_crlf_inline_comments_and_blank_lines():
    table, stats = parse_swc(
        "# header\r\n\r\n1 1 0 0 0 1 -1 # soma\r\n2 3 3 4 0 1 1\r\n", "crlf.swc"
    )
    assert table.num_rows == 2 and stats.cable_length == pytest.approx(5.0)
    assert table["line"].to_pylist() == [3, 4]
