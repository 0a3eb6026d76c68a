"""One case of a batch: check completion, read, predict, write the outputs, record completion.

Outputs in ``OUT/<case_id>/`` (each written atomically, ``complete.json`` last):

* ``seg.nii.gz``: labels on the source grid (``medseg.io.write_labels``);
* ``seg.dcm``: a DICOM-SEG referencing the source series, for DICOM input;
* ``rtstruct.dcm``: an RT Structure Set of the predicted structures referencing the source series,
  when asked (``--rtstruct``; single-frame DICOM series only: other cases fail with the reason);
* ``uncertainty.nii.gz``: (I, J, K) float32 predictive entropy / log(C), when asked;
* ``probabilities.nii.gz``: (I, J, K, C) float32 calibrated softmax, when asked (the layout
  ``medseg evaluate`` reads);
* ``case.json``: what happened (also for failed cases), with nothing from the DICOM tags
  beyond the coded Modality and the SeriesInstanceUID; a DICOM case is named by its case id and
  SeriesInstanceUID only (``public_input``), never by its folder or file names (PACS exports name
  folders after the patient), and its failure reason has those names redacted;
* ``complete.json``: the completion record (``medseg.inference.completion``).
"""

from __future__ import annotations

import glob
import json
import logging
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import nibabel as nib
import numpy as np

from medseg.errors import InputError, MedsegError
from medseg.inference import completion
from medseg.io.atomic import atomic_path, atomic_write_text
from medseg.io.data_file_refs import data_files
from medseg.io.discover import ScanSource
from medseg.io.redact import redact_names
from medseg.io.safe_folder import check_own_folder, make_own_folder
from medseg.io.read import read_source
from medseg.io.write import write_labels
from medseg.types import Volume

LOGGER = logging.getLogger(__name__)
SEG_FILE = "seg.nii.gz"
DICOM_SEG_FILE = "seg.dcm"
RTSTRUCT_FILE = "rtstruct.dcm"
UNCERTAINTY_FILE = "uncertainty.nii.gz"
PROBABILITIES_FILE = "probabilities.nii.gz"
CASE_FILE = "case.json"
OUTPUT_FILES = (SEG_FILE, DICOM_SEG_FILE, RTSTRUCT_FILE, UNCERTAINTY_FILE, PROBABILITIES_FILE, CASE_FILE)
DICOM_KINDS = ("dicom-series", "dicom-enhanced")
# Kinds whose paths may carry patient names (PACS exports): never written to travelling files.
PRIVATE_KINDS = (*DICOM_KINDS, "dicom-file")
# Companion data files of header/data pairs (.mhd + .raw, .nhdr + .raw.gz), hashed with their header.
_COMPANION_SUFFIXES = (".raw", ".zraw", ".raw.gz", ".img", ".img.gz")


@dataclass(frozen=True)
class CasePlan:
    """One scan of the batch.

    Attributes:
        case_id: the pseudonymous output folder name.
        relative_input: the scan's path relative to the batch input (POSIX); never written for DICOM.
        source: what ``medseg.io.discover`` found.
        root: the batch input (for redacting names below it).
    """

    case_id: str
    relative_input: str
    source: ScanSource
    root: Path | None = None

    @property
    def public_input(self) -> str:
        """How reports and logs name the input: the relative path of an image file; for DICOM
        ``dicom:<SeriesInstanceUID>`` (folder and file names of PACS exports may name the patient)."""
        if self.source.kind in PRIVATE_KINDS:
            return f"dicom:{self.source.series_uid}" if self.source.series_uid else f"dicom:{self.case_id}"
        return self.relative_input

    def redact(self, text: str) -> str:
        """``text`` without this source's folder and file names (DICOM), or naming an image file as the
        report does, relative to the batch input (the input's own path may name a patient: it is not
        written when the batch holds DICOM)."""
        if self.source.kind in PRIVATE_KINDS:
            return redact_names(text, [*self.source.files, self.source.path], self.root)
        folder = PurePosixPath(self.relative_input).parent
        public = {}
        for file in (*self.source.files, self.source.path):  # the scan last: its name is relative_input
            name = self.relative_input if Path(file) == Path(self.source.path) else str(folder / Path(file).name)
            public.update({str(Path(file)): name, str(Path(file).resolve()): name})
        for path in sorted(public, key=len, reverse=True):
            text = text.replace(path, public[path])
        return text


@dataclass(frozen=True)
class CaseSettings:
    """What every case of a batch shares.

    Attributes:
        out_dir: the batch output folder.
        model_sha256: fingerprint of the model folder.
        uncertainty: write ``uncertainty.nii.gz``.
        probabilities: write ``probabilities.nii.gz``.
        tta: mirror test-time augmentation (recorded: it changes the outputs).
        runtime: ``"torch"``, ``"torchscript"`` or ``"onnx"`` (recorded: it changes the outputs).
        rtstruct: write ``rtstruct.dcm`` (DICOM series only).
        predictor_options: the Predictor options given beyond the defaults (recorded when any: a window
            plan or switching off the intensity refinement can change the outputs).
    """

    out_dir: Path
    model_sha256: str
    uncertainty: bool = False
    probabilities: bool = False
    tta: bool = False
    runtime: str = "torch"
    rtstruct: bool = False
    predictor_options: tuple[tuple[str, Any], ...] = ()

    def options(self, dicom: bool) -> dict[str, Any]:
        """The output-changing settings kept in the completion record."""
        from medseg import __version__

        options = {"uncertainty": self.uncertainty, "probabilities": self.probabilities, "tta": self.tta,
                   "runtime": self.runtime, "dicom_seg": dicom, "medseg": __version__}
        if self.rtstruct:  # only when asked: records of earlier runs without the option stay complete
            options["rtstruct"] = True
        if self.predictor_options:  # likewise
            options["predictor"] = dict(self.predictor_options)
        return options


class CaseError(Exception):
    """A case stopped at ``stage`` for ``reason`` (identifier-free)."""

    def __init__(self, stage: str, reason: str) -> None:
        super().__init__(f"{stage}: {reason}")
        self.stage = stage
        self.reason = reason


def input_files(source: ScanSource) -> list[Path]:
    """The files a source is read from: every slice of a series, or the image file (and its data file)."""
    if source.files:
        return list(source.files)
    path = Path(source.path)
    if not path.is_file():
        return []
    stem = glob.escape(path.name.split(".")[0])
    companions = sorted(p for p in path.parent.glob(f"{stem}.*")
                        if p != path and p.name.lower().endswith(_COMPANION_SUFFIXES))
    named = [p for p in data_files(path) if p not in companions and p != path]  # .mhd ElementDataFile, .nhdr
    return [path, *companions, *named]


def run_case(plan: CasePlan, predictor: Any, settings: CaseSettings) -> dict[str, Any]:
    """Do one case unless it is complete; never raises for a bad case.

    Args:
        plan: the scan and its case id.
        predictor: a ``medseg.inference.predictor.Predictor`` (``predict``, ``class_names``, ``modalities``).
        settings: output folder, model fingerprint and options.

    Returns:
        The case's report entry (the content of its ``case.json``), with ``status`` ``"ok"``,
        ``"failed"`` (with ``stage`` and ``reason``) or ``"skipped-complete"``.
    """
    case_dir = settings.out_dir / plan.case_id
    dicom = plan.source.kind in DICOM_KINDS
    options = settings.options(dicom)
    timings: dict[str, float] = {}
    entry: dict[str, Any] = {
        "case_id": plan.case_id, "input": plan.public_input, "kind": plan.source.kind,
        "modality": plan.source.modality, "status": "failed", "outputs": [], "qc_flags": [],
        "class_volumes_ml": {}, "timings_s": timings,
    }
    if plan.source.series_uid:
        entry["series_uid"] = plan.source.series_uid
    try:
        _timed(timings, "guard", lambda: _guard_folder(case_dir))
        input_sha256 = _timed(timings, "hash", lambda: _hash_inputs(plan.source))
        skipped = _timed(timings, "check", lambda: _skipped_entry(case_dir, entry, input_sha256, settings, options))
        if skipped is not None:
            return skipped
        _timed(timings, "prepare", lambda: _prepare_folder(case_dir))
        if settings.rtstruct and plan.source.kind != "dicom-series":
            raise CaseError("read", f"--rtstruct needs a single-frame DICOM series; this scan is {plan.source.kind} "
                            "(hint: leave out --rtstruct for it; its labels and DICOM-SEG need no RTSTRUCT)")
        volume = _timed(timings, "read", lambda: _read(plan.source, predictor))
        entry.update(shape=list(volume.spatial_shape), spacing_mm=[round(s, 4) for s in volume.spacing],
                     orientation=volume.orientation)
        prediction = _timed(timings, "predict", lambda: _predict(predictor, volume))
        _timed(timings, "write", lambda: _write_outputs(case_dir, volume, prediction, predictor, settings,
                                                          dicom, entry))
        _timed(timings, "record", lambda: _finish_case(case_dir, entry, input_sha256, settings, options))
    except CaseError as failure:
        reason = plan.redact(failure.reason)
        entry.update(status="failed", stage=failure.stage, reason=reason, outputs=[])
        LOGGER.info("%s (%s) failed at %s: %s", plan.case_id, plan.public_input, failure.stage, reason)
        _write_case_json(case_dir, entry, quiet=True)  # refused (and logged) for an unsafe case folder
    return entry


def _timed(timings: dict[str, float], stage: str, work: Callable[[], Any]) -> Any:
    """Run one stage, record its seconds, and turn its errors into a CaseError naming the stage."""
    start = time.perf_counter()
    try:
        return work()
    except CaseError:
        raise
    except InputError as error:
        hint = f" (hint: {error.hint})" if error.hint else ""
        raise CaseError(_stage_name(stage), error.reason + hint) from error
    except MedsegError as error:
        raise CaseError(_stage_name(stage), str(error)) from error
    except MemoryError as error:
        raise CaseError(_stage_name(stage), "out of memory (hint: use fewer --workers or a smaller scan)") from error
    except OSError as error:
        raise CaseError(_stage_name(stage), f"{error.strerror or type(error).__name__}") from error
    except Exception as error:  # noqa: BLE001 - one bad case must never stop the batch
        # Messages of unexpected errors from the reading/writing libraries may quote tag values,
        # so only the type goes into the report; the traceback goes to the debug log.
        LOGGER.debug("unexpected error in stage %s", stage, exc_info=True)
        detail = f": {error}" if stage == "predict" else " (run with --debug for the traceback)"
        raise CaseError(_stage_name(stage), f"unexpected {type(error).__name__}{detail}") from error
    finally:
        timings[stage] = round(time.perf_counter() - start, 4)


def _stage_name(stage: str) -> str:
    """Report stages are read / predict / write: hashing and checking are reading, the rest writing."""
    return {"guard": "write", "hash": "read", "check": "read", "prepare": "write", "record": "write"}.get(stage, stage)


def _guard_folder(case_dir: Path) -> None:
    """An existing case folder must be a real folder of this user (``medseg.io.safe_folder``)."""
    if os.path.lexists(case_dir):
        check_own_folder(case_dir, "case folder")


def _hash_inputs(source: ScanSource) -> str:
    files = input_files(source)
    if not files:
        raise InputError(source.path, "no input file found for this scan", "check that the input still exists")
    return completion.files_sha256(files)


def _skipped_entry(case_dir: Path, entry: dict[str, Any], input_sha256: str, settings: CaseSettings,
                   options: dict[str, Any]) -> dict[str, Any] | None:
    """For a complete case, its recorded case.json with the new status and timings (the run that made
    the outputs: ``previous_timings_s``); else None."""
    if not completion.is_complete(case_dir, input_sha256=input_sha256, model_sha256=settings.model_sha256,
                                  options=options):
        return None
    recorded = json.loads((case_dir / CASE_FILE).read_text(encoding="utf-8"))
    recorded.update(status="skipped-complete", timings_s=entry["timings_s"],
                    previous_timings_s=recorded.get("timings_s", {}))
    return recorded


def _prepare_folder(case_dir: Path) -> None:
    """Create the folder; drop the old record (the case is partial from now on) and stale temp files."""
    make_own_folder(case_dir, "case folder")
    completion.remove_record(case_dir)
    for temp in case_dir.glob(".*.tmp-*"):  # left by a killed run (atomic_path's temp names)
        temp.unlink(missing_ok=True)


def _read(source: ScanSource, predictor: Any) -> Volume:
    return read_source(source, modalities=tuple(predictor.modalities))


def _predict(predictor: Any, volume: Volume) -> Any:
    return predictor.predict(volume)


def _write_outputs(case_dir: Path, volume: Volume, prediction: Any, predictor: Any, settings: CaseSettings,
                   dicom: bool, entry: dict[str, Any]) -> None:
    """Every output file; fills the entry's outputs, QC flags and volumes."""
    written = [SEG_FILE]
    write_labels(prediction.labels, case_dir / SEG_FILE, volume)
    if dicom:
        from medseg.io.dicomseg import write_dicom_seg  # lazy: highdicom is heavy

        write_dicom_seg(prediction.labels, case_dir / DICOM_SEG_FILE, volume, tuple(predictor.class_names))
        written.append(DICOM_SEG_FILE)
    if settings.rtstruct:
        from medseg.io.rtstruct import write_rtstruct

        write_rtstruct(prediction.labels, case_dir / RTSTRUCT_FILE, volume, tuple(predictor.class_names))
        written.append(RTSTRUCT_FILE)
    if settings.uncertainty:
        write_float_map(prediction.uncertainty, case_dir / UNCERTAINTY_FILE, volume.affine)
        written.append(UNCERTAINTY_FILE)
    if settings.probabilities:
        write_float_map(np.moveaxis(prediction.probabilities, 0, -1), case_dir / PROBABILITIES_FILE, volume.affine)
        written.append(PROBABILITIES_FILE)
    for stale in set(OUTPUT_FILES) - set(written) - {CASE_FILE}:  # from an earlier run with other options
        (case_dir / stale).unlink(missing_ok=True)
    mean_uncertainty = float(prediction.mean_uncertainty)
    entry.update(
        status="ok",
        outputs=written,
        qc_flags=list(prediction.qc_flags),
        class_volumes_ml={str(k): round(float(v), 3) for k, v in prediction.class_volumes_ml.items()},
        mean_uncertainty_in_structures=None if math.isnan(mean_uncertainty) else round(mean_uncertainty, 4),
        predictor_timings_s={k: round(float(v), 4) for k, v in prediction.timings.items()},
        # What the card's intensity refinement fitted (class means, the bias field's 1st-99th percentile): a
        # scan whose field spans a factor of 2 or more is worth a look at the coil or the protocol.
        intensity_refinement=prediction.refinement.to_dict() if prediction.refinement is not None else None,
        # Whether the scan was judged skull-stripped (the card's background odds lowered inside its signal).
        skull_stripped=prediction.stripped.to_dict() if prediction.stripped is not None else None,
        networks=_networks(predictor),
        # What the ensemble's outline member did (medseg.inference.outline_member): None without one or when skipped.
        outline_member=prediction.outline.to_dict() if prediction.outline is not None else None,
    )


def _networks(predictor: Any) -> list[dict[str, Any]]:
    """The networks behind the labels: those averaged with their weights ("own": the folder's own network), and
    an outline member with its role and weight."""
    outline = getattr(predictor, "outline_member", None)
    names = ("own", *(m.name for m in predictor.model.card.ensemble if m.role == "mean")) \
        if getattr(predictor, "members", ()) else ("own",)
    networks = [{"network": name, "weight": round(weight, 6)} for name, weight in zip(names, predictor.network_weights)]
    if outline is not None:
        networks.append({"network": outline[0], "role": "outline", "weight": round(outline[1], 6)})
    return networks


def _finish_case(case_dir: Path, entry: dict[str, Any], input_sha256: str, settings: CaseSettings,
                 options: dict[str, Any]) -> None:
    """case.json, then the completion record over every output (last)."""
    _write_case_json(case_dir, entry)
    completion.write_record(case_dir, input_sha256=input_sha256, model_sha256=settings.model_sha256,
                            options=options, outputs=[*entry["outputs"], CASE_FILE])


def write_float_map(array: np.ndarray, path: Path, affine: np.ndarray) -> Path:
    """A float32 NIfTI ((I, J, K) or (I, J, K, C)) on the grid of ``affine``, atomically, no identifying text."""
    image = nib.Nifti1Image(np.asarray(array, dtype=np.float32), affine=None)
    image.set_sform(np.asarray(affine, dtype=np.float64), code=1)
    image.set_qform(np.asarray(affine, dtype=np.float64), code=1)
    image.header.set_xyzt_units("mm", "unknown")
    image.header["descrip"] = b"medseg"
    with atomic_path(path) as temp:
        nib.save(image, temp)
    return path


def _write_case_json(case_dir: Path, entry: Mapping[str, Any], quiet: bool = False) -> None:
    """case.json, atomically; for a failed case a write error is only logged (the report still names it)."""
    try:
        make_own_folder(case_dir, "case folder")
        atomic_write_text(case_dir / CASE_FILE, json.dumps(entry, indent=2) + "\n")
    except (MedsegError, OSError) as error:
        if not quiet:
            raise
        LOGGER.warning("%s: cannot write case.json (%s)", case_dir.name, error)
