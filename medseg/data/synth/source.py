"""The generator's source: the MNI template's 1 mm tissue maps plus distance maps, on a padded grid.

The template is skull-stripped, so the grid is padded (more below, for the neck) and two
distance maps let the generator draw a head around the brain: ``dist_out`` (mm from the
brain mask, 0 inside) and ``depth_in`` (mm from the brain surface, 0 outside), the latter
splitting ventricles from sulcal CSF and deep from cortical gray matter.
Channels (``SOURCE_CHANNELS``): CSF, GM, WM probabilities (zero outside the brain mask;
CSF = 1 - GM - WM inside it), the T1 template in [0, 1], ``dist_out``, ``depth_in``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

from medseg.data.template import locate_mni_template

SOURCE_CHANNELS = ("csf", "gm", "wm", "t1", "dist_out", "depth_in")
# Padding (voxels = mm) beyond the template's grid: (low, high) per RAS axis; the neck hangs below.
PADDING = ((24, 24), (30, 30), (70, 24))


@dataclass(frozen=True)
class SynthSource:
    """The 1 mm channels the generator samples.

    Attributes:
        channels: (6, I, J, K) float32 tensor, ``SOURCE_CHANNELS`` in order, RAS axes, 1 mm.
        origin_mm: RAS position of voxel (0, 0, 0) (the grid is axis-aligned, 1 mm).
        brain_centre_mm: centre of the brain mask's bounding box, RAS mm.
    """

    channels: torch.Tensor
    origin_mm: tuple[float, float, float]
    brain_centre_mm: tuple[float, float, float]

    @property
    def shape(self) -> tuple[int, int, int]:
        """(I, J, K) of the source grid."""
        return tuple(int(n) for n in self.channels.shape[1:])  # type: ignore[return-value]


def move_gm_wm_boundary(gm: np.ndarray, wm: np.ndarray, boundary: float) -> tuple[np.ndarray, np.ndarray]:
    """Re-share each voxel's tissue (GM + WM) so that a white-matter share of ``boundary`` becomes 0.5.

    The share f = WM / (GM + WM) is mapped piecewise linearly (0 -> 0, ``boundary`` -> 0.5, 1 -> 1),
    so the argmax boundary moves to the template's ``boundary`` iso-surface while the partial-volume
    band keeps its width and GM + WM is unchanged. ``boundary`` 0.5 returns the maps as they are.

    Args:
        gm, wm: (I, J, K) probabilities, GM + WM <= 1.
        boundary: the white-matter share that becomes the new boundary, in (0, 1).
    Returns:
        (gm, wm) of the same shape.
    """
    if boundary == 0.5:
        return gm, wm
    tissue = gm + wm
    share = np.divide(wm, tissue, out=np.zeros_like(wm), where=tissue > 0)
    moved = np.where(share < boundary, share * (0.5 / boundary),
                     0.5 + (share - boundary) * (0.5 / (1.0 - boundary))).astype(wm.dtype)
    return tissue * (1.0 - moved), tissue * moved


def load_synth_source(gm_wm_boundary: float = 0.5) -> SynthSource:
    """The padded 1 mm source from the template in nilearn's wheel, built once per process and boundary.

    Args:
        gm_wm_boundary: see ``move_gm_wm_boundary`` (``SynthConfig.gm_wm_boundary``).
    """
    return _build_synth_source(float(gm_wm_boundary))


@functools.lru_cache(maxsize=2)
def _build_synth_source(gm_wm_boundary: float) -> SynthSource:
    import nibabel  # local: keep `import medseg.data` light
    from scipy import ndimage

    paths = locate_mni_template()
    t1_image = nibabel.load(paths["t1"])
    affine = t1_image.affine
    t1 = np.asarray(t1_image.dataobj, dtype=np.float32) / 255.0
    gm = np.asarray(nibabel.load(paths["gm"]).dataobj, dtype=np.float32) / 255.0
    wm = np.asarray(nibabel.load(paths["wm"]).dataobj, dtype=np.float32) / 255.0
    mask = ndimage.binary_fill_holes(t1 > 0)
    gm, wm = gm * mask, wm * mask
    total = gm + wm
    over = total > 1.0
    gm[over], wm[over] = gm[over] / total[over], wm[over] / total[over]
    csf = np.clip(1.0 - gm - wm, 0.0, 1.0) * mask
    gm, wm = move_gm_wm_boundary(gm, wm, gm_wm_boundary)

    pad = PADDING
    padded_mask = np.pad(mask, pad)
    dist_out = ndimage.distance_transform_edt(~padded_mask).astype(np.float32)
    depth_in = ndimage.distance_transform_edt(padded_mask).astype(np.float32)
    channels = np.stack([np.pad(a, pad) for a in (csf, gm, wm, t1 * mask)] + [dist_out, depth_in])
    origin = affine[:3, 3] - np.array([low for low, _ in pad], dtype=np.float64)
    voxels = np.argwhere(padded_mask)
    centre = origin + (voxels.min(axis=0) + voxels.max(axis=0)) / 2.0
    return SynthSource(
        channels=torch.from_numpy(np.ascontiguousarray(channels)),
        origin_mm=tuple(float(v) for v in origin),
        brain_centre_mm=tuple(float(v) for v in centre),
    )


def source_for_contrast(contrast: str, gm_wm_boundary: float) -> SynthSource:
    """The source one volume is drawn from: ``"template"`` volumes keep the template's own boundary (0.5).

    Their image is the template T1 itself, whose intensities put the gray/white boundary at a
    white-matter share of 0.5, so their labels must too; every other contrast is drawn from the
    tissue maps, image and labels alike, and takes ``gm_wm_boundary``.
    """
    return load_synth_source(0.5 if contrast == "template" else gm_wm_boundary)
