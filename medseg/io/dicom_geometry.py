"""DICOM plane geometry <-> voxel-to-RAS affine, in dcm2niix's array layout.

The layout (shared by the reader and the writer, and by the types module):

* ``i`` is the DICOM column index ``c`` (along the row direction cosine,
  ``ImageOrientationPatient[:3]``), step ``PixelSpacing[1]``;
* ``j`` is the DICOM row index stored bottom-up, ``j = Rows - 1 - r`` (dcm2niix
  ``nii_flipY``, its default ``-y`` behaviour), step ``PixelSpacing[0]`` along
  minus the column direction cosine ``ImageOrientationPatient[3:]``;
* ``k`` counts slices ascending along the slice normal
  ``n = cross(row_cosine, column_cosine)``.

With DICOM's ``P(r, c) = IPP + c * PixelSpacing[1] * row_cosine + r * PixelSpacing[0] * column_cosine``
(LPS mm), the LPS affine is ``[row_cosine*dc, -column_cosine*dr, n*ds, IPP_first + (Rows-1)*dr*column_cosine]``
and the RAS affine is ``LPS_TO_RAS @`` that. Its determinant is always negative
(e.g. axial slices give ``LAS``), as with dcm2niix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medseg.types import LPS_TO_RAS

# A volume whose k axis deviates more than this (unit-vector difference) from
# +/- the slice normal cannot be written as a stack of parallel DICOM slices.
DIRECTION_TOLERANCE = 1e-4


def affine_from_plane(
    row_cosine: np.ndarray,
    column_cosine: np.ndarray,
    pixel_spacing: tuple[float, float],
    slice_spacing: float,
    first_position: np.ndarray,
    rows: int,
) -> np.ndarray:
    """The voxel -> RAS affine of a slice stack, as dcm2niix writes it.

    Args:
        row_cosine: shape (3,), unit LPS direction along a row (``IOP[:3]``).
        column_cosine: shape (3,), unit LPS direction down a column (``IOP[3:]``).
        pixel_spacing: DICOM ``PixelSpacing`` (row spacing, column spacing) in mm.
        slice_spacing: distance between consecutive slices along the normal, mm.
        first_position: shape (3,), ``ImagePositionPatient`` (LPS mm) of slice k = 0.
        rows: DICOM ``Rows`` (the number of j values).

    Returns:
        shape (4, 4), voxel (i, j, k, 1) -> RAS+ mm.
    """
    row_cosine = np.asarray(row_cosine, dtype=float)
    column_cosine = np.asarray(column_cosine, dtype=float)
    row_spacing, column_spacing = (float(v) for v in pixel_spacing)
    normal = np.cross(row_cosine, column_cosine)
    lps = np.eye(4)
    lps[:3, 0] = row_cosine * column_spacing
    lps[:3, 1] = -column_cosine * row_spacing  # nii_flipY: rows stored bottom-up
    lps[:3, 2] = normal * float(slice_spacing)
    lps[:3, 3] = np.asarray(first_position, dtype=float) + (rows - 1) * row_spacing * column_cosine
    return LPS_TO_RAS @ lps


@dataclass(frozen=True)
class PlaneGeometry:
    """The DICOM plane attributes that reproduce an affine (see ``plane_from_affine``).

    Attributes:
        row_cosine: shape (3,), LPS unit vector (``IOP[:3]``).
        column_cosine: shape (3,), LPS unit vector (``IOP[3:]``).
        pixel_spacing: (row spacing, column spacing) in mm, DICOM order.
        slice_spacing: mm between slices along the normal.
        positions: shape (K, 3), ``ImagePositionPatient`` of each written slice (LPS mm).
        reverse_k: True when the volume's k axis points against the slice normal,
            so slices are written in reverse k order (read back, k is reversed).
    """

    row_cosine: np.ndarray
    column_cosine: np.ndarray
    pixel_spacing: tuple[float, float]
    slice_spacing: float
    positions: np.ndarray
    reverse_k: bool


def plane_from_affine(affine: np.ndarray, shape: tuple[int, int, int]) -> PlaneGeometry:
    """Invert ``affine_from_plane``: DICOM plane attributes for a volume on ``affine``.

    Args:
        affine: shape (4, 4), voxel -> RAS+ mm; its columns must be orthogonal.
        shape: (I, J, K) of the volume.

    Returns:
        The plane geometry; when the k axis runs against ``cross(row, column)``
        (affines with a positive determinant, e.g. ``RAS``), ``reverse_k`` is set
        and ``positions`` are those of the slices in reversed k order.

    Raises:
        ValueError: the affine is singular or sheared (no stack of parallel slices fits it).
    """
    lps = LPS_TO_RAS @ np.asarray(affine, dtype=float)
    columns = lps[:3, :3]
    spacing = np.linalg.norm(columns, axis=0)
    if np.any(spacing <= 0):
        raise ValueError(f"affine has a zero-length axis: {spacing}")
    units = columns / spacing
    row_cosine = units[:, 0]
    column_cosine = -units[:, 1]
    normal = np.cross(row_cosine, column_cosine)
    if abs(float(row_cosine @ column_cosine)) > DIRECTION_TOLERANCE:
        raise ValueError("affine i and j axes are not orthogonal; DICOM planes need orthogonal rows and columns")
    alignment = float(normal @ units[:, 2])
    if abs(abs(alignment) - 1.0) > DIRECTION_TOLERANCE:
        raise ValueError("affine k axis is not perpendicular to the i-j plane (sheared); cannot write DICOM slices")
    reverse_k = alignment < 0
    n_rows, n_slices = shape[1], shape[2]
    ks = np.arange(n_slices)[::-1] if reverse_k else np.arange(n_slices)
    # DICOM pixel (r=0, c=0) of slice k is voxel (i=0, j=Rows-1, k).
    voxels = np.stack([np.zeros(n_slices), np.full(n_slices, n_rows - 1.0), ks, np.ones(n_slices)])
    positions = (lps @ voxels)[:3].T
    return PlaneGeometry(
        row_cosine=row_cosine,
        column_cosine=column_cosine,
        pixel_spacing=(float(spacing[1]), float(spacing[0])),
        slice_spacing=float(spacing[2]),
        positions=positions,
        reverse_k=reverse_k,
    )
