"""The MNI template from nilearn's wheel: located without importing nilearn, labelled with sensible fractions."""

from __future__ import annotations

import sys

import numpy as np

from medseg.data.template import TISSUE_CLASSES, locate_mni_template, tissue_template


def test_locate_does_not_import_nilearn() -> None:
    paths = locate_mni_template()
    assert sorted(paths) == ["gm", "t1", "wm"]
    assert all(p.is_file() and p.name.endswith("_converted.nii.gz") for p in paths.values())
    assert "nilearn" not in sys.modules


def test_tissue_template_grid_and_fractions() -> None:
    image, labels = tissue_template(downsample=3, margin_mm=6.0)
    assert image.array.shape[1:] == labels.array.shape == (53, 65, 56)
    assert image.spacing == (3.0, 3.0, 3.0)
    np.testing.assert_allclose(image.affine, labels.affine)
    # Brain box (26, 27, 0)..(171, 208, 155) - 6 mm: first block = 1 mm voxels (20, 21, -6) + 0..2;
    # the template's voxel 0 is at (-98, -134, -72).
    np.testing.assert_allclose(image.affine[:3, 3], [-98 + 21, -134 + 22, -72 - 6 + 1])
    assert image.orientation == "RAS"
    assert labels.class_names == TISSUE_CLASSES
    counts = np.bincount(labels.array.ravel(), minlength=4)
    brain = counts[1:].sum()
    csf, gm, wm = counts[1:] / brain
    assert 0.06 < csf < 0.12 and 0.52 < gm < 0.64 and 0.28 < wm < 0.38
    assert 0.25 < brain / labels.array.size < 0.45
    t1 = image.array[0]
    assert 0.0 <= t1.min() and t1.max() <= 1.0
    # T1 contrast: white matter brighter than gray matter brighter than CSF.
    means = [float(t1[labels.array == c].mean()) for c in (1, 2, 3)]
    assert means[0] < means[1] < means[2]
    assert float(t1[labels.array == 0].max()) < 0.5


def test_tissue_template_is_cached_and_read_only() -> None:
    first = tissue_template(downsample=3, margin_mm=6.0)
    assert tissue_template(downsample=3, margin_mm=6.0) is first
    assert not first[0].array.flags.writeable and not first[1].array.flags.writeable
