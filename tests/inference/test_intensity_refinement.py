"""Intensity refinement: a network prior with a systematic boundary error is pulled back to the scan's
own tissue boundaries; the background and the brain's outline stay; any contrast works."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from medseg.inference.intensity_refinement import refine_by_intensity
from medseg.inference.model_card import read_card


def _phantom(seed: int = 0, contrast: tuple[float, float, float] = (0.3, 0.6, 1.0)) -> tuple[np.ndarray, np.ndarray]:
    """(image, truth) of a 40^3 ball: WM core (3), GM shell (2), CSF rim (1), background (0) outside."""
    grid = np.indices((40, 40, 40)).astype(np.float32) - 19.5
    radius = np.sqrt((grid ** 2).sum(axis=0))
    truth = np.zeros(radius.shape, np.uint8)
    truth[radius < 17] = 1
    truth[radius < 15] = 2
    truth[radius < 10] = 3
    intensities = np.array([0.0, *contrast], np.float32)
    rng = np.random.default_rng(seed)
    image = intensities[truth] * (1 + 0.05 * rng.standard_normal(truth.shape)).astype(np.float32)
    return image, truth


def _biased_prior(truth: np.ndarray, grow_gm: int = 3, confidence: float = 0.8) -> np.ndarray:
    """(4, ...) probabilities of a network that puts the GM/WM boundary ``grow_gm`` voxels too deep.

    ``confidence``: the share of the blurred one-hot labels (the rest spread evenly over the 4 classes).
    """
    wrong = truth.copy()
    wm = truth == 3
    wrong[wm & ~ndimage.binary_erosion(wm, iterations=grow_gm)] = 2
    one_hot = np.stack([(wrong == c).astype(np.float32) for c in range(4)])
    soft = np.stack([ndimage.gaussian_filter(channel, 1.0) for channel in one_hot])
    soft = confidence * soft + (1.0 - confidence) / 4
    return (soft / soft.sum(axis=0)).astype(np.float32)


def _dice(labels: np.ndarray, truth: np.ndarray, value: int) -> float:
    a, b = labels == value, truth == value
    return 2 * float((a & b).sum()) / float(a.sum() + b.sum())


@pytest.mark.parametrize("contrast", [(0.3, 0.6, 1.0), (1.0, 0.5, 0.25), (0.2, 1.0, 0.5)],
                         ids=["T1-like", "T2-like", "arbitrary"])
def test_a_misplaced_tissue_boundary_moves_back_to_the_scans_own(contrast: tuple[float, float, float]) -> None:
    image, truth = _phantom(contrast=contrast)
    probabilities = _biased_prior(truth)
    before = probabilities.argmax(axis=0)
    background = probabilities[0].copy()
    fit = refine_by_intensity(image, probabilities, (1, 2, 3))
    after = probabilities.argmax(axis=0)
    assert fit.refined and fit.voxels > 10_000
    assert _dice(before, truth, 3) < 0.75
    assert _dice(after, truth, 3) > 0.95 and _dice(after, truth, 2) > 0.95
    assert fit.means == pytest.approx(contrast, rel=0.05)
    np.testing.assert_allclose(probabilities.sum(axis=0), 1.0, atol=1e-5)
    np.testing.assert_array_equal(probabilities[0], background)  # the outline is the network's


def test_a_lower_prior_weight_lets_intensities_overturn_a_confident_wrong_network() -> None:
    """A network sure (0.9996) of a GM/WM boundary 3 voxels too deep, on a noisier scan: at full weight its
    prior holds much of the error; at 0.5 the scan's intensities win back most of it."""
    image, truth = _phantom()
    image *= (1 + 0.15 * np.random.default_rng(1).standard_normal(truth.shape)).astype(np.float32)
    prior = _biased_prior(truth, confidence=0.9996)
    dice = {}
    for weight in (1.0, 0.5):
        probabilities = prior.copy()
        assert refine_by_intensity(image, probabilities, (1, 2, 3), prior_weight=weight).refined
        np.testing.assert_allclose(probabilities.sum(axis=0), 1.0, atol=1e-5)
        np.testing.assert_array_equal(probabilities[0], prior[0])
        dice[weight] = _dice(probabilities.argmax(axis=0), truth, 3)
    assert dice[1.0] < 0.85
    assert dice[0.5] > 0.9
    with pytest.raises(ValueError, match="prior_weight"):
        refine_by_intensity(image, prior.copy(), (1, 2, 3), prior_weight=0.0)


def test_zeros_of_a_skull_stripped_scan_and_unrefined_classes_are_left_alone() -> None:
    image, truth = _phantom()
    probabilities = _biased_prior(truth)
    stripped = image.copy()
    # Half the brain masked away (zeros, and the faint leftovers of interpolating a mask's edge): those
    # voxels keep the network's answer.
    stripped[:, :, :20] = 0.0
    stripped[:, :, 15:20] = 1e-3
    kept = probabilities[:, :, :, :20].copy()
    fit = refine_by_intensity(stripped, probabilities, (2, 3))
    assert fit.refined
    np.testing.assert_array_equal(probabilities[:, :, :, :20], kept)
    after = probabilities.argmax(axis=0)
    assert _dice(after[:, :, 20:], truth[:, :, 20:], 3) > 0.95


def test_too_little_tissue_refines_nothing() -> None:
    image, truth = _phantom()
    probabilities = _biased_prior(truth)
    probabilities[1:] *= 0.0
    probabilities[0] = 1.0
    probabilities[3, 20, 20, 20], probabilities[0, 20, 20, 20] = 1.0, 0.0
    original = probabilities.copy()
    assert not refine_by_intensity(image, probabilities, (1, 2, 3)).refined
    np.testing.assert_array_equal(probabilities, original)


@pytest.mark.parametrize("entry, message", [
    ({"classes": [1]}, "two or more"),
    ({"classes": [0, 1]}, "foreground"),
    ({"classes": [1, 9]}, "foreground"),
    ({"classes": [1, 2], "iterations": 0}, "iterations"),
    ({"classes": [1, 2], "sigma": 2}, "only"),
    ({"classes": [1, 2], "prior_weight": 0}, "prior_weight"),
    ({"classes": [1, 2], "prior_weight": 1.5}, "prior_weight"),
    ({"classes": [1, 2], "prior_weight": True}, "prior_weight"),
    ({"classes": [1, 2], "prior_weight": "0.5"}, "prior_weight"),
])
def test_a_card_with_a_bad_refinement_entry_is_refused(tmp_path, entry, message) -> None:
    import json

    from medseg.errors import InputError

    card = {"format": "medseg-model-card/1", "class_names": ["background", "a", "b", "c"], "modalities": ["T1"],
            "postprocess": {"intensity_refinement": entry}}
    path = tmp_path / "model_card.json"
    path.write_text(json.dumps(card))
    with pytest.raises(InputError, match=message):
        read_card(path)


def test_a_card_round_trips_its_refinement(tmp_path) -> None:
    import json

    from medseg.inference.model_card import write_card_text

    card = {"format": "medseg-model-card/1", "class_names": ["background", "a", "b", "c"], "modalities": ["T1"],
            "postprocess": {"intensity_refinement": {"classes": [1, 2, 3], "iterations": 5, "prior_weight": 0.5}}}
    path = tmp_path / "model_card.json"
    path.write_text(json.dumps(card))
    parsed = read_card(path)
    assert parsed.postprocess.refine_classes == (1, 2, 3) and parsed.postprocess.refine_iterations == 5
    assert parsed.postprocess.refine_prior_weight == 0.5
    path.write_text(write_card_text(parsed))
    assert read_card(path).postprocess == parsed.postprocess


def test_fitting_on_a_subsample_gives_the_full_fits_answer(monkeypatch) -> None:
    from medseg.inference import intensity_refinement

    image, truth = _phantom(seed=1)
    full = _biased_prior(truth)
    full_fit = refine_by_intensity(image, full, (1, 2, 3))
    monkeypatch.setattr(intensity_refinement, "FIT_VOXELS", 2_000)  # every ~12th voxel of the ~24,000
    sampled = _biased_prior(truth)
    sampled_fit = refine_by_intensity(image, sampled, (1, 2, 3))
    assert sampled_fit.voxels == full_fit.voxels
    assert sampled_fit.means == pytest.approx(full_fit.means, rel=0.01)
    assert (sampled.argmax(axis=0) != full.argmax(axis=0)).mean() < 0.002
