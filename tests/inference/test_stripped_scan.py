"""Background odds by kind of scan: they fall at a skull-stripped scan's signal voxels, rise on a whole head's."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage

from medseg.errors import InputError
from medseg.inference.model_card import read_card
from medseg.inference.stripped_scan import (
    adapt_to_skull_stripped,
    far_fraction,
    raise_head_background_odds,
    scale_background_odds,
)

SPACING = (1.0, 1.0, 1.0)


def _brain(shape: tuple[int, int, int] = (64, 64, 64)) -> tuple[np.ndarray, np.ndarray]:
    """(radius in voxels from the centre, truth): WM core (3) inside 12, GM shell (2) to 18, CSF rim (1) to 20."""
    grid = np.indices(shape).astype(np.float32) - (np.asarray(shape, np.float32)[:, None, None, None] - 1) / 2
    radius = np.sqrt((grid ** 2).sum(axis=0))
    truth = np.zeros(shape, np.uint8)
    truth[radius < 20] = 1
    truth[radius < 18] = 2
    truth[radius < 12] = 3
    return radius, truth


def _eroding_network(truth: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """(4, ...) probabilities of a network that calls the outer 4 voxels of the brain background (p 0.6-0.8)."""
    labels = truth.copy()
    edge = (truth > 0) & (radius >= 16)
    labels[edge] = 0
    one_hot = np.stack([(labels == c).astype(np.float32) for c in range(4)])
    soft = 0.6 * one_hot + 0.1
    for c in (1, 2):  # the eroded voxels keep some tissue probability: background 0.7, CSF and GM 0.1-0.15
        soft[c][edge] += 0.05
    return (soft / soft.sum(axis=0)).astype(np.float32)


def _image(truth: np.ndarray, scalp_from: float | None = None, radius: np.ndarray | None = None) -> np.ndarray:
    """T1-like intensities (CSF 0.3, GM 0.6, WM 1.0), zero outside the brain; a bright scalp shell if asked."""
    image = np.array([0.0, 0.3, 0.6, 1.0], np.float32)[truth]
    if scalp_from is not None:
        image[(radius >= scalp_from) & (radius < scalp_from + 6)] = 0.9
    return image


def test_a_skull_stripped_brain_gets_its_eroded_edge_back() -> None:
    radius, truth = _brain()
    probabilities = _eroding_network(truth, radius)
    before = probabilities.argmax(axis=0)
    check = adapt_to_skull_stripped(_image(truth), probabilities, SPACING, 0.1)
    after = probabilities.argmax(axis=0)
    assert check.skull_stripped and check.far_fraction < 0.01 and check.odds == 0.1
    brain = truth > 0
    assert (before[brain] > 0).mean() < 0.7 and (after[brain] > 0).mean() > 0.99
    assert (after[~brain] == 0).all()  # the zeros outside keep the network's answer
    np.testing.assert_allclose(probabilities.sum(axis=0), 1.0, atol=1e-5)
    edge = brain & (radius >= 16)
    ratio_before = _eroding_network(truth, radius)[2][edge] / _eroding_network(truth, radius)[1][edge]
    np.testing.assert_allclose(probabilities[2][edge] / probabilities[1][edge], ratio_before, rtol=1e-5)


def test_a_whole_head_is_never_touched() -> None:
    radius, truth = _brain()
    probabilities = _eroding_network(truth, radius)
    original = probabilities.copy()
    check = adapt_to_skull_stripped(_image(truth, scalp_from=26, radius=radius), probabilities, SPACING, 0.1)
    assert not check.skull_stripped and check.far_fraction > 0.3 and check.odds == 1.0
    np.testing.assert_array_equal(probabilities, original)


def test_the_odds_shift_and_its_checks() -> None:
    probabilities = np.array([0.5, 0.25, 0.25, 0.0], np.float32).reshape(4, 1, 1, 1)
    scale_background_odds(probabilities, np.ones((1, 1, 1), bool), 0.1)
    assert probabilities[0, 0, 0, 0] == pytest.approx(0.1 / 1.1)
    assert probabilities[1, 0, 0, 0] == pytest.approx(probabilities[2, 0, 0, 0]) and probabilities[3, 0, 0, 0] == 0
    assert probabilities.sum() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="stripped_background_odds"):
        adapt_to_skull_stripped(np.ones((4, 4, 4), np.float32), probabilities.repeat(4, 1), SPACING, 0.0)
    # A signal voxel more than 8 mm from the tissue is far.
    tissue = np.zeros((40, 40, 40), bool)
    tissue[10:20, 10:20, 10:20] = True
    signal = tissue | ndimage.binary_dilation(tissue, iterations=3)
    assert far_fraction(signal, tissue, SPACING) == 0.0
    signal[38, 38, 38] = True
    assert far_fraction(signal, tissue, SPACING) > 0.0


def test_a_whole_head_loses_only_its_uncertain_edge_to_the_head_odds() -> None:
    radius, truth = _brain()
    # A network sure of the brain (tissue 0.9), unsure of a shell outside it (radius 20-22: background 0.42,
    # CSF 0.48, GM 0.1: labelled CSF), certain background beyond.
    probabilities = np.zeros((4, *truth.shape), np.float32)
    probabilities[3][truth == 3] = 0.9
    probabilities[2][truth == 2] = 0.9
    probabilities[1][truth == 1] = 0.9
    probabilities[0][truth > 0] = 0.1
    outside = (truth == 0) & (radius < 22)
    probabilities[0][outside], probabilities[1][outside], probabilities[2][outside] = 0.42, 0.48, 0.1
    probabilities[0][(truth == 0) & ~outside] = 1.0
    original = probabilities.copy()
    head = adapt_to_skull_stripped(_image(truth, scalp_from=26, radius=radius), probabilities, SPACING, 1.0)
    assert not head.skull_stripped and head.odds == 1.0
    raised = raise_head_background_odds(probabilities, head, 1.25)
    assert raised.odds == 1.25 and not raised.skull_stripped
    labels_before, labels_after = original.argmax(axis=0), probabilities.argmax(axis=0)
    assert (labels_before[outside] > 0).all() and (labels_after[outside] == 0).all()  # 0.475 > 0.434
    np.testing.assert_array_equal(labels_after[truth > 0], labels_before[truth > 0])  # the sure brain stays
    np.testing.assert_allclose(probabilities.sum(axis=0), 1.0, atol=1e-5)
    np.testing.assert_allclose(probabilities[0][outside], 1.25 * 0.42 / (1.25 * 0.42 + 0.58), rtol=1e-5)
    np.testing.assert_allclose(probabilities[1][outside] / probabilities[2][outside], 0.48 / 0.1, rtol=1e-5)
    # A skull-stripped scan keeps what its own odds made of it: the head odds never apply there.
    stripped_probabilities = original.copy()
    stripped = adapt_to_skull_stripped(_image(truth), stripped_probabilities, SPACING, 1.0)
    assert stripped.skull_stripped
    assert raise_head_background_odds(stripped_probabilities, stripped, 1.25) is stripped
    np.testing.assert_array_equal(stripped_probabilities, original)
    with pytest.raises(ValueError, match="head_background_odds"):
        raise_head_background_odds(probabilities, head, 0.5)


@pytest.mark.parametrize("key, value, ok", [
    ("stripped_background_odds", 0.1, True), ("stripped_background_odds", 1, True),
    ("stripped_background_odds", 0, False), ("stripped_background_odds", 1.5, False),
    ("stripped_background_odds", True, False), ("stripped_background_odds", "0.1", False),
    ("head_background_odds", 1.25, True), ("head_background_odds", 1, True), ("head_background_odds", 4, True),
    ("head_background_odds", 0.9, False), ("head_background_odds", 4.5, False), ("head_background_odds", "1.2", False),
])
def test_the_card_keys_are_validated(tmp_path, key, value, ok) -> None:
    card = {"format": "medseg-model-card/1", "class_names": ["background", "a", "b"], "modalities": ["T1"],
            "postprocess": {key: value}}
    path = tmp_path / "model_card.json"
    path.write_text(json.dumps(card))
    if ok:
        assert getattr(read_card(path).postprocess, key) == float(value)
    else:
        with pytest.raises(InputError, match=key):
            read_card(path)


def test_an_unknown_postprocess_key_is_refused(tmp_path) -> None:
    card = {"format": "medseg-model-card/1", "class_names": ["background", "a"], "modalities": ["T1"],
            "postprocess": {"largest_foreground": True, "stripped_odds": 0.1}}
    path = tmp_path / "model_card.json"
    path.write_text(json.dumps(card))
    with pytest.raises(InputError, match=r"unknown keys \['stripped_odds'\]"):
        read_card(path)
