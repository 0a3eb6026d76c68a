"""The shipped brain-tissue model: it finds the tissues, and its answer does not depend on where the head sits.

Runs the real model folder (models/brain-tissue-unet) on a bundled sample subject, once as built and
once embedded at an offset in a larger empty volume: the masks must agree where they overlap.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medseg.inference import Predictor
from medseg.io import read_labels, read_scan
from medseg.review.sample import sample_subject
from medseg.types import Volume

MODEL = Path(__file__).resolve().parents[2] / "models" / "brain-tissue-unet"


def _dice(first: np.ndarray, second: np.ndarray, label: int) -> float:
    a, b = first == label, second == label
    return float(2 * (a & b).sum() / (a.sum() + b.sum()))


def _embedded(volume: Volume, offset: tuple[int, int, int], pad: tuple[int, int, int]) -> Volume:
    """The same scan placed at ``offset`` in a larger zero volume whose affine keeps it in place in the world."""
    array = np.zeros((1, *(n + p for n, p in zip(volume.spatial_shape, pad))), np.float32)
    inner = tuple(slice(o, o + n) for o, n in zip(offset, volume.spatial_shape))
    array[(slice(None), *inner)] = volume.array
    affine = volume.affine.copy()
    affine[:3, 3] -= affine[:3, :3] @ np.asarray(offset, float)
    return Volume(array=array, affine=affine)


@pytest.mark.slow
def test_shipped_model_segments_the_sample_wherever_the_head_sits(tmp_path_factory: pytest.TempPathFactory) -> None:
    subject = sample_subject(tmp_path_factory.mktemp("sample"))
    volume = read_scan(subject.image)
    truth = read_labels(subject.labels, reference=volume).array
    predictor = Predictor.from_model(MODEL)
    plain = predictor.predict(volume).labels.array
    assert plain.shape == truth.shape
    # brain_000 was a training subject: this checks the shipped weights load and work, not generalisation.
    found = {label: _dice(plain, truth, label) for label in (1, 2, 3)}
    assert found[1] > 0.4 and found[2] > 0.8 and found[3] > 0.75, found

    offset = (30, 10, 5)
    shifted = predictor.predict(_embedded(volume, offset, pad=(40, 50, 25))).labels.array
    back = shifted[tuple(slice(o, o + n) for o, n in zip(offset, volume.spatial_shape))]
    agreement = {label: _dice(plain, back, label) for label in (1, 2, 3)}
    assert agreement[2] > 0.9 and agreement[3] > 0.9 and agreement[1] > 0.7, agreement
    assert not shifted[:offset[0]].any()  # nothing predicted in the empty margin
