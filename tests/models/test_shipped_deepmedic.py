"""The shipped DeepMedic on the bundled sample and on a real head it never saw.

Bars sit just under what the shipped model achieves (docs/model-comparison/brain-tissue-deepmedic/checks.md),
so a model, a window plan or a pipeline change that makes it worse fails here. The model runs through the
public Predictor with its own plan (DeepMedic: aligned segments, the whole volume in one forward when it fits).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from real_scan_helpers import assert_stripped_moved, assert_whole_head, load_real_checks

from medseg.evaluation.shift_checks import class_dice
from medseg.inference import Predictor
from medseg.io import read_labels, read_scan

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "brain-tissue-deepmedic"
# Measured (docs/model-comparison, 2026-12-05 run, the slim DeepMedic fine-tuned with single-subject gray-matter
# thickness, card: intensity refinement with the class-conditional bias field, the 10 mm foreground opening, the
# skull-stripped background odds 0.1; ROBEX's mask with its vertex supplement): sample test 0.50 / 0.79 / 0.79 (its
# labels keep the template's thick gray matter); ROBEX head brain 0.95, 20 mL outside, GM 0.87, WM 0.88; ROBEX
# stripped and moved 0.62 / 0.84 / 0.84 (the model before, ROBEX mask alone: sample 0.52 / 0.81 / 0.81, head 0.94,
# 34 mL, 0.81 / 0.85, moved 0.41 / 0.75 / 0.77). Bars sit 0.02-0.04 below (bf16 rounding and CPU kernels).
BARS_SAMPLE = {"CSF": 0.47, "GM": 0.75, "WM": 0.76}
# brain Dice, mL outside at most, mL more than 5 mm outside at most (measured 0.21), GM Dice, WM Dice
WHOLE_HEAD = {"robex-t1": (0.935, 35.0, 1.5, 0.84, 0.855)}
# Moved references resampled label-wise since 2026-12-05 (nearest before): measured 0.651 / 0.863 / 0.849.
STRIPPED_MOVED = {"robex-t1": (0.62, 0.84, 0.825)}  # CSF, GM, WM Dice


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    return Predictor.from_model(MODEL)


@pytest.fixture(scope="module")
def real_checks() -> dict[str, dict]:
    return {check["name"]: check for check in load_real_checks(names=sorted(WHOLE_HEAD))}


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from medseg.data.build import build_sample

    return build_sample(ROOT / "datasets" / "brain-tissue.yaml", tmp_path_factory.mktemp("sample") / "brain").parent


@pytest.mark.slow
def test_the_sample_test_subjects(predictor: Predictor, sample: Path) -> None:
    scores: dict[str, list[float]] = {name: [] for name in BARS_SAMPLE}
    for image in sorted((sample / "imagesTs").glob("*.nii.gz")):
        volume = read_scan(image)
        truth = read_labels(sample / "labelsTs" / image.name.replace("_0000", ""), reference=volume).array
        dice = class_dice(predictor.predict(volume).labels.array, truth)
        for name in BARS_SAMPLE:
            scores[name].append(dice[name])
    measured = {name: float(np.mean(values)) for name, values in scores.items()}
    assert all(measured[name] >= bar for name, bar in BARS_SAMPLE.items()), measured


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(WHOLE_HEAD))
def test_a_real_head_with_the_skull_on(predictor: Predictor, real_checks: dict[str, dict], name: str) -> None:
    assert_whole_head(predictor, real_checks[name], WHOLE_HEAD[name])


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(STRIPPED_MOVED))
def test_a_real_skull_stripped_brain_rigidly_moved(
    predictor: Predictor, real_checks: dict[str, dict], name: str
) -> None:
    assert_stripped_moved(predictor, real_checks[name], STRIPPED_MOVED[name])
