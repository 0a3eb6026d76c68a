"""Definitions of the bundled sample data sets: frozen dataclasses loaded from ``datasets/*.yaml``.

Each YAML file names its ``kind`` (``"brain-tissue"`` or ``"ct-phantom"``), which picks the
dataclass; unknown keys and wrong types raise ``ConfigError`` naming the key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from medseg.config import load_config, load_yaml
from medseg.errors import ConfigError


@dataclass(frozen=True)
class BrainAugmentation:
    """Ranges of the random per-subject changes applied to the template.

    Attributes:
        rotate_deg: largest rotation about each axis, degrees (uniform in [-r, r]).
        scale: largest relative size change per axis (uniform in [1 - s, 1 + s]).
        translate_mm: largest shift per axis, mm.
        elastic_sigma_mm: smoothing of MONAI's random offset field, mm (range).
        elastic_magnitude_mm: MONAI's offset magnitude before smoothing, mm (range).
        gamma: contrast change ``x ** gamma`` (range).
        bias_coeff: polynomial bias-field coefficients (MONAI ``RandBiasField`` range).
        noise_std: Gaussian noise, as a fraction of the bright tissue intensity (range).
        gain: stored value of the bright tissue (uint8 scale, range); scanners scale differently.
        spacings: output voxel sizes (mm) along the stored i, j, k (k = slice direction); one is
            drawn per subject (repeat one to weight it).
        orientations: output axis codes (e.g. ``"LPS"`` axial, ``"LIA"`` coronal slices); one is
            drawn per subject.
    """

    rotate_deg: float = 8.0
    scale: float = 0.08
    translate_mm: float = 4.0
    elastic_sigma_mm: tuple[float, float] = (10.0, 16.0)
    elastic_magnitude_mm: tuple[float, float] = (100.0, 300.0)
    gamma: tuple[float, float] = (0.7, 1.4)
    bias_coeff: tuple[float, float] = (0.05, 0.3)
    noise_std: tuple[float, float] = (0.005, 0.03)
    gain: tuple[float, float] = (180.0, 240.0)
    spacings: tuple[tuple[float, float, float], ...] = ((2.0, 2.0, 2.0),)
    orientations: tuple[str, ...] = ("RAS",)


@dataclass(frozen=True)
class BrainSampleConfig:
    """The brain-tissue sample: synthetic T1 subjects with CSF / gray / white matter labels.

    Attributes:
        kind: always ``"brain-tissue"``.
        name: data set name (``dataset.json`` ``name``).
        description: one line for ``dataset.json``.
        seed: master seed; subject ``n`` uses a seed derived from (seed, n).
        n_train: labelled training subjects (``imagesTr``/``labelsTr``).
        n_test: test subjects (``imagesTs``; their labels go to ``labelsTs`` for evaluation).
        case_prefix: patient ids are ``f"{case_prefix}_{n:03d}"``.
        template_downsample: integer block-averaging factor of the 1 mm template (2 -> 2 mm).
        margin_mm: empty border kept around the brain before augmentation.
        augment: random subject variation.
        dicom_cases: indices of subjects also written as a DICOM series under ``dicom/``.
    """

    kind: Literal["brain-tissue"] = "brain-tissue"
    name: str = "brain-tissue"
    description: str = ""
    seed: int = 0
    n_train: int = 10
    n_test: int = 2
    case_prefix: str = "brain"
    template_downsample: int = 2
    margin_mm: float = 10.0
    augment: BrainAugmentation = field(default_factory=BrainAugmentation)
    dicom_cases: tuple[int, ...] = (0,)

    def __post_init__(self) -> None:
        _check_counts(self.n_train, self.n_test, self.dicom_cases)
        if not 1 <= self.template_downsample <= 4:
            raise ValueError(f"template_downsample must be 1..4, got {self.template_downsample}")


@dataclass(frozen=True)
class CtPhantomConfig:
    """The CT-like phantom sample: an abdomen slab in Hounsfield units with organs of very different sizes.

    Labels: 1 liver-like (large), 2 kidney-like (medium, both sides), 3 lesion-like (small, inside the liver).

    Attributes:
        kind: always ``"ct-phantom"``.
        name: data set name.
        description: one line for ``dataset.json``.
        seed: master seed.
        n_train: labelled training cases.
        n_test: test cases.
        case_prefix: patient ids are ``f"{case_prefix}_{n:03d}"``.
        shape: voxels along i, j, k (i = right-to-left, j = anterior-to-posterior, k = inferior-to-superior).
        spacing: voxel size along i, j, k, mm.
        noise_hu: standard deviation of the image noise, HU (range).
        blur_mm: Gaussian point-spread of the scanner, mm (sigma).
        lesions: how many lesions per case (inclusive range).
        lesion_radius_mm: lesion radius, mm (range).
        dicom_cases: indices of cases also written as a DICOM series under ``dicom/``.
    """

    kind: Literal["ct-phantom"] = "ct-phantom"
    name: str = "ct-phantom"
    description: str = ""
    seed: int = 0
    n_train: int = 6
    n_test: int = 2
    case_prefix: str = "ct"
    shape: tuple[int, int, int] = (112, 96, 32)
    spacing: tuple[float, float, float] = (0.8, 0.8, 2.5)
    noise_hu: tuple[float, float] = (8.0, 16.0)
    blur_mm: float = 0.6
    lesions: tuple[int, int] = (1, 2)
    lesion_radius_mm: tuple[float, float] = (2.5, 4.5)
    dicom_cases: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        _check_counts(self.n_train, self.n_test, self.dicom_cases)
        if min(self.shape) < 16 or min(self.spacing) <= 0:
            raise ValueError(f"shape must be >= 16 voxels and spacing > 0, got {self.shape}, {self.spacing}")


SampleConfig = BrainSampleConfig | CtPhantomConfig

SAMPLE_KINDS: dict[str, type] = {
    "brain-tissue": BrainSampleConfig,
    "ct-phantom": CtPhantomConfig,
}


def load_sample_definition(path: str | Path) -> SampleConfig:
    """Read a sample data set definition (YAML) into its frozen dataclass.

    Raises:
        ConfigError: unreadable file, missing/unknown ``kind``, unknown keys or wrong types (naming the key).
    """
    path = Path(path)
    data = load_yaml(path)
    kind = data.get("kind")
    if kind not in SAMPLE_KINDS:
        raise ConfigError(
            f"{path}: 'kind' must be one of {', '.join(SAMPLE_KINDS)}, got {kind!r}"
        )
    try:
        return load_config(SAMPLE_KINDS[kind], data)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None


def _check_counts(n_train: int, n_test: int, dicom_cases: tuple[int, ...]) -> None:
    """Raise ValueError unless the case counts and DICOM case indices make sense."""
    if n_train < 1 or n_test < 0:
        raise ValueError(f"need n_train >= 1 and n_test >= 0, got {n_train} and {n_test}")
    total = n_train + n_test
    if any(not 0 <= i < total for i in dicom_cases):
        raise ValueError(f"dicom_cases must be case indices in 0..{total - 1}, got {list(dicom_cases)}")
