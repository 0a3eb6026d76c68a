"""A smooth multiplicative bias field fitted inside the tissue with N4 (SimpleITK), for the intensity refinement.

MR intensities drift smoothly across the field of view (receive-coil sensitivity). A network trained
with random bias fields tolerates that drift, but the intensity refinement fits one Gaussian per tissue
to the whole scan's intensities, so where the field darkens white matter its voxels look like gray
matter and are handed to it. Measured on the real ROBEX T1 (shipped UNet, skull-stripped and moved):
white matter called gray matter 157 mL against 28 mL the other way; with the field divided out first,
GM/WM Dice 0.797/0.779 -> 0.845/0.842. SPM's unified segmentation and FSL FAST fit the field inside
the same loop as the tissue classes; here N4 (Tustison et al. 2010, ITK's implementation) is fitted
once inside the network's tissue, which the refinement then models without the drift.

The fit runs on the scan shrunk to about ``SHRINK_MM`` voxels (the field is smooth: 4 fitting levels,
final control grid 11 points per axis), single-threaded so that the same scan gives the same field.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import SimpleITK as sitk

# Voxel size (mm) the fit runs at, and N4's iterations per fitting level (4 levels: 4 -> 11 control points).
SHRINK_MM = 8.0
ITERATIONS = (50, 50, 50, 50)
# Fewer fitting voxels than this (after shrinking): no field is fitted.
MIN_FIT_VOXELS = 500
BIAS_FIELDS = ("none", "n4")


def to_sitk(array: np.ndarray, spacing: Sequence[float]) -> sitk.Image:
    """(I, J, K) numpy -> SimpleITK image (which indexes x = I fastest) with the given spacing."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(np.transpose(array, (2, 1, 0))))
    image.SetSpacing(tuple(float(s) for s in spacing))
    return image


def shrink_factors(spacing: Sequence[float], shrink_mm: float = SHRINK_MM) -> tuple[int, ...]:
    """Integer shrink per axis that brings voxels of ``spacing`` mm to about ``shrink_mm``."""
    return tuple(max(1, int(round(shrink_mm / float(s)))) for s in spacing)


def n4_log_bias_field(
    image: np.ndarray, mask: np.ndarray, spacing: Sequence[float], *, shrink: Sequence[int] | None = None,
    iterations: Sequence[int] = ITERATIONS,
) -> np.ndarray | None:
    """The log of N4's multiplicative bias field, fitted inside ``mask``: divide ``image`` by its exp.

    Args:
        image: (I, J, K) intensities, positive inside ``mask`` (N4 fits log intensities).
        mask: (I, J, K) bool, the voxels the field is fitted to.
        spacing: voxel size (mm) along I, J, K.
        shrink: shrink factor per axis for the fit (default: ``shrink_factors(spacing)``).
        iterations: N4 iterations per fitting level.

    Returns:
        (I, J, K) float32 log field on ``image``'s grid (smooth, defined everywhere), or None when the
        shrunk mask holds fewer than ``MIN_FIT_VOXELS`` voxels.
    """
    if image.shape != mask.shape:
        raise ValueError(f"bias field: image {image.shape} and mask {mask.shape} differ in shape")
    factors = tuple(shrink) if shrink is not None else shrink_factors(spacing)
    itk_image = to_sitk(image.astype(np.float32, copy=False), spacing)
    small_image = sitk.Shrink(itk_image, [int(f) for f in factors])
    small_mask = sitk.Shrink(to_sitk(mask.astype(np.uint8), spacing), [int(f) for f in factors])
    if int(sitk.GetArrayViewFromImage(small_mask).sum()) < MIN_FIT_VOXELS:
        return None
    corrector = sitk.N4BiasFieldCorrectionImageFilter()
    corrector.SetMaximumNumberOfIterations([int(n) for n in iterations])
    corrector.SetNumberOfThreads(1)  # the same field for the same scan, on any machine
    corrector.Execute(small_image, small_mask)
    log_field = sitk.GetArrayFromImage(corrector.GetLogBiasFieldAsImage(itk_image))
    return np.transpose(log_field, (2, 1, 0)).astype(np.float32)


def check_bias_field(name: object) -> str:
    """``name`` if it is one of ``BIAS_FIELDS``; ValueError otherwise."""
    if name not in BIAS_FIELDS:
        raise ValueError(f"intensity_refinement.bias_field must be one of {', '.join(BIAS_FIELDS)}, got {name!r}")
    return str(name)
