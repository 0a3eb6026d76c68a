"""CT phantom: Hounsfield ranges, LPS CT grid, real class imbalance, lesions inside the liver."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel
import numpy as np
from scipy import ndimage

from medseg.data.ct_phantom import CT_CLASSES, HU_LIMITS, make_ct_phantom
from medseg.data.decathlon import read_datalist
from medseg.data.sample_config import CtPhantomConfig, load_sample_definition

CONFIG = CtPhantomConfig(shape=(80, 64, 24), spacing=(0.8, 0.8, 2.5), n_train=2, n_test=0)


def test_same_seed_same_case_other_seed_other_case() -> None:
    image, labels = make_ct_phantom(CONFIG, seed=3, index=1)
    again, again_labels = make_ct_phantom(CONFIG, seed=3, index=1)
    np.testing.assert_array_equal(image.array, again.array)
    np.testing.assert_array_equal(labels.array, again_labels.array)
    np.testing.assert_array_equal(image.affine, again.affine)
    other, other_labels = make_ct_phantom(CONFIG, seed=3, index=2)
    assert (labels.array != other_labels.array).mean() > 0.01
    assert not np.array_equal(image.array, other.array)


def test_grid_is_an_axial_lps_ct_grid() -> None:
    image, labels = make_ct_phantom(CONFIG, seed=0, index=0)
    assert image.array.shape == (1, 80, 64, 24) and labels.array.shape == (80, 64, 24)
    assert image.orientation == "LPS"
    np.testing.assert_allclose(image.spacing, (0.8, 0.8, 2.5))
    np.testing.assert_array_equal(image.affine, labels.affine)
    centre = image.affine @ [39.5, 31.5, 11.5, 1.0]
    assert np.all(np.abs(centre[:3]) <= [5.0, 5.0, 20.0])  # centred, plus the random table offset
    assert image.channel_names == ("CT",) and labels.class_names == CT_CLASSES


def test_hounsfield_units_per_tissue() -> None:
    for index in range(3):
        image, labels = make_ct_phantom(CONFIG, seed=5, index=index)
        hu, lab = image.array[0], labels.array
        assert image.array.dtype == np.int16
        assert HU_LIMITS[0] <= hu.min() and hu.max() <= HU_LIMITS[1]
        corner = hu[:4, :4, :]  # outside the body: air
        assert abs(float(np.median(corner)) + 1000.0) < 15.0
        core = [ndimage.binary_erosion(lab == c, iterations=1) for c in (1, 2)]
        liver, kidney = (float(np.median(hu[m])) for m in core)
        assert 40.0 < liver < 80.0
        assert 110.0 < kidney < 200.0
        lesion = float(np.median(hu[lab == 3]))
        assert lesion < liver - 15.0
        assert hu.max() > 250.0  # bone is there, unlabelled
        assert (hu[lab == 0] < -50).mean() > 0.3  # air and fat outside the organs


def test_class_imbalance_and_lesions_inside_liver() -> None:
    image, labels = make_ct_phantom(CtPhantomConfig(), seed=20240612, index=0)
    fractions = np.bincount(labels.array.ravel(), minlength=4) / labels.array.size
    assert 0.03 < fractions[1] < 0.2  # liver: large
    assert 0.003 < fractions[2] < 0.03  # kidneys: medium
    assert 0.0 < fractions[3] < 0.005  # lesions: small
    assert fractions[3] < fractions[2] / 3 < fractions[1] / 9
    grown = ndimage.binary_dilation(labels.array == 3)
    assert np.all(np.isin(labels.array[grown], (1, 3)))


def test_built_ct_dataset(ct_dataset: Path, ct_definition: Path) -> None:
    config = load_sample_definition(ct_definition)
    datalist = read_datalist(ct_dataset)
    content = json.loads(ct_dataset.read_text())
    assert content["modality"] == {"0": "CT"}
    assert datalist.labels == CT_CLASSES
    assert [c.patient_id for c in datalist.training] == ["ct_000", "ct_001"]
    assert [c.patient_id for c in datalist.test] == ["ct_002"]
    all_labels = []
    for case in datalist.training + datalist.test:
        hu_image, label_image = nibabel.load(case.images[0]), nibabel.load(case.label)
        hu, lab = np.asarray(hu_image.dataobj), np.asarray(label_image.dataobj)
        affine, label_affine = hu_image.affine, label_image.affine
        assert hu.dtype == np.int16 and lab.dtype == np.uint8
        assert hu.shape == lab.shape == config.shape
        np.testing.assert_array_equal(affine, label_affine)
        np.testing.assert_allclose(np.linalg.norm(affine[:3, :3], axis=0), config.spacing)
        all_labels.append(lab)
    fractions = np.bincount(np.concatenate([a.ravel() for a in all_labels]), minlength=4)
    fractions = fractions / fractions.sum()
    assert np.all(fractions > 0)
    assert fractions.min() < 0.01  # the lesions: a real imbalance
