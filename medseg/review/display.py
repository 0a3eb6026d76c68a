"""How scans are shown in napari: world axes and the voxel reorientation that serves them.

World convention (the napari viewer's world coordinates): millimetres in DICOM's LPS patient
system, axes in the order ``(z, y, x)`` = (Superior, Posterior, Left). napari slices along
world axis 0 and draws world axis 1 downwards and axis 2 to the right, so the default 2D view
is an axial slice in radiological display: anterior at the top, the patient's right on the
screen's left, the slider moving from inferior to superior.

napari only slices exactly when a layer's affine keeps the sliced axis apart from the shown
ones, so each array is first reoriented (axes permuted and flipped with nibabel, no
interpolation) to the world axes nearest to its own; only a small oblique rotation, if any,
is left in the layer's affine. ``DisplayGrid`` holds that reorientation and its inverse, so
labels edited in napari go back to the source grid voxel for voxel.
"""

from __future__ import annotations

from dataclasses import dataclass

import nibabel.orientations
import numpy as np

from medseg.types import LPS_TO_RAS

# RAS+ (x, y, z) -> world (z_S, y_P, x_L): flip x and y (RAS -> LPS), then reverse the axis order.
RAS_TO_WORLD = np.array(
    [[0.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
) @ LPS_TO_RAS
WORLD_AXES = ("S", "P", "L")


@dataclass(frozen=True, eq=False)
class DisplayGrid:
    """A source grid (I, J, K) seen in napari.

    Attributes:
        source_shape: (I, J, K) of the source arrays.
        orientation: nibabel orientation array (3, 2) taking source axes to display axes.
        affine: (4, 4) display voxel -> world (S, P, L) mm; give it to napari as the layer ``affine``.
    """

    source_shape: tuple[int, int, int]
    orientation: np.ndarray
    affine: np.ndarray

    @property
    def display_shape(self) -> tuple[int, int, int]:
        """Shape of the reoriented (display) arrays."""
        shape = [0, 0, 0]
        for axis, (target, _) in enumerate(self.orientation):
            shape[int(target)] = self.source_shape[axis]
        return tuple(shape)

    def to_display(self, array: np.ndarray) -> np.ndarray:
        """(..., I, J, K) source-grid array -> (..., D0, D1, D2) display array (a view where possible)."""
        leading = array.ndim - 3
        moved = np.moveaxis(array, list(range(leading)), list(range(-leading, 0))) if leading else array
        result = nibabel.orientations.apply_orientation(moved, self.orientation)
        return np.moveaxis(result, list(range(3, 3 + leading)), list(range(leading))) if leading else result

    def to_source(self, array: np.ndarray) -> np.ndarray:
        """(..., D0, D1, D2) display array -> (..., I, J, K) source-grid array (inverse of ``to_display``)."""
        leading = array.ndim - 3
        moved = np.moveaxis(array, list(range(leading)), list(range(-leading, 0))) if leading else array
        identity = np.array([[0, 1], [1, 1], [2, 1]], dtype=float)
        back = nibabel.orientations.ornt_transform(identity, self.orientation)
        result = nibabel.orientations.apply_orientation(moved, back)
        return np.moveaxis(result, list(range(3, 3 + leading)), list(range(leading))) if leading else result

    def display_index(self, source_index: tuple[int, int, int]) -> tuple[int, int, int]:
        """The display voxel holding source voxel ``(i, j, k)``."""
        index = [0, 0, 0]
        for axis, (target, flip) in enumerate(self.orientation):
            value = int(source_index[axis])
            index[int(target)] = self.source_shape[axis] - 1 - value if flip < 0 else value
        return tuple(index)


def world_from_ras(affine: np.ndarray) -> np.ndarray:
    """(4, 4) voxel -> RAS mm affine turned into voxel -> world (S, P, L) mm."""
    return RAS_TO_WORLD @ np.asarray(affine, dtype=float)


def display_grid(affine: np.ndarray, shape: tuple[int, ...]) -> DisplayGrid:
    """The display reorientation of a grid.

    Args:
        affine: (4, 4) voxel (i, j, k) -> RAS+ mm (medseg's convention).
        shape: (I, J, K) (extra leading entries are ignored).

    Returns:
        DisplayGrid whose ``affine`` maps display voxels to world (S, P, L) mm.
    """
    source_shape = tuple(int(s) for s in shape[-3:])
    world = world_from_ras(affine)
    orientation = nibabel.orientations.io_orientation(world)
    reorient = nibabel.orientations.inv_ornt_aff(orientation, source_shape)
    return DisplayGrid(source_shape=source_shape, orientation=orientation, affine=world @ reorient)
