"""Feature sets: content ids, idempotent and concurrent registration, relocatable lakes."""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor

import lance
import pytest

from imaging_assets.jump.profiles import FeatureSet, ensure_feature_set, load_feature_sets


def _set(*names: str) -> FeatureSet:
    return FeatureSet.from_names(names)


def test_the_id_is_the_content():
    a = _set("Cells_AreaShape_Area", "Nuclei_AreaShape_Area")
    assert a.id == _set("Cells_AreaShape_Area", "Nuclei_AreaShape_Area").id
    assert a.id != _set("Nuclei_AreaShape_Area", "Cells_AreaShape_Area").id  # order matters
    assert a.id != FeatureSet(a.names, ("Cells", "Cells")).id  # so do compartments
    assert a.compartments == ("Cells", "Nuclei") and a.position["Nuclei_AreaShape_Area"] == 1
    assert len(a.id) == 64
    with pytest.raises(ValueError, match="twice"):
        _set("Cells_A", "Cells_A")


def test_stored_once_and_loaded_by_id(tmp_path):
    uri = str(tmp_path / "feature_sets.lance")
    first, second = _set("Cells_A", "Cells_B"), _set("Nuclei_A")
    assert ensure_feature_set(uri, first) is True
    assert ensure_feature_set(uri, first) is False
    assert ensure_feature_set(uri, second) is True
    assert lance.dataset(uri).count_rows() == 2
    assert load_feature_sets(uri, [first.id, second.id]) == {first.id: first, second.id: second}
    with pytest.raises(KeyError, match="no feature set"):
        load_feature_sets(uri, ["0" * 64])


def test_many_writers_at_once_leave_every_set_resolvable(tmp_path):
    """8 writers, two of them per set, racing on a registry that does not exist yet."""
    uri = str(tmp_path / "feature_sets.lance")
    sets = [_set(f"Cells_F{i}", f"Nuclei_F{i}") for i in range(4)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda s: ensure_feature_set(uri, s), sets + sets))
    assert load_feature_sets(uri, [s.id for s in sets]) == {s.id: s for s in sets}
    rows = lance.dataset(uri).to_table(columns=["feature_set"])["feature_set"].to_pylist()
    assert set(rows) == {s.id for s in sets}  # a racing duplicate is the same content


def test_a_copied_lake_resolves_where_it_now_is(tmp_path):
    uri = str(tmp_path / "lake" / "feature_sets.lance")
    feature_set = _set("Cytoplasm_A", "Image_B", "Other")
    ensure_feature_set(uri, feature_set)
    shutil.copytree(tmp_path / "lake", tmp_path / "moved")
    shutil.rmtree(tmp_path / "lake")
    moved = load_feature_sets(str(tmp_path / "moved" / "feature_sets.lance"), [feature_set.id])
    assert moved[feature_set.id].compartments == ("Cytoplasm", "Image", "")
