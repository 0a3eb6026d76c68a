"""QC flags against training ranges: numbers in, exact flags out."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from medseg.errors import InputError
from medseg.inference.qc import (
    QCReference,
    build_reference,
    mean_foreground_uncertainty,
    qc_flags,
    scan_facts,
)
from medseg.types import Volume


def _scan(spacing: tuple[float, float, float] = (1.0, 1.0, 2.0), low: float = 0.0, high: float = 100.0) -> Volume:
    """(1, 10, 10, 5) ramp from low to high."""
    values = np.linspace(low, high, 500, dtype=np.float32).reshape(1, 10, 10, 5)
    return Volume(values, np.diag([*spacing, 1.0]), ("T1",))


def test_scan_facts_are_in_ras_axis_order() -> None:
    sagittal = np.array([[0, 0, -2.0, 0], [1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 0, 1]])  # i->A, j->S, k->L
    facts = scan_facts(Volume(np.zeros((1, 10, 20, 5), np.float32), sagittal, ("T1",)))
    assert facts.spacing == (2.0, 1.0, 1.0) and facts.shape == (5, 10, 20)
    assert facts.extent_mm == (10.0, 10.0, 20.0)


def test_reference_widens_the_training_ranges() -> None:
    facts = [scan_facts(_scan()), scan_facts(_scan((1.0, 1.0, 3.0), 10.0, 110.0))]
    reference = build_reference(facts, [{"tumour": 2.0}, {"tumour": 4.0}], ("background", "tumour"))
    assert reference.class_volume_ml == {"tumour": (1.0, 6.0)}  # [2 * 0.5, 4 * 1.5]
    assert reference.spacing_mm[2] == pytest.approx((2.0 / 1.5, 3.0 * 1.5))
    p1 = np.percentile(np.linspace(0, 100, 500), 1)
    span = np.percentile(np.linspace(0, 100, 500), 99) - p1
    assert reference.intensity["T1"]["p1"] == pytest.approx((p1 - 0.25 * span, p1 + 10 + 0.25 * span), rel=1e-5)
    again = QCReference.from_dict(reference.to_dict(), "card.json")
    assert again == reference


def test_flags_fire_only_where_something_stands_out() -> None:
    reference = build_reference([scan_facts(_scan())], [{"tumour": 2.0}], ("background", "tumour"))
    assert qc_flags(reference, _scan(), {"tumour": 2.5}, 0.1) == ()
    assert qc_flags(reference, _scan(), {"tumour": 0.0}, math.nan) == ("empty prediction",)
    flags = qc_flags(reference, _scan(), {"tumour": 9.0}, 0.7)
    assert flags == (
        "high uncertainty: mean normalised entropy 0.700 inside the predicted structures (threshold 0.50)",
        "volume out of range: tumour 9.0 mL, training range 1.0-3.0 mL",
    )
    flags = qc_flags(reference, _scan((1.0, 1.0, 6.0), 0.0, 1000.0), {"tumour": 2.0}, 0.1)
    assert [f.split(":")[0] for f in flags] == [
        "spacing out of range", "shape out of range", "intensity out of range",
    ]
    assert "T1 p99 990" in flags[2]  # p1 (10) is still within the widened training range
    assert qc_flags(None, _scan(), {"tumour": 0.0}, math.nan) == ("empty prediction",)


def test_mean_foreground_uncertainty() -> None:
    labels = np.array([[[0, 1], [2, 0]]])
    uncertainty = np.array([[[0.9, 0.2], [0.4, 0.8]]])
    assert mean_foreground_uncertainty(labels, uncertainty) == pytest.approx(0.3)
    assert math.isnan(mean_foreground_uncertainty(np.zeros_like(labels), uncertainty))


def test_a_malformed_qc_section_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="'qc' section is malformed"):
        QCReference.from_dict({"cases": 1, "class_volume_ml": {}}, tmp_path / "model_card.json")
