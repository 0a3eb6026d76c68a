"""Synthetic CT-like abdominal phantoms in Hounsfield units, with a strong class imbalance.

A slab of an abdomen: elliptic body (subcutaneous and visceral fat, soft tissue), a vertebra
and bowel gas (unlabelled), and three labelled structures of very different sizes:
1 liver-like (large, right anterior), 2 kidney-like (both sides, posterior), 3 lesion-like
(small hypodense spheres inside the liver, well under 1 % of the voxels). Shapes are
ellipsoids bent by smooth random fields, so every seeded case differs. The image is blurred
by the scanner's point spread and gets noise; labels are the sharp truth.

The grid is stored as a raw axial CT is: i towards the patient's left, j posterior, k superior
(``"LPS"`` codes), with CT-like anisotropic voxels. Anatomy is scaled to the field of view.
"""

from __future__ import annotations

import numpy as np

from medseg.data.sample_config import CtPhantomConfig
from medseg.types import LabelVolume, SourceInfo, Volume

CT_CLASSES = ("background", "liver", "kidney", "lesion")
AIR_HU = -1000.0
FAT_HU = -100.0
SOFT_TISSUE_HU = 40.0
GAS_HU = -850.0
TRABECULAR_BONE_HU = 300.0
CORTICAL_BONE_HU = 900.0
HU_LIMITS = (-1024, 3071)  # the 12-bit range CT scanners store


def phantom_affine(config: CtPhantomConfig, rng: np.random.Generator) -> np.ndarray:
    """The case's voxel -> RAS affine: LPS axes, centred near 0 with a random table offset (mm)."""
    spacing = np.array(config.spacing)
    affine = np.diag([-spacing[0], -spacing[1], spacing[2], 1.0])
    centre = (np.array(config.shape) - 1) / 2.0
    offset = rng.uniform(-5.0, 5.0, size=3) * np.array([1.0, 1.0, 4.0])
    affine[:3, 3] = -affine[:3, :3] @ centre + offset
    return affine


def make_ct_phantom(config: CtPhantomConfig, seed: int, index: int) -> tuple[Volume, LabelVolume]:
    """Case ``index`` of the phantom data set, a pure function of (seed, index).

    Returns:
        ``(image, labels)``: image (1, I, J, K) int16 HU, labels (I, J, K) uint8, same grid.
    """
    from scipy import ndimage

    rng = np.random.default_rng([seed, index])
    shape = tuple(config.shape)
    spacing = np.array(config.spacing)
    affine = phantom_affine(config, rng)
    # Voxel centres in body coordinates (mm, RAS axes, origin at the field-of-view centre).
    centre = (np.array(shape) - 1) / 2.0
    i, j, k = np.meshgrid(*(np.arange(n, dtype=np.float32) for n in shape), indexing="ij")
    x = (i - centre[0]) * -spacing[0]
    y = (j - centre[1]) * -spacing[1]
    z = (k - centre[2]) * spacing[2]
    half = np.array(shape) * spacing / 2.0  # half field of view per axis, mm

    def smooth_field(sigma_mm: float) -> np.ndarray:
        """Random field of unit standard deviation, smooth over ``sigma_mm``."""
        field = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32),
                                        sigma=sigma_mm / spacing, mode="wrap")
        return field / max(float(field.std()), 1e-6)

    def blob(cx: float, cy: float, cz: float, ax: float, ay: float, az: float,
             wobble: float, angle: float) -> np.ndarray:
        """Boolean ellipsoid (semi-axes in mm, turned by ``angle`` about z), bent by a smooth field."""
        cos, sin = np.cos(angle), np.sin(angle)
        dx, dy = x - cx, y - cy
        u, v = cos * dx + sin * dy, -sin * dx + cos * dy
        radius = (u / ax) ** 2 + (v / ay) ** 2 + ((z - cz) / az) ** 2
        return radius < (1.0 + wobble * smooth_field(min(ax, ay, az))) ** 2

    hu = np.full(shape, AIR_HU, dtype=np.float32)
    labels = np.zeros(shape, dtype=np.uint8)

    # Body: elliptic cylinder whose size changes slowly along z, with a fat rim.
    body_a = half[0] * rng.uniform(0.78, 0.9)
    body_b = half[1] * rng.uniform(0.75, 0.88)
    taper = 1.0 + 0.06 * np.sin(z / half[2] * np.pi * rng.uniform(0.3, 0.8) + rng.uniform(0, np.pi))
    ellipse = np.sqrt((x / body_a) ** 2 + (y / body_b) ** 2) / taper
    body = ellipse < 1.0
    fat_rim = rng.uniform(0.08, 0.16)
    hu[body] = FAT_HU + rng.normal(0.0, 5.0)
    inner = ellipse < 1.0 - fat_rim
    hu[inner] = SOFT_TISSUE_HU + rng.normal(0.0, 5.0)
    visceral_fat = inner & (smooth_field(6.0) > rng.uniform(0.6, 1.2))
    hu[visceral_fat] = FAT_HU + 10.0

    # Vertebra (unlabelled): a posterior midline cylinder, cortical rim and trabecular core.
    spine_r = body_b * rng.uniform(0.16, 0.2)
    spine_d = np.sqrt(x**2 + (y + body_b * (1.0 - fat_rim) * 0.62) ** 2)
    hu[spine_d < spine_r] = CORTICAL_BONE_HU
    hu[spine_d < spine_r * 0.8] = TRABECULAR_BONE_HU + rng.normal(0.0, 40.0)

    # Liver (1): large, patient's right (+x) and anterior.
    liver_hu = rng.uniform(50.0, 70.0)
    liver = inner & blob(
        cx=body_a * rng.uniform(0.25, 0.4), cy=body_b * rng.uniform(0.0, 0.2), cz=half[2] * rng.uniform(0.0, 0.3),
        ax=body_a * rng.uniform(0.45, 0.55), ay=body_b * rng.uniform(0.5, 0.6), az=half[2] * rng.uniform(0.6, 0.8),
        wobble=0.12, angle=rng.uniform(-0.3, 0.3),
    )
    hu[liver] = liver_hu
    labels[liver] = 1

    # Kidneys (2): medium, both sides of the spine, posterior; contrast-enhanced.
    kidney_hu = rng.uniform(130.0, 180.0)
    for side in (1.0, -1.0):
        kidney = inner & blob(
            cx=side * body_a * rng.uniform(0.4, 0.5), cy=-body_b * rng.uniform(0.35, 0.45),
            cz=half[2] * rng.uniform(-0.4, -0.1),
            ax=body_a * rng.uniform(0.14, 0.18), ay=body_b * rng.uniform(0.18, 0.24),
            az=half[2] * rng.uniform(0.3, 0.4), wobble=0.08, angle=side * rng.uniform(0.2, 0.5),
        )
        hu[kidney] = kidney_hu
        labels[kidney] = 2

    # Bowel gas (unlabelled): a few small pockets, left anterior, outside the organs.
    for _ in range(int(rng.integers(1, 4))):
        gas = inner & (labels == 0) & blob(
            cx=-body_a * rng.uniform(0.1, 0.5), cy=body_b * rng.uniform(0.0, 0.5), cz=rng.uniform(-0.8, 0.8) * half[2],
            ax=rng.uniform(3.0, 7.0), ay=rng.uniform(3.0, 7.0), az=rng.uniform(4.0, 10.0),
            wobble=0.1, angle=0.0,
        )
        hu[gas] = GAS_HU

    # Lesions (3): small hypodense spheres fully inside the liver.
    depth = ndimage.distance_transform_edt(labels == 1, sampling=spacing)
    for _ in range(int(rng.integers(config.lesions[0], config.lesions[1] + 1))):
        radius = rng.uniform(*config.lesion_radius_mm)
        candidates = np.argwhere(depth > radius + 1.0)
        if len(candidates) == 0:
            continue  # liver too thin for this lesion: fewer lesions, never one outside the liver
        ci, cj, ck = candidates[int(rng.integers(len(candidates)))]
        lesion = (labels == 1) & blob(
            cx=float(x[ci, cj, ck]), cy=float(y[ci, cj, ck]), cz=float(z[ci, cj, ck]),
            ax=radius, ay=radius * rng.uniform(0.85, 1.15), az=radius * rng.uniform(0.85, 1.15),
            wobble=0.05, angle=rng.uniform(0, np.pi),
        )
        hu[lesion] = liver_hu - rng.uniform(30.0, 60.0)
        labels[lesion] = 3

    # Scanner: point spread, then noise, then the stored 12-bit range.
    hu = ndimage.gaussian_filter(hu, sigma=config.blur_mm / spacing, mode="nearest")
    hu += rng.normal(0.0, rng.uniform(*config.noise_hu), size=shape).astype(np.float32)
    image = np.clip(np.rint(hu), *HU_LIMITS).astype(np.int16)
    source = SourceInfo(path="", format="memory", modality="CT", description="synthetic CT phantom")
    return (
        Volume(array=image[None], affine=affine, channel_names=("CT",), source=source),
        LabelVolume(array=labels, affine=affine.copy(), class_names=CT_CLASSES),
    )
