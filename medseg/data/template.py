"""The MNI ICBM152 2009a template shipped in nilearn's wheel, turned into a tissue-labelled volume.

nilearn is only *located* (``importlib.util.find_spec``), never imported: importing it is slow
and pulls in scikit-learn. Its data folder holds the 1 mm skull-stripped T1 template and
gray-/white-matter probability maps (uint8, 0..255), 197 x 233 x 189 voxels, RAS axes.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np

from medseg.errors import InputError
from medseg.types import LabelVolume, SourceInfo, Volume

TEMPLATE_FILES = {
    "t1": "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
    "gm": "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "wm": "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
}
TISSUE_CLASSES = ("background", "CSF", "gray matter", "white matter")
_INSTALL_HINT = "install nilearn (pip install nilearn), whose wheel ships the template"


def locate_mni_template() -> dict[str, Path]:
    """Paths of the template's T1, GM and WM files inside the installed nilearn package.

    Returns:
        ``{"t1": Path, "gm": Path, "wm": Path}``.

    Raises:
        InputError: nilearn is not installed or a file is missing.
    """
    spec = importlib.util.find_spec("nilearn")
    if spec is None or not spec.submodule_search_locations:
        raise InputError("nilearn", "the nilearn package is not installed", _INSTALL_HINT)
    folder = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"
    paths = {key: folder / name for key, name in TEMPLATE_FILES.items()}
    for path in paths.values():
        if not path.is_file():
            raise InputError(path, "the MNI ICBM152 template file is missing", _INSTALL_HINT)
    return paths


@functools.lru_cache(maxsize=2)
def tissue_template(downsample: int = 2, margin_mm: float = 10.0) -> tuple[Volume, LabelVolume]:
    """The template cropped around the brain, block-averaged, with tissue labels (cached, read-only arrays).

    Labels: 0 background (outside the brain mask), 1 CSF, 2 gray matter, 3 white matter.
    Inside the mask, the label is the argmax of (CSF, GM, WM) probabilities where
    CSF = 1 - GM - WM (the mask is the template's non-zero T1 with holes filled, so
    ventricles and sulcal CSF are inside it). Labels are derived after averaging the
    probabilities on the coarse grid, which is more faithful than subsampling 1 mm labels.

    Args:
        downsample: integer block size (2 -> 2 mm voxels).
        margin_mm: empty border kept around the brain (zero-padded where the template ends).

    Returns:
        ``(image, labels)``: image array (1, I, J, K) float32 in [0, 1] (T1), labels (I, J, K)
        uint8, both on the same grid (affine voxel -> RAS mm).
    """
    import nibabel  # local: keep `import medseg.data` light
    from scipy import ndimage

    paths = locate_mni_template()
    images = {key: nibabel.load(path) for key, path in paths.items()}
    affine = images["t1"].affine
    maps = {}
    for key, image in images.items():
        if image.shape != images["t1"].shape or not np.allclose(image.affine, affine):
            raise InputError(paths[key], "is not on the T1 template's grid", _INSTALL_HINT)
        maps[key] = np.asarray(image.dataobj, dtype=np.float32) / 255.0
    mask = ndimage.binary_fill_holes(maps["t1"] > 0)

    # Crop to the brain's bounding box + margin, padding where the template ends
    # (the brainstem touches its inferior face), to a multiple of the block size.
    voxels = np.argwhere(mask)
    margin = int(np.ceil(margin_mm))
    low = voxels.min(axis=0) - margin
    size = voxels.max(axis=0) + 1 + margin - low
    size += (-size) % downsample

    def crop_and_average(array: np.ndarray) -> np.ndarray:
        padded = np.zeros(tuple(size), dtype=np.float32)
        src_low = np.maximum(low, 0)
        src_high = np.minimum(low + size, array.shape)
        dst = tuple(slice(a - o, b - o) for a, b, o in zip(src_low, src_high, low, strict=True))
        padded[dst] = array[tuple(slice(a, b) for a, b in zip(src_low, src_high, strict=True))]
        # Block averaging: an exact area-weighted downsampling for an integer factor.
        blocks = padded.reshape(size[0] // downsample, downsample, size[1] // downsample,
                                downsample, size[2] // downsample, downsample)
        return blocks.mean(axis=(1, 3, 5))

    t1, gm, wm = (crop_and_average(maps[key]) for key in ("t1", "gm", "wm"))
    brain = crop_and_average(mask.astype(np.float32)) >= 0.5
    csf = np.clip(1.0 - gm - wm, 0.0, 1.0)
    labels = np.where(brain, np.argmax(np.stack([csf, gm, wm]), axis=0) + 1, 0).astype(np.uint8)

    new_affine = np.array(affine, dtype=np.float64)
    new_affine[:3, :3] = affine[:3, :3] * downsample
    # Centre of the first block: 1 mm voxel (low + (downsample - 1) / 2).
    new_affine[:3, 3] = affine[:3, :3] @ (low + (downsample - 1) / 2.0) + affine[:3, 3]
    for array in (t1, labels, new_affine):
        array.flags.writeable = False  # shared by the cache: callers must copy to change it
    source = SourceInfo(path=str(paths["t1"]), format="nifti", modality="MR",
                        description="MNI ICBM152 2009a T1 template")
    image = Volume(array=t1[None], affine=new_affine, channel_names=("T1",), source=source)
    return image, LabelVolume(array=labels, affine=new_affine, class_names=TISSUE_CLASSES)
