"""Patient-level train / validation / test splits: seeded, saved as JSON, never mixing a patient.

All cases of one patient fall in the same part, so no patient's anatomy leaks from
training into validation or test. The test part is written down with the split and
is never read by training or model selection.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from medseg.errors import ConfigError, InputError
from medseg.io.atomic import atomic_write_text

CaseT = TypeVar("CaseT")

SPLIT_FORMAT = "medseg-split/1"


@dataclass(frozen=True)
class Split:
    """Patient ids per part (each sorted); a patient is in exactly one part.

    Attributes:
        train: patients used to fit the weights.
        val: patients used for validation, early stopping and choosing the best checkpoint.
        test: patients held out for the final evaluation only.
        seed: the shuffle seed (-1 when the split came from elsewhere).
    """

    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...]
    seed: int = -1

    def part_of(self, patient_id: str) -> str:
        """``"train"``, ``"val"``, ``"test"`` or ``""`` when the patient is not in the split."""
        for name in ("train", "val", "test"):
            if patient_id in getattr(self, name):
                return name
        return ""


def make_split(
    patient_ids: Iterable[str], val_fraction: float, test_fraction: float, seed: int
) -> Split:
    """Shuffle the unique patient ids with ``seed`` and cut them into train/val/test.

    Sizes are ``round(n * fraction)``, at least one patient for a non-zero fraction
    when there are enough patients; training always keeps at least one.

    Raises:
        ConfigError: fractions outside [0, 1) or summing to 1 or more, or too few patients.
    """
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= value < 1.0:
            raise ConfigError(f"split.{name}: {value} must be in [0, 1)")
    if val_fraction + test_fraction >= 1.0:
        raise ConfigError("split: val_fraction + test_fraction must be below 1 to leave training patients")
    unique = sorted(set(patient_ids))
    count = len(unique)
    n_test = _part_size(count, test_fraction)
    n_val = _part_size(count, val_fraction)
    if count - n_test - n_val < 1:
        raise ConfigError(
            f"split: {count} patient(s) cannot give {n_val} validation and {n_test} test patients "
            "and still leave one for training; lower the fractions or add cases"
        )
    random.Random(seed).shuffle(unique)
    test = tuple(sorted(unique[:n_test]))
    val = tuple(sorted(unique[n_test : n_test + n_val]))
    train = tuple(sorted(unique[n_test + n_val :]))
    return Split(train=train, val=val, test=test, seed=seed)


def _part_size(count: int, fraction: float) -> int:
    """round(count * fraction), at least 1 for a non-zero fraction when count >= 3."""
    if fraction <= 0.0:
        return 0
    size = int(math.floor(count * fraction + 0.5))
    return max(size, 1) if count >= 3 else size


def assign_cases(
    cases: Sequence[CaseT], split: Split, patient_of: Callable[[CaseT], str]
) -> dict[str, list[CaseT]]:
    """Cases per part (``"train"``, ``"val"``, ``"test"``), in datalist order.

    Raises:
        ConfigError: a case whose patient is not in the split (the datalist changed
            since the split was made).
    """
    parts: dict[str, list[CaseT]] = {"train": [], "val": [], "test": []}
    for case in cases:
        patient = patient_of(case)
        part = split.part_of(patient)
        if not part:
            raise ConfigError(
                f"patient '{patient}' is in the datalist but not in the split; "
                "the data set changed since the split was saved: start a new run"
            )
        parts[part].append(case)
    return parts


def save_split(split: Split, path: str | Path) -> Path:
    """Write the split as JSON (atomically); returns the path."""
    data = {
        "format": SPLIT_FORMAT,
        "seed": split.seed,
        "train": list(split.train),
        "val": list(split.val),
        "test": list(split.test),
    }
    return atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def load_split(path: str | Path) -> Split:
    """Read a split JSON written by ``save_split``.

    Raises:
        InputError: unreadable, not a split, or a patient in two parts.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise InputError(path, f"cannot read the split ({error.strerror})") from None
    except json.JSONDecodeError as error:
        raise InputError(path, f"not valid JSON ({error.msg}, line {error.lineno})") from None
    if not isinstance(data, dict) or data.get("format") != SPLIT_FORMAT:
        raise InputError(path, f"not a medseg split (expected format '{SPLIT_FORMAT}')")
    parts = {}
    for name in ("train", "val", "test"):
        values = data.get(name, [])
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise InputError(path, f"'{name}' must be a list of patient ids")
        parts[name] = tuple(values)
    seen: dict[str, str] = {}
    for name, values in parts.items():
        for patient in values:
            if patient in seen:
                raise InputError(path, f"a patient is in both '{seen[patient]}' and '{name}'",
                                 "each patient must be in exactly one part")
            seen[patient] = name
    return Split(train=parts["train"], val=parts["val"], test=parts["test"], seed=int(data.get("seed", -1)))
