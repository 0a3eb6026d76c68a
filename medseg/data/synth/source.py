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


@functools.lru_cache(maxsize=1)
def load_synth_source() -> SynthSource:
    """Build (once per process) the padded 1 mm source from the template in nilearn's wheel."""
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
