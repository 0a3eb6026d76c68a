"""Write label maps onto their scan's grid, atomically: NIfTI (nibabel), NRRD and MetaImage (SimpleITK).

The label array is (I, J, K) on the reference scan's grid; the file gets the reference's
affine (voxel -> RAS+ mm; converted to LPS for NRRD/MetaImage), so reading it back gives
the same affine and voxels. Nothing identifying the patient is written: the NIfTI
``descrip`` is ``"medseg labels"``, ``aux_file`` is empty and there are no extensions.

NIfTI geometry: qform and sform are both the reference's affine, with the reference's
codes when it was a NIfTI (else 1, scanner, as dcm2niix and ITK write). One exception:
when the reference NIfTI's own qform and sform disagree, both are copied as they are,
so the labels overlay the scan in viewers that prefer the sform (nibabel, FSL) and in
those that prefer the qform (ITK: 3D Slicer, ITK-SNAP) alike.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk

from medseg.errors import InputError, OutputError
from medseg.io.atomic import atomic_path, full_suffix, output_error
from medseg.io.volume_checks import GRID_TOLERANCE_MM, check_orthogonal, grid_difference
from medseg.types import LPS_TO_RAS, LabelVolume, Volume

NIFTI_OUTPUT = (".nii", ".nii.gz")
SITK_OUTPUT = (".nrrd", ".mha")


def write_labels(labels: LabelVolume | np.ndarray, path: str | Path, reference: Volume) -> Path:
    """Write a label map on ``reference``'s grid to ``path`` (.nii, .nii.gz, .nrrd or .mha).

    Args:
        labels: (I, J, K) integer labels (or bool), as a LabelVolume (whose affine must
            match the reference's) or a plain array.
        path: the output file; its folder is created if missing. Written atomically.
        reference: the scan the labels belong to (its affine and spatial shape define the grid).

    Returns:
        The path written.

    Raises:
        InputError: labels not on the reference's grid, not integers, or negative.
        OutputError: unsupported suffix, or the file cannot be written (nothing is left behind).
    """
    path = Path(path)
    array = np.asarray(labels.array if isinstance(labels, LabelVolume) else labels)
    reference_name = reference.source.path or "the reference scan (in memory)"
    if array.shape != reference.spatial_shape:
        raise InputError(
            path,
            f"label shape {array.shape} does not match the grid {reference.spatial_shape} of {reference_name}",
            "labels must be on their scan's grid: resample them onto it (nearest neighbour) first",
        )
    if isinstance(labels, LabelVolume):
        difference = grid_difference(reference.affine, reference.spatial_shape, labels.affine, array.shape)
        if difference:
            raise InputError(
                path,
                f"the labels' affine does not match the grid of {reference_name} ({difference})",
                "labels must be on their scan's grid: resample them onto it (nearest neighbour) first",
            )
    array = _storage_array(path, array)
    check_orthogonal(reference_name, reference.affine, "reference affine")
    suffix = full_suffix(path).lower()
    if suffix not in NIFTI_OUTPUT + SITK_OUTPUT:
        raise OutputError(
            f"{path}: cannot write labels as '{suffix or path.name}' "
            f"(hint: use one of {', '.join(NIFTI_OUTPUT + SITK_OUTPUT)}; .nhdr/.mhd are not "
            "offered because their two files cannot be replaced atomically)"
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise output_error(path, error) from error
    if suffix in NIFTI_OUTPUT:
        _write_nifti(array, path, reference)
    else:
        _write_sitk(array, path, reference.affine)
    return path


def _storage_array(path: Path, array: np.ndarray) -> np.ndarray:
    """The labels in the smallest type that holds them: uint8, uint16 or int32."""
    if array.dtype == np.bool_:
        return array.astype(np.uint8)
    if not np.issubdtype(array.dtype, np.integer):
        raise InputError(path, f"labels must be integers, got {array.dtype}", "take the argmax or round first")
    if array.size and array.min() < 0:
        raise InputError(path, f"negative label value {array.min()}", "labels are 0 (background) and 1..N")
    high = int(array.max()) if array.size else 0
    for candidate in (np.uint8, np.uint16, np.int32):
        if high <= np.iinfo(candidate).max:
            return np.ascontiguousarray(array, dtype=candidate)
    raise InputError(path, f"label value {high} does not fit in int32", "labels are 0 (background) and 1..N")


def _nifti_geometry(reference: Volume) -> tuple[np.ndarray, int, np.ndarray, int]:
    """(qform, qform_code, sform, sform_code) for a label file on ``reference``'s grid."""
    affine = np.asarray(reference.affine, dtype=np.float64)
    facts = reference.source.header
    if reference.source.format != "nifti" or "qform_code" not in facts:
        return affine, 1, affine, 1
    qform_code, sform_code = int(facts["qform_code"]), int(facts["sform_code"])
    qform = np.asarray(facts["qform"], dtype=np.float64)
    sform = np.asarray(facts["sform"], dtype=np.float64)
    disagreement = facts.get("qform_sform_max_diff_mm") or 0.0
    untouched = facts.get("affine_source") == "sform" and np.allclose(sform, affine, atol=1e-6)
    if qform_code > 0 and sform_code > 0 and disagreement > GRID_TOLERANCE_MM and untouched:
        return qform, qform_code, affine, sform_code
    return affine, qform_code or sform_code or 1, affine, sform_code or qform_code or 1


def _write_nifti(array: np.ndarray, path: Path, reference: Volume) -> None:
    """NIfTI-1 with the reference's geometry, intent 'label', and no identifying text."""
    image = nib.Nifti1Image(array, affine=None)
    header = image.header
    header.set_data_dtype(array.dtype)
    qform, qform_code, sform, sform_code = _nifti_geometry(reference)
    image.set_sform(sform, code=sform_code)
    image.set_qform(qform, code=qform_code)
    time_unit = reference.source.header.get("time_unit", "unknown") if reference.source.format == "nifti" else "unknown"
    header.set_xyzt_units("mm", time_unit)
    header.set_intent("label")
    header["descrip"] = b"medseg labels"
    header["aux_file"] = b""
    header["cal_min"], header["cal_max"] = 0, float(array.max()) if array.size else 0
    header.set_slope_inter(1.0, 0.0)
    with atomic_path(path) as temp:
        nib.save(image, temp)


def _write_sitk(array: np.ndarray, path: Path, affine: np.ndarray) -> None:
    """NRRD or MetaImage (compressed), geometry converted from RAS to ITK's LPS."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(array.transpose(2, 1, 0)))  # ITK wants (z, y, x)
    lps = LPS_TO_RAS @ np.asarray(affine, dtype=np.float64)
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    image.SetSpacing([float(s) for s in spacing])
    image.SetOrigin([float(v) for v in lps[:3, 3]])
    image.SetDirection([float(v) for v in (lps[:3, :3] / spacing).ravel()])  # row-major 3x3
    with atomic_path(path) as temp:
        try:
            sitk.WriteImage(image, str(temp), useCompression=True)
        except RuntimeError as error:
            raise OutputError(f"{path}: cannot write ({str(error).strip().splitlines()[-1]}) "
                              "(hint: check the output folder and the free disk space)") from error
