"""The real-scan checks: the scans are found offline, and the references built from them are sane.

Sane means: an adult brain's mask volume, CSF < GM < WM in T1 intensity, class fractions in the ranges
of a healthy adult brain mask, reproducible labels, and files on the scan's own grid.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medseg.data.real_scans import SOURCES, build_real_checks, fit_gmm_1d, locate

HELPERS = Path(__file__).resolve().parents[1] / "models" / "real_scan_helpers.py"


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("real-checks")
    build_real_checks(out)
    return out


def test_every_real_scan_is_installed_and_matches_its_checksum() -> None:
    for name in SOURCES:
        image, mask = locate(name)  # raises RealScanMissing (never skips) when `make setup` was not run
        assert image.is_file() and mask.is_file()


def test_gmm_recovers_three_separated_classes() -> None:
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(m, 0.05, n) for m, n in ((0.3, 2000), (0.65, 5000), (1.0, 4000))])
    means, variances, weights = fit_gmm_1d(values)
    assert np.allclose(means, (0.3, 0.65, 1.0), atol=0.02)
    assert np.allclose(np.sqrt(variances), 0.05, atol=0.01)
    assert np.allclose(weights, (2 / 11, 5 / 11, 4 / 11), atol=0.02)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SOURCES))
def test_reference_is_a_plausible_adult_brain(built: Path, name: str) -> None:
    folder = built / name
    manifest = json.loads((folder / "manifest.json").read_text())
    image_nii, mask_nii, ref_nii = (nib.load(folder / f) for f in ("image.nii.gz", "mask.nii.gz", "reference.nii.gz"))
    image, mask, ref = image_nii.get_fdata(), mask_nii.get_fdata() > 0, np.asarray(ref_nii.dataobj)
    assert image.shape == mask.shape == ref.shape == tuple(manifest["shape"])
    assert np.allclose(image_nii.affine, ref_nii.affine) and np.allclose(image_nii.affine, mask_nii.affine)

    voxel_ml = float(np.prod(manifest["spacing_mm"])) / 1000.0
    assert 1000 <= mask.sum() * voxel_ml <= 1800, mask.sum() * voxel_ml
    assert set(np.unique(ref)) == {0, 1, 2, 3}
    assert np.array_equal(ref > 0, mask)  # every brain voxel is labelled, nothing outside
    fractions = np.bincount(ref[mask], minlength=4)[1:] / mask.sum()
    assert 0.04 <= fractions[0] <= 0.25, fractions  # CSF (tight masks hold little of it)
    assert 0.35 <= fractions[1] <= 0.60, fractions  # GM
    assert 0.28 <= fractions[2] <= 0.50, fractions  # WM
    means = [float(image[ref == k].mean()) for k in (1, 2, 3)]
    assert means[0] < means[1] < means[2], means  # T1: CSF dark, WM bright
    # Outside the mask is dimmer on average than WM: the mask is not a box around the head.
    assert float(image[~mask].mean()) < means[2]


@pytest.mark.slow
def test_reference_is_reproducible(built: Path, tmp_path: Path) -> None:
    name = "itk-kmeans-t1"  # the smaller scan
    again = build_real_checks(tmp_path, (name,))[0]
    first = np.asarray(nib.load(built / name / "reference.nii.gz").dataobj)
    assert np.array_equal(first, np.asarray(nib.load(again.reference).dataobj))


@pytest.mark.slow
def test_load_real_checks_gives_arrays_on_the_scan_grid(built: Path) -> None:
    spec = importlib.util.spec_from_file_location("real_scan_helpers_under_test", HELPERS)
    helpers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(helpers)
    checks = helpers.load_real_checks(built)  # reuses the built files
    assert [c["name"] for c in checks] == list(SOURCES)
    for check in checks:
        assert check["volume"].array.shape == (1, *check["reference"].shape)
        assert check["mask"].dtype == bool and check["reference"].dtype == np.uint8
        assert np.array_equal(check["reference"] > 0, check["mask"])
        assert 1000 <= check["mask_volume_ml"] <= 1800
        assert set(check["fractions"]) == {"csf", "gray_matter", "white_matter"}


def test_the_robex_mask_gains_its_vertex_and_nothing_else(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ROBEX's shipped mask misses the dim top of the brain; the repository's supplement adds it there only."""
    import dataclasses

    from medseg.data import real_scans

    image, mask, affine = real_scans.load_source("robex-t1")
    _, shipped_path = locate("robex-t1")
    shipped = np.asarray(nib.load(shipped_path).dataobj).reshape(mask.shape) > 0
    added = mask & ~shipped
    assert 25.0 < added.sum() * 1.5**3 / 1000 < 32.0  # mL
    superior = affine[:3, :3] @ np.array(np.nonzero(added), dtype=np.float64) + affine[:3, 3:4]
    assert superior[2].min() > 37.0  # only above S 37 mm (below it BET leaks into the skull base)
    # The top slices now hold the visible cortex: at axial slice 126 the mask grew by more than half.
    assert mask[:, :, 126].sum() > 1.5 * shipped[:, :, 126].sum()
    # A supplement that is not the recorded one is refused, never used.
    bad = tmp_path / "robex-t1" / "atlas_mask_vertex_supplement.nii.gz"
    bad.parent.mkdir()
    nib.save(nib.Nifti1Image(np.zeros(mask.shape, np.uint8), affine), bad)
    monkeypatch.setattr(real_scans, "_REPO_COPY", tmp_path)
    with pytest.raises(real_scans.RealScanMissing, match="supplement"):
        real_scans.load_source("robex-t1")
    without = dataclasses.replace(real_scans.SOURCES["robex-t1"], supplement_file="")
    monkeypatch.setitem(real_scans.SOURCES, "robex-t1", without)
    assert real_scans.load_source("robex-t1")[1].sum() < mask.sum()
