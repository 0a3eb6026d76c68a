"""Patient-level splits: no patient in two parts, seeded, saved and read back, cases grouped by patient."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medseg.data.splits import Split, assign_cases, load_split, make_split, save_split
from medseg.errors import ConfigError, InputError

PATIENTS = [f"p{i:02d}" for i in range(20)]


def test_parts_are_disjoint_cover_everyone_and_have_the_asked_sizes() -> None:
    split = make_split(PATIENTS, val_fraction=0.2, test_fraction=0.25, seed=7)
    train, val, test = set(split.train), set(split.val), set(split.test)
    assert not train & val and not train & test and not val & test
    assert train | val | test == set(PATIENTS)
    assert (len(train), len(val), len(test)) == (11, 4, 5)
    assert split.seed == 7


def test_same_seed_same_split_other_seed_other_split() -> None:
    first = make_split(PATIENTS, 0.2, 0.2, seed=1)
    assert make_split(list(reversed(PATIENTS)), 0.2, 0.2, seed=1) == first  # input order does not matter
    assert make_split(PATIENTS, 0.2, 0.2, seed=2) != first


def test_small_cohort_keeps_one_patient_per_nonzero_part() -> None:
    split = make_split(["a", "b", "c"], 0.1, 0.1, seed=0)
    assert (len(split.train), len(split.val), len(split.test)) == (1, 1, 1)
    assert make_split(["a", "b", "c"], 0.0, 0.0, seed=0).train == ("a", "b", "c")


@pytest.mark.parametrize(
    ("patients", "val", "test", "message"),
    [
        (PATIENTS, 1.0, 0.0, "split.val_fraction"),
        (PATIENTS, 0.5, 0.5, "below 1"),
        (["a", "b"], 0.4, 0.4, "still leave one for training"),
    ],
)
def test_impossible_splits_raise_config_errors(patients: list[str], val: float, test: float, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_split(patients, val, test, seed=0)


def test_cases_of_one_patient_stay_together() -> None:
    cases = [("p00", "t1"), ("p01", "t1"), ("p00", "t2"), ("p02", "t1"), ("p01", "t2")]
    split = Split(train=("p00",), val=("p01",), test=("p02",))
    parts = assign_cases(cases, split, lambda case: case[0])
    assert parts == {"train": [("p00", "t1"), ("p00", "t2")], "val": [("p01", "t1"), ("p01", "t2")],
                     "test": [("p02", "t1")]}
    with pytest.raises(ConfigError, match="'p09' is in the datalist but not in the split"):
        assign_cases([("p09", "t1")], split, lambda case: case[0])


def test_saved_split_reads_back_and_is_plain_json(tmp_path: Path) -> None:
    split = make_split(PATIENTS, 0.2, 0.2, seed=5)
    path = save_split(split, tmp_path / "split.json")
    assert load_split(path) == split
    data = json.loads(path.read_text())
    assert data["format"] == "medseg-split/1" and data["seed"] == 5 and data["test"] == list(split.test)


def test_broken_split_files_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "split.json"
    path.write_text(json.dumps({"format": "medseg-split/1", "train": ["a", "b"], "val": ["b"], "test": []}))
    with pytest.raises(InputError, match="split.json: a patient is in both 'train' and 'val'"):
        load_split(path)
    path.write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        load_split(path)
    path.write_text(json.dumps({"train": []}))
    with pytest.raises(InputError, match="not a medseg split"):
        load_split(path)
