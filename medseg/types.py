"""Volume and LabelVolume: arrays with their exact place in patient space.

Axis convention, used everywhere in medseg (the same as nibabel and MONAI):
the spatial array axes are the voxel indices ``(i, j, k)`` and
``affine @ [i, j, k, 1]`` is the voxel centre in RAS+ millimetres
(+x towards the patient's Right, +y Anterior, +z Superior). DICOM's LPS+
coordinates are converted once, in ``medseg.io``, with ``LPS_TO_RAS``.
For a DICOM series the array layout is that of dcm2niix (rows stored
bottom-up, slices ascending along the slice normal), so affines agree with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def spacing_from_affine(affine: np.ndarray) -> tuple[float, float, float]:
    """Voxel size in mm along i, j, k: the lengths of the affine's first three columns."""
    return tuple(float(v) for v in np.linalg.norm(np.asarray(affine)[:3, :3], axis=0))


def orientation_codes(affine: np.ndarray) -> str:
    """Three-letter axis codes (e.g. ``"LAS"``): where each of i, j, k points, in RAS terms."""
    import nibabel.orientations  # local: nibabel is heavy to import for callers that only hold arrays

    return "".join(nibabel.orientations.aff2axcodes(np.asarray(affine)))


@dataclass(frozen=True)
class SourceInfo:
    """Where a volume came from and what is needed to write results back onto it.

    Attributes:
        path: the file or series folder that was read.
        format: ``"nifti"``, ``"nrrd"``, ``"mha"``, ``"dicom-series"``, ``"dicom-enhanced"``, ...
        modality: DICOM Modality (``"CT"``, ``"MR"``...) or ``""`` when unknown.
        description: series description or file name; never a patient identifier.
        files: for a DICOM series, the slice files in k order (k = 0 first).
        dicom: DICOM identifiers needed to reference the source (StudyInstanceUID,
            SeriesInstanceUID, FrameOfReferenceUID, SOPInstanceUIDs in k order,
            flip_rows). Empty for other formats.
        header: format-specific header facts (e.g. NIfTI qform/sform codes) kept for writing.
    """

    path: str
    format: str
    modality: str = ""
    description: str = ""
    files: tuple[str, ...] = ()
    dicom: dict[str, Any] = field(default_factory=dict)
    header: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class Volume:
    """An image: one or more co-registered channels on one grid.

    Attributes:
        array: shape (C, I, J, K); intensities in the source's units (HU for CT).
        affine: shape (4, 4), voxel (i, j, k, 1) -> RAS+ mm.
        channel_names: one name per channel (modalities, e.g. ``("T1", "FLAIR")``).
        source: provenance and the geometry needed to write results back.
    """

    array: np.ndarray
    affine: np.ndarray
    channel_names: tuple[str, ...] = ("image",)
    source: SourceInfo = field(default_factory=lambda: SourceInfo(path="", format="memory"))

    def __post_init__(self) -> None:
        if self.array.ndim != 4:
            raise ValueError(f"Volume.array must be (C, I, J, K), got shape {self.array.shape}")
        if np.asarray(self.affine).shape != (4, 4):
            raise ValueError(f"Volume.affine must be 4x4, got {np.asarray(self.affine).shape}")
        if len(self.channel_names) != self.array.shape[0]:
            raise ValueError(
                f"{len(self.channel_names)} channel names for {self.array.shape[0]} channels"
            )

    @property
    def spatial_shape(self) -> tuple[int, int, int]:
        """(I, J, K)."""
        return tuple(int(s) for s in self.array.shape[1:])

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along i, j, k."""
        return spacing_from_affine(self.affine)

    @property
    def orientation(self) -> str:
        """Axis codes such as ``"RAS"`` or ``"LPS"``."""
        return orientation_codes(self.affine)

    def with_array(self, array: np.ndarray, channel_names: tuple[str, ...] | None = None) -> Volume:
        """A copy on the same grid with another (C, I, J, K) array."""
        return replace(self, array=array, channel_names=channel_names or self.channel_names)


@dataclass(frozen=True, eq=False)
class LabelVolume:
    """A label map on a grid: 0 is background, 1..N the classes.

    Attributes:
        array: shape (I, J, K), integer labels.
        affine: shape (4, 4), voxel (i, j, k, 1) -> RAS+ mm.
        class_names: names of labels 0..N (index = label value); may be empty.
    """

    array: np.ndarray
    affine: np.ndarray
    class_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.array.ndim != 3:
            raise ValueError(f"LabelVolume.array must be (I, J, K), got shape {self.array.shape}")
        if not np.issubdtype(self.array.dtype, np.integer):
            raise ValueError(f"LabelVolume.array must hold integers, got {self.array.dtype}")

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along i, j, k."""
        return spacing_from_affine(self.affine)


def source_name(path: str | Path) -> str:
    """The file or folder name without medical-image extensions (``a.nii.gz`` -> ``a``)."""
    name = Path(path).name
    for suffix in (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd", ".dcm"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name
