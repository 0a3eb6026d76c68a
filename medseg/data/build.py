"""Build a bundled sample data set (Decathlon layout) from its definition, idempotently.

``build_sample(definition, out_dir)`` writes ``imagesTr/``, ``labelsTr/``, ``imagesTs/``,
``labelsTs/`` (test labels, for evaluation), ``dataset.json``, optional ``dicom/<case>/``
series, and last ``build_record.json`` (hash of the resolved definition + sha256 of every
file). Rebuilding a complete folder with the same definition does nothing; a folder without
a matching record or with a changed file is rebuilt. Every file is written atomically, and
NIfTI files are gzipped with a zero timestamp, so the same definition gives the same bytes.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np

from medseg.config import config_to_dict
from medseg.data.decathlon import Case, dataset_json_text
from medseg.data.sample_config import (
    BrainSampleConfig,
    CtPhantomConfig,
    SampleConfig,
    load_sample_definition,
)
from medseg.errors import OutputError
from medseg.io.temp_names import create_temp_dir
from medseg.types import LabelVolume, Volume

logger = logging.getLogger(__name__)

BUILD_RECORD = "build_record.json"
BUILDER_VERSION = 1  # bump when the generators change what a definition produces
CaseMaker = Callable[[int], tuple[Volume, LabelVolume]]

_BRAIN_REFERENCE = (
    "Synthetic subjects derived from the MNI ICBM152 2009a nonlinear symmetric template "
    "(Fonov et al., NeuroImage 2011) as shipped in nilearn's wheel"
)
_BRAIN_LICENCE = (
    "Template copyright (C) 1993-2009 Louis Collins, McConnell Brain Imaging Centre, Montreal "
    "Neurological Institute, McGill University (free use with this notice); no patient data"
)


def build_sample(definition_path: str | Path, out_dir: str | Path) -> Path:
    """Build the sample data set described by a ``datasets/*.yaml`` definition.

    Args:
        definition_path: the YAML definition (``kind: brain-tissue`` or ``kind: ct-phantom``).
        out_dir: the data set folder (created if needed).

    Returns:
        The path of the written (or already up-to-date) ``dataset.json``.

    Raises:
        ConfigError: invalid definition. InputError: the MNI template is not installed.
        OutputError: a file cannot be written.
    """
    return build_sample_from_config(load_sample_definition(definition_path), out_dir)


def build_sample_from_config(config: SampleConfig, out_dir: str | Path) -> Path:
    """``build_sample`` for an already loaded definition."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"{out}: cannot create the data set folder ({error.strerror})") from None
    digest = definition_hash(config)
    record_path = out / BUILD_RECORD
    old_record = _read_record(record_path)
    old_files = old_record.get("files", {})
    if old_record.get("definition_sha256") == digest and _intact(out, old_files):
        logger.info("%s is up to date (definition %s)", out, digest[:12])
        return out / "dataset.json"
    record_path.unlink(missing_ok=True)  # from here on the folder counts as partial

    if isinstance(config, BrainSampleConfig):
        written = _build_brain(config, out)
    elif isinstance(config, CtPhantomConfig):
        written = _build_ct(config, out)
    else:  # pragma: no cover - load_sample_definition only makes the two kinds
        raise TypeError(f"unknown sample definition {type(config).__name__}")

    for stale in sorted(set(old_files) - set(written)):  # only files an older build recorded
        (out / stale).unlink(missing_ok=True)
        _remove_empty_parents((out / stale).parent, out)
    record = {
        "definition_sha256": digest,
        "builder_version": BUILDER_VERSION,
        "definition": config_to_dict(config),
        "files": {name: written[name] for name in sorted(written)},
    }
    _write_bytes(record_path, (json.dumps(record, indent=2) + "\n").encode())
    logger.info("built %s: %d files", out, len(written))
    return out / "dataset.json"


def definition_hash(config: SampleConfig) -> str:
    """sha256 of the resolved definition and the builder version."""
    text = json.dumps({"builder": BUILDER_VERSION, "definition": config_to_dict(config)}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def nifti_gz_bytes(array: np.ndarray, affine: np.ndarray) -> bytes:
    """A gzipped NIfTI-1 file as bytes, reproducible byte for byte.

    Args:
        array: (I, J, K) voxels, stored with their dtype.
        affine: (4, 4) voxel -> RAS mm, written as both qform and sform (code 1, scanner).
    """
    import nibabel

    image = nibabel.Nifti1Image(np.asarray(array), np.asarray(affine, dtype=np.float64))
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    image.header.set_xyzt_units("mm", "sec")
    # gzip.compress with mtime=0: the gzip header would otherwise hold the time of writing.
    return gzip.compress(image.to_bytes(), compresslevel=6, mtime=0)


def _build_brain(config: BrainSampleConfig, out: Path) -> dict[str, str]:
    """Write the brain-tissue data set; returns {relative path: sha256}."""
    from medseg.data.brain_sample import draw_subject_params, make_brain_subject
    from medseg.data.template import TISSUE_CLASSES, tissue_template

    template, template_labels = tissue_template(config.template_downsample, config.margin_mm)

    def make_case(index: int) -> tuple[Volume, LabelVolume]:
        params = draw_subject_params(config.augment, config.seed, index)
        return make_brain_subject(template, template_labels, config.augment, params)

    extra = {"reference": _BRAIN_REFERENCE, "licence": _BRAIN_LICENCE}
    return _write_dataset(config, out, make_case, modality="MR", channel="T1",
                          classes=TISSUE_CLASSES, patient_name="SAMPLE^BRAIN", extra=extra)


def _build_ct(config: CtPhantomConfig, out: Path) -> dict[str, str]:
    """Write the CT phantom data set; returns {relative path: sha256}."""
    from medseg.data.ct_phantom import CT_CLASSES, make_ct_phantom

    extra = {"reference": "Synthetic CT-like abdominal phantoms made by medseg", "licence": "CC0-1.0"}
    return _write_dataset(config, out, lambda index: make_ct_phantom(config, config.seed, index),
                          modality="CT", channel="CT", classes=CT_CLASSES,
                          patient_name="SAMPLE^CT", extra=extra)


def _write_dataset(
    config: SampleConfig,
    out: Path,
    make_case: CaseMaker,
    *,
    modality: str,
    channel: str,
    classes: tuple[str, ...],
    patient_name: str,
    extra: dict[str, object],
) -> dict[str, str]:
    """Write every case, the DICOM copies and dataset.json; returns {relative path: sha256}."""
    written: dict[str, str] = {}
    training, test, dicom = [], [], {}
    for index in range(config.n_train + config.n_test):
        patient_id = f"{config.case_prefix}_{index:03d}"
        split = "Tr" if index < config.n_train else "Ts"
        image, labels = make_case(index)
        image_path = out / f"images{split}" / f"{patient_id}.nii.gz"
        label_path = out / f"labels{split}" / f"{patient_id}.nii.gz"
        for path, array in ((image_path, image.array[0]), (label_path, labels.array)):
            path.parent.mkdir(exist_ok=True)
            written[_relative(path, out)] = _write_bytes(path, nifti_gz_bytes(array, image.affine))
        (training if split == "Tr" else test).append(Case(patient_id, (image_path,), label_path))
        if index in config.dicom_cases:
            folder = out / "dicom" / patient_id
            for path in _write_dicom_case(image, folder, config, index, modality, patient_name):
                written[_relative(path, out)] = _sha256(path)
            dicom[patient_id] = "./" + _relative(folder, out)
        logger.info("%s: case %s (%s) written", config.name, patient_id, split)
    if dicom:
        extra = {**extra, "dicom": dicom}
    text = dataset_json_text(
        name=config.name, description=config.description, modalities=(channel,), labels=classes,
        training=training, test=test, root=out, extra={**extra, "seed": config.seed},
    )
    written["dataset.json"] = _write_bytes(out / "dataset.json", text.encode())
    return written


def _write_dicom_case(
    image: Volume, folder: Path, config: SampleConfig, index: int, modality: str, patient_name: str
) -> list[Path]:
    """Write one case as an int16 DICOM series into ``folder`` (replacing an older copy whole)."""
    import pydicom.uid

    from medseg.io.dicom_export import (
        write_dicom_series,  # local: written by the DICOM module
    )

    folder.parent.mkdir(parents=True, exist_ok=True)
    if folder.exists() and any(not p.is_file() or p.suffix.lower() != ".dcm" for p in folder.iterdir()):
        raise OutputError(f"{folder}: holds files that are not DICOM slices of a sample build "
                          "(hint: move them away or choose another output folder)")
    volume = image.with_array(image.array.astype(np.int16))
    entropy = [config.name, str(config.seed), str(index)]
    temp = create_temp_dir(folder.parent, folder.name)  # umask permissions; renamed into place when done
    try:
        write_dicom_series(
            volume, temp, modality=modality,
            series_description=f"{config.name} sample {index:03d}",
            patient_id=f"SAMPLE{index:03d}", patient_name=patient_name,
            study_uid=pydicom.uid.generate_uid(entropy_srcs=entropy + ["study"]),
            series_uid=pydicom.uid.generate_uid(entropy_srcs=entropy + ["series"]),
        )
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(temp, folder)
    finally:
        if temp.exists():
            shutil.rmtree(temp)
    return sorted(folder.iterdir())


def _write_bytes(path: Path, data: bytes) -> str:
    """Write atomically; returns the sha256 of ``data``."""
    from medseg.io.atomic import (
        atomic_write_bytes,  # local: medseg.io pulls in the readers
    )

    atomic_write_bytes(path, data)
    return hashlib.sha256(data).hexdigest()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _relative(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _read_record(record_path: Path) -> dict[str, object]:
    """A previous build's record (``files`` as {path: sha256}), or {} if there is no usable one."""
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # no record or a damaged one: the folder is treated as partial
    if not isinstance(record, dict) or not isinstance(record.get("files"), dict):
        return {}
    record["files"] = {str(k): str(v) for k, v in record["files"].items()}
    return record


def _remove_empty_parents(folder: Path, root: Path) -> None:
    """Remove ``folder`` and its parents below ``root`` while they are empty."""
    while folder != root and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
        folder = folder.parent


def _intact(out: Path, files: dict[str, str]) -> bool:
    """Whether every recorded file exists with its recorded content."""
    if not files:
        return False
    for name, digest in files.items():
        path = out / name
        if not path.is_file() or _sha256(path) != digest:
            return False
    return True
