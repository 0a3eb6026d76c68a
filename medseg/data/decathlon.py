"""Decathlon-style ``dataset.json``: write one, and read one into a checked ``Datalist``.

Layout (Medical Segmentation Decathlon): ``imagesTr/``, ``labelsTr/``, ``imagesTs/`` next to
``dataset.json``, whose keys are ``name``, ``description``, ``modality`` (``{"0": "T1"}``),
``labels`` (``{"0": "background", ...}``), ``numTraining``, ``numTest``, ``training``
(``[{"image": ..., "label": ...}]``) and ``test`` (paths, or ``{"image": ...[, "label": ...]}``).
An ``image`` may also be a list of paths, one per modality (MONAI's convention), or one 4D file
holding every modality. Each entry may name its case (``case_id``) and its patient (``patient``):
a patient with several studies has several cases with one ``patient``, and splits keep a patient's
cases together. Case ids are unique; without ``case_id`` (or the older ``patient_id``) a case is
named after its first image file. Paths are relative to the json's folder. Errors name the json file
and the key at fault.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medseg.errors import InputError
from medseg.io.data_file_refs import check_inside
from medseg.types import source_name

_HINT = "fix dataset.json (Decathlon layout: imagesTr/, labelsTr/, imagesTs/ next to it)"
_CHANNEL_SUFFIX = re.compile(r"_\d{4}$")  # nnU-Net's per-modality file suffix, e.g. case_0000


@dataclass(frozen=True)
class Case:
    """One case (a study of one patient) and its files.

    Attributes:
        patient_id: the patient; several cases (studies) may share it, and splits keep them together.
        images: absolute paths, one per modality (or one multi-channel file).
        label: absolute path of the label map, or None (unlabelled test case).
        case_id: unique within the data set (across training and test); the patient id when not given.
    """

    patient_id: str
    images: tuple[Path, ...]
    label: Path | None = None
    case_id: str = ""

    def __post_init__(self) -> None:
        if not self.case_id:
            object.__setattr__(self, "case_id", self.patient_id)


@dataclass(frozen=True)
class Datalist:
    """A read and checked ``dataset.json``.

    Attributes:
        path: the dataset.json file.
        name: data set name.
        description: free text.
        modalities: channel names in input order (index = channel).
        labels: class names (index = label value; 0 is background).
        training: labelled cases.
        test: test cases (labels where the json gives them).
    """

    path: Path
    name: str
    description: str
    modalities: tuple[str, ...]
    labels: tuple[str, ...]
    training: tuple[Case, ...]
    test: tuple[Case, ...] = ()

    @property
    def root(self) -> Path:
        """The folder holding dataset.json; relative paths start here."""
        return self.path.parent

    def case(self, case_id: str) -> Case:
        """The case with this case id (training or test); KeyError if absent."""
        for case in self.training + self.test:
            if case.case_id == case_id:
                return case
        raise KeyError(case_id)


def dataset_json_text(
    *,
    name: str,
    description: str,
    modalities: Sequence[str],
    labels: Sequence[str],
    training: Sequence[Case],
    test: Sequence[Case],
    root: Path,
    extra: Mapping[str, Any] | None = None,
) -> str:
    """The text of a dataset.json (stable key order, so equal inputs give equal bytes).

    Paths of the cases are written relative to ``root`` as ``"./imagesTr/x.nii.gz"``.
    """

    def relative(path: Path) -> str:
        return "./" + Path(path).resolve().relative_to(Path(root).resolve()).as_posix()

    def entry(case: Case) -> dict[str, Any]:
        images = [relative(p) for p in case.images]
        item: dict[str, Any] = {"image": images[0] if len(images) == 1 else images}
        if case.label is not None:
            item["label"] = relative(case.label)
        if case.case_id != case.patient_id:
            item.update(case_id=case.case_id, patient=case.patient_id)
        return item

    content: dict[str, Any] = {
        "name": name,
        "description": description,
        "tensorImageSize": "3D" if len(modalities) == 1 else "4D",
        "modality": {str(i): m for i, m in enumerate(modalities)},
        "labels": {str(i): n for i, n in enumerate(labels)},
        "numTraining": len(training),
        "numTest": len(test),
    }
    content.update(extra or {})
    content["training"] = [entry(case) for case in training]
    content["test"] = [entry(case) for case in test]
    return json.dumps(content, indent=2) + "\n"


def write_dataset_json(path: str | Path, **fields: Any) -> Path:
    """Write a dataset.json atomically; ``fields`` are those of ``dataset_json_text`` except ``root``.

    Returns:
        The written path.
    """
    from medseg.io.atomic import (
        atomic_write_text,  # local: medseg.io pulls in the readers
    )

    path = Path(path)
    return atomic_write_text(path, dataset_json_text(root=path.parent, **fields))


def read_datalist(dataset_json: str | Path, *, check_files: bool = True) -> Datalist:
    """Read and check a Decathlon dataset.json.

    Args:
        dataset_json: the json file; relative paths in it start from its folder.
        check_files: also check that every referenced file exists.

    Returns:
        The ``Datalist`` with absolute paths; a case's id is its ``case_id`` key (or the older
        ``patient_id``) when given, else the first image's file name without extension (and without
        ``_0000``); its patient is its ``patient`` key, else its case id.

    Raises:
        InputError: unreadable or invalid json, a missing or wrongly typed key, a missing file,
            a label map that is not 0..N, or two cases with the same case id — naming the
            file and the key.
    """
    path = Path(dataset_json)
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise InputError(path, f"cannot read the file ({error.strerror})", _HINT) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputError(path, f"not valid JSON ({error})", _HINT) from None
    if not isinstance(content, dict):
        raise InputError(path, "the top level must be a JSON object", _HINT)

    def fail(key: str, reason: str) -> InputError:
        return InputError(path, f"key '{key}': {reason}", _HINT)

    modalities = _numbered_names(content, "modality", fail, required=False)
    labels = _numbered_names(content, "labels", fail, required=True)
    training = tuple(_read_entries(content, "training", path, fail, check_files, need_label=True))
    test = tuple(_read_entries(content, "test", path, fail, check_files, need_label=False))
    seen: dict[str, str] = {}
    for key, group in (("training", training), ("test", test)):
        for index, case in enumerate(group):
            where = f"{key}[{index}]"
            if case.case_id in seen:
                raise fail(where, f"case id '{case.case_id}' is also used by {seen[case.case_id]}; give each "
                           "study its own case_id, and the studies of one patient the same 'patient'")
            seen[case.case_id] = where
            if modalities and len(case.images) not in (1, len(modalities)):
                raise fail(where, f"{len(case.images)} image files for {len(modalities)} modalities")
    name = content.get("name", "")
    description = content.get("description", "")
    if not isinstance(name, str) or not isinstance(description, str):
        raise fail("name" if not isinstance(name, str) else "description", "must be a string")
    return Datalist(path=path, name=name, description=description, modalities=modalities,
                    labels=labels, training=training, test=test)


def _numbered_names(content: dict[str, Any], key: str, fail: Any, *, required: bool) -> tuple[str, ...]:
    """``{"0": "a", "1": "b"}`` -> ``("a", "b")``, checking the keys are exactly 0..N-1."""
    if key not in content:
        if required:
            raise fail(key, "is missing")
        return ()
    value = content[key]
    if not isinstance(value, dict) or not value:
        raise fail(key, 'must be a non-empty object like {"0": "name", ...}')
    try:
        numbers = sorted(int(k) for k in value)
    except ValueError:
        raise fail(key, f"keys must be integers, got {sorted(value)}") from None
    if numbers != list(range(len(numbers))):
        raise fail(key, f"keys must be 0..{len(numbers) - 1} without gaps, got {numbers}")
    names = {int(k): v for k, v in value.items()}
    if not all(isinstance(v, str) for v in names.values()):
        raise fail(key, "values must be strings")
    return tuple(names[n] for n in numbers)


def _read_entries(
    content: dict[str, Any], key: str, json_path: Path, fail: Any, check_files: bool, *, need_label: bool
) -> list[Case]:
    """The cases listed under ``key`` (``training`` or ``test``)."""
    entries = content.get(key, [] if key == "test" else None)
    if entries is None:
        raise fail(key, "is missing")
    if not isinstance(entries, list):
        raise fail(key, "must be a list")
    root = json_path.parent

    def resolve(value: Any, where: str) -> Path:
        if not isinstance(value, str) or not value:
            raise fail(where, f"must be a file path, got {value!r}")
        try:  # relative, no '..', and inside the data set's folder (after links): a file cannot point anywhere
            resolved = check_inside(root, value, json_path, "the path")
        except InputError as error:
            raise fail(where, error.reason + " (entries must stay inside the data set's folder)") from None
        if check_files and not resolved.exists():
            raise fail(where, f"'{value}' does not exist (looked for {resolved})")
        return resolved

    cases = []
    for index, entry in enumerate(entries):
        where = f"{key}[{index}]"
        if isinstance(entry, str):
            entry = {"image": entry}
        if not isinstance(entry, dict):
            raise fail(where, "must be an object with 'image' (and 'label')")
        if "image" not in entry:
            raise fail(f"{where}.image", "is missing")
        raw_images = entry["image"] if isinstance(entry["image"], list) else [entry["image"]]
        if not raw_images:
            raise fail(f"{where}.image", "is an empty list")
        images = tuple(resolve(v, f"{where}.image") for v in raw_images)
        label = None
        if "label" in entry:
            label = resolve(entry["label"], f"{where}.label")
        elif need_label:
            raise fail(f"{where}.label", "is missing (training cases need a label map)")
        id_key = "case_id" if "case_id" in entry else "patient_id"
        case_id = entry.get(id_key)
        if case_id is None:
            case_id = _CHANNEL_SUFFIX.sub("", source_name(images[0]))
        if not isinstance(case_id, str) or not case_id:
            raise fail(f"{where}.{id_key}", f"must be a non-empty string, got {case_id!r}")
        patient = entry.get("patient", case_id)
        if not isinstance(patient, str) or not patient:
            raise fail(f"{where}.patient", f"must be a non-empty string, got {patient!r}")
        cases.append(Case(patient_id=patient, images=images, label=label, case_id=case_id))
    return cases
