"""Checks of one DICOM object: is it a grayscale CT/MR image whose pixels can be decoded?

Each failed check raises ``InputError(file, reason, hint)``: DICOMDIR, non-image objects
(SEG, RTSTRUCT, SR, presentation states... by SOPClassUID or Modality), ultrasound,
colour (SamplesPerPixel != 1 or non-MONOCHROME), localizer, a compressed transfer syntax
without an installed decoder (pydicom 3's decoder registry), truncated pixel data.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.pixels.decoders.base import get_decoder
from pydicom.uid import UID

from medseg.errors import InputError

DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"
# SOP class UID prefixes of objects that are not images to segment.
NON_IMAGE_SOP_PREFIXES = (
    "1.2.840.10008.5.1.4.1.1.11.",  # presentation states
    "1.2.840.10008.5.1.4.1.1.66",  # raw data, registration, fiducials, segmentation
    "1.2.840.10008.5.1.4.1.1.88.",  # structured reports, key objects
    "1.2.840.10008.5.1.4.1.1.481.",  # radiotherapy objects (structures, plans, dose)
    "1.2.840.10008.5.1.4.1.1.104.",  # encapsulated documents
    "1.2.840.10008.5.1.4.1.1.9.",  # waveforms
)
NON_IMAGE_MODALITIES = frozenset(
    {"SEG", "RTSTRUCT", "RTPLAN", "RTDOSE", "RTRECORD", "RTIMAGE", "SR", "PR", "KO", "REG", "DOC", "FID", "ECG", "PLAN"}
)
ULTRASOUND_SOP_PREFIXES = ("1.2.840.10008.5.1.4.1.1.6.", "1.2.840.10008.5.1.4.1.1.3.")
PIP_NAMES = {"gdcm": "python-gdcm"}


def _sop_name(uid: str) -> str:
    name = UID(uid).name
    return f"{name} ({uid})" if name != uid else uid


def check_image_object(path: Path, dataset: Dataset) -> None:
    """Raise InputError unless ``dataset`` is a grayscale cross-sectional image we can decode.

    Checks, in order: DICOMDIR; non-image SOP class or modality (SEG, RTSTRUCT, SR,
    presentation state...); ultrasound; colour (SamplesPerPixel != 1 or a non-MONOCHROME
    photometric interpretation); localizer (ImageType contains LOCALIZER); and a compressed
    transfer syntax whose decoder is not installed.
    """
    meta = getattr(dataset, "file_meta", None)
    sop_class = str(dataset.get("SOPClassUID") or (meta.get("MediaStorageSOPClassUID") if meta else "") or "")
    modality = str(dataset.get("Modality") or "").upper()
    if sop_class == DICOMDIR_SOP_CLASS or "DirectoryRecordSequence" in dataset:
        raise InputError(path, "this is a DICOMDIR (a media index), not an image series",
                         "give the folder that holds the image files the DICOMDIR lists")
    if sop_class.startswith(NON_IMAGE_SOP_PREFIXES) or modality in NON_IMAGE_MODALITIES:
        kind = _sop_name(sop_class) if sop_class else f"Modality {modality}"
        raise InputError(path, f"not an image series but a {kind} object",
                         "give the folder of the CT or MR series it refers to")
    if modality == "US" or sop_class.startswith(ULTRASOUND_SOP_PREFIXES):
        raise InputError(path, "ultrasound image: not a grayscale CT/MR volume",
                         "medseg segments CT and MR volumes")
    if "Rows" not in dataset or "Columns" not in dataset:
        raise InputError(path, "no image pixel data attributes (Rows/Columns): not an image",
                         "give the folder of a CT or MR image series")
    samples = int(dataset.get("SamplesPerPixel") or 1)
    photometric = str(dataset.get("PhotometricInterpretation") or "MONOCHROME2").upper()
    if samples != 1 or not photometric.startswith("MONOCHROME"):
        raise InputError(
            path,
            f"colour image (SamplesPerPixel={samples}, PhotometricInterpretation={photometric}): "
            "not a grayscale CT/MR volume",
            "use the original grayscale series, not a screenshot or secondary capture",
        )
    image_type = [str(v).upper() for v in (dataset.get("ImageType") or [])]
    if "LOCALIZER" in image_type:
        raise InputError(path, "localizer (scout) image, not a volume",
                         "choose the main series of the study, not the localizer")
    check_decoder(path, dataset)


def _pip_requirement(requirement: str) -> str:
    """'gdcm>=3.0.10' -> 'python-gdcm>=3.0.10' (the name on PyPI)."""
    name = re.split(r"[<>=!~ ]", requirement, maxsplit=1)[0]
    return PIP_NAMES.get(name, name) + requirement[len(name):]


def _install_hint(missing: Sequence[str]) -> str:
    """'pip install ...' suggestions from pydicom's ``missing_dependencies`` texts
    (e.g. 'pylibjpeg - requires pylibjpeg>=2.0 and pylibjpeg-libjpeg>=2.1')."""
    options = []
    for text in missing:
        requires = text.partition(" - requires ")[2]
        packages = [_pip_requirement(p.strip()) for p in re.split(r"\band\b|,", requires) if p.strip()]
        if packages:
            options.append("pip install " + " ".join(f"'{p}'" for p in packages))
    if not options:
        return "convert the files to uncompressed DICOM (e.g. 'gdcmconv --raw')"
    return "install a decoder: " + " or ".join(options)


def check_decoder(path: Path, dataset: Dataset) -> None:
    """Raise InputError when the pixel data are compressed and no installed plugin decodes them."""
    meta = getattr(dataset, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    if not syntax:
        return  # no file meta: pydicom reads it as uncompressed (implicit or explicit VR)
    syntax = UID(str(syntax))
    if syntax.is_transfer_syntax and not syntax.is_compressed:
        return
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError as error:
        raise InputError(
            path,
            f"pixel data use transfer syntax {_sop_name(syntax)}, which pydicom cannot decode at all",
            "convert the files to uncompressed DICOM (e.g. 'gdcmconv --raw' or dcmtk 'dcmdjpeg')",
        ) from error
    if not decoder.is_available:
        raise InputError(
            path,
            f"pixel data are compressed with {syntax.name} and no decoder for it is installed",
            _install_hint(decoder.missing_dependencies),
        )


def check_pixel_length(path: Path, dataset: Dataset) -> None:
    """Raise InputError when uncompressed PixelData is shorter than Rows x Columns x frames x bits."""
    meta = getattr(dataset, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    if syntax and UID(str(syntax)).is_compressed:
        return  # encapsulated: the decoder reports damaged fragments
    if "PixelData" not in dataset:
        raise InputError(path, "no PixelData in this image", "the file is incomplete; copy it again from the source")
    frames = int(dataset.get("NumberOfFrames") or 1)
    bits = int(dataset.get("BitsAllocated") or 16)
    n_values = int(dataset.Rows) * int(dataset.Columns) * int(dataset.get("SamplesPerPixel") or 1) * frames
    expected = (n_values * bits + 7) // 8
    actual = len(dataset.PixelData)
    if actual < expected:
        raise InputError(
            path,
            f"pixel data truncated: {actual} bytes where Rows x Columns x frames x BitsAllocated needs {expected}",
            "the file was cut short (interrupted copy or transfer); copy it again from the source",
        )
