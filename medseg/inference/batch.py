"""Batch prediction over a scan, a series folder or a study root: ``medseg predict``.

Every scan ``medseg.io.discover`` finds under INPUT is a case with a pseudonymous id
(``medseg.inference.case_ids``); its outputs go to ``OUT/<case_id>/``
(``medseg.inference.batch_case``) and ``OUT/report.json`` lists every case
(``medseg.inference.batch_report``). One failing case never stops the batch; a rerun skips
the cases whose completion record still matches (``medseg.inference.completion``).

Parallelism:

* ``workers > 1``: a ``ProcessPoolExecutor`` with the spawn start method; each worker loads
  the Predictor once and uses ``cores // workers`` torch threads.
* under ``torchrun``: rank r takes ``cases[r::world_size]``; every rank writes its entries
  to ``OUT/.ranks/rank-<r>.<token>.json`` (``token`` drawn by rank 0 and broadcast, so files of
  two jobs can never be mistaken for each other); after a barrier (gloo process group) rank 0
  merges them into ``report.json`` and removes the rank files. Only rank 0's result carries the report.

Exclusion: the whole batch holds ``OUT``'s ``FolderLock`` (``medseg.io.folder_lock``; rank 0 under
torchrun, whose other ranks are stopped by torchrun when rank 0 fails). A second ``medseg predict``
into the same folder stops at once, naming the holder's pid, instead of deleting the first one's
temp files. Existing case folders that are symlinks or belong to another user are refused
(``medseg.io.safe_folder``).

Privacy: DICOM cases are named in ``report.json``, logs and the progress bar by case id and
SeriesInstanceUID only (``CasePlan.public_input``); the batch input path is left out of the report
when it holds DICOM; skipped files are counted per reason, not listed.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import secrets
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from medseg.errors import InputError
from medseg.inference import batch_report, completion
from medseg.inference.batch_case import CasePlan, CaseSettings, run_case
from medseg.inference.case_ids import case_id, check_unique, relative_input
from medseg.inference.channel_files import group_channel_files
from medseg.inference.model_card import read_card
from medseg.inference.batch_case import PRIVATE_KINDS
from medseg.io.atomic import output_error
from medseg.io.discover import Discovery, discover
from medseg.io.folder_lock import FolderLock

LOGGER = logging.getLogger(__name__)
RANKS_FOLDER = ".ranks"


@dataclass(frozen=True)
class BatchResult:
    """What a batch did.

    Attributes:
        out_dir: the output folder.
        report_path: ``OUT/report.json`` (None on torchrun ranks other than 0).
        cases: the report entries of this process's cases (all cases on rank 0), in discovery order.
        rank: this process's rank (0 without torchrun).
    """

    out_dir: Path
    report_path: Path | None
    cases: tuple[dict[str, Any], ...]
    rank: int = 0

    def count(self, status: str) -> int:
        """Cases with ``status`` (``"ok"``, ``"skipped-complete"``, ``"failed"``)."""
        return sum(1 for case in self.cases if case["status"] == status)

    @property
    def succeeded(self) -> bool:
        """True when no case failed (the exit status is 0 only then)."""
        return self.count("failed") == 0


def plan_cases(input_path: str | Path | Sequence[Path], out_dir: str | Path,
               channels: int = 1) -> tuple[list[CasePlan], list[dict[str, Any]]]:
    """The cases under ``input_path`` (searched recursively) and the files that are not scans,
    counted per reason (``[{"reason", "count"}]``: names of files beside DICOM may identify patients).

    ``input_path`` may also be a list of roots (the study folders of a PACS batch), searched in order.
    ``out_dir`` (an output folder placed inside the input) is not searched. With ``channels`` > 1,
    ``CASE_0000`` .. files of one case are one case (``medseg.inference.channel_files``).

    Raises:
        InputError: the input does not exist, holds no scan, or two scans collide on one case id.
    """
    roots = [Path(path) for path in input_path] if isinstance(input_path, (list, tuple)) else [Path(input_path)]
    plans = []
    counts: dict[str, int] = {}
    for root in roots:
        discovery = discover(root, exclude=Path(out_dir))
        for source in group_channel_files(discovery.sources, channels):
            relative = relative_input(source.path, root)
            plans.append(CasePlan(case_id(relative, source.series_uid), relative, source, root))
        for reason, count in (discovery.skipped_counts or {}).items():
            counts[reason] = counts.get(reason, 0) + count
    ignored = ignored_summary(counts)
    shown = roots[0] if len(roots) == 1 else Path(os.path.commonpath([str(root) for root in roots]))
    if not plans:
        example = f" (e.g. {ignored[0]['count']} file(s): {ignored[0]['reason']})" if ignored else ""
        raise InputError(shown, f"no scan found{example}",
                         "give a scan file, a DICOM series folder or a folder of studies")
    check_unique([plan.case_id for plan in plans], shown)
    return plans, ignored


def ignored_summary(discovery: Discovery | dict[str, int]) -> list[dict[str, Any]]:
    """Skipped files as ``{"reason", "count"}``, most frequent first (from a discovery or counts per reason)."""
    counts = (discovery if isinstance(discovery, dict) else discovery.skipped_counts) or {}
    return [{"reason": reason, "count": count}
            for reason, count in sorted(counts.items(), key=lambda item: (-item[1], item[0]))]


def run_batch(
    input_path: str | Path | Sequence[Path],
    model_dir: str | Path,
    out_dir: str | Path,
    *,
    uncertainty: bool = False,
    probabilities: bool = False,
    tta: bool | None = None,
    workers: int = 1,
    device: str = "cpu",
    progress: bool = True,
    predictor: Any = None,
    runtime: str = "torch",
    trust_export: bool = False,
    rtstruct: bool = False,
    predictor_options: Mapping[str, Any] | None = None,
) -> BatchResult:
    """Predict every scan under ``input_path`` with the model in ``model_dir``; write ``out_dir``.

    Args:
        input_path: a scan file, a DICOM series folder, or a study root (searched recursively); or a list
            of study folders (``medseg.inference.pacs_batch``).
        model_dir: a model folder (``medseg.inference.model_folder``).
        out_dir: the output folder (created).
        uncertainty: also write ``uncertainty.nii.gz`` per case.
        probabilities: also write ``probabilities.nii.gz`` (I, J, K, C) per case.
        tta: mirror test-time augmentation (None: the model card's default; the report records what ran).
        workers: parallel worker processes (1 = in this process).
        device: ``"cpu"`` or ``"cuda"``.
        progress: show a progress bar over cases.
        predictor: an already loaded Predictor of ``model_dir`` to use when ``workers == 1``.
        runtime: ``"torch"``, or the model folder's ``"torchscript"`` / ``"onnx"`` export.
        trust_export: load an export this user's medseg did not make (``medseg.research.export_trust``).
        rtstruct: also write ``rtstruct.dcm`` per DICOM series case (other cases fail with the reason).
        predictor_options: more ``Predictor`` keyword options (``window_plan``, ``memory_budget_gb``,
            ``intensity_refinement``), for every worker.

    Returns:
        BatchResult; ``succeeded`` is False when any case failed.

    Raises:
        InputError: no scan under the input. ConfigError/InputError: the model folder cannot be loaded.
        OutputError: the output folder or the report cannot be written, or another process holds its lock.
    """
    started = time.perf_counter()
    if workers < 1:
        raise InputError(out_dir, f"--workers must be at least 1, got {workers}", "give --workers 1 or more")
    out = Path(out_dir)
    plans, ignored = plan_cases(input_path, out, channels=_model_channels(Path(model_dir)))
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise output_error(out, error) from error
    rank, world_size = _join_launcher()
    lock = FolderLock(out, "output folder").acquire() if rank == 0 else None
    try:
        return _run_locked(plans, ignored, input_path, model_dir, out, predictor, rank, world_size, started,
                           uncertainty=uncertainty, probabilities=probabilities, tta=tta, workers=workers,
                           device=device, progress=progress, runtime=runtime, trust_export=trust_export,
                           rtstruct=rtstruct, predictor_options=dict(predictor_options or {}))
    finally:
        if lock is not None:
            lock.release()


def _run_locked(plans: list[CasePlan], ignored: list[dict[str, Any]], input_path: str | Path,
                model_dir: str | Path, out: Path, predictor: Any, rank: int, world_size: int, started: float, *,
                uncertainty: bool, probabilities: bool, tta: bool | None, workers: int, device: str, progress: bool,
                runtime: str, trust_export: bool, rtstruct: bool = False,
                predictor_options: dict[str, Any] | None = None) -> BatchResult:
    """The batch once ``out`` is locked (see ``run_batch``)."""
    from medseg.inference.predictor import Predictor  # lazy: torch and MONAI are heavy

    predictor_options = predictor_options or {}
    if predictor is None:
        # Loaded here even with worker processes: a broken model folder fails once, clearly.
        predictor = Predictor.from_model(model_dir, device=device if workers == 1 else "cpu", tta=tta,
                                         runtime=runtime, trust_export=trust_export, **predictor_options)
    tta = predictor.tta  # what runs: the caller's choice or the card's default
    settings = CaseSettings(out_dir=out, model_sha256=completion.folder_sha256(model_dir),
                            uncertainty=uncertainty, probabilities=probabilities, tta=tta, runtime=runtime,
                            rtstruct=rtstruct, predictor_options=tuple(sorted(predictor_options.items())))
    mine = plans[rank::world_size]
    bar = tqdm(total=len(mine), desc="medseg predict", unit="case", disable=not progress, dynamic_ncols=True)
    try:
        if workers == 1 or len(mine) <= 1:
            entries = {}
            for plan in mine:
                entries[plan.case_id] = run_case(plan, predictor, settings)
                _advance(bar, entries[plan.case_id])
        else:
            entries = _run_pool(mine, Path(model_dir), settings, device, tta, workers, bar, trust_export)
    finally:
        bar.close()
    ordered = [_report_entry(entries[plan.case_id]) for plan in mine]
    options = {"uncertainty": uncertainty, "probabilities": probabilities, "tta": tta, "workers": workers,
               "device": device, "world_size": world_size, "rtstruct": rtstruct, **predictor_options}
    if world_size > 1:
        ordered = _merge_ranks(out, rank, world_size, ordered, [plan.case_id for plan in plans])
        if rank != 0:
            return BatchResult(out_dir=out, report_path=None, cases=tuple(ordered), rank=rank)
    private = any(plan.source.kind in PRIVATE_KINDS for plan in plans)
    report = batch_report.build_report(
        input_path=None if private else input_path, model_dir=model_dir, model_sha256=settings.model_sha256, options=options,
        entries=ordered, ignored=ignored, class_names=tuple(predictor.class_names),
        wall_seconds=time.perf_counter() - started)
    path = batch_report.write_report(out, report)
    return BatchResult(out_dir=out, report_path=path, cases=tuple(ordered), rank=rank)


def _report_entry(entry: dict[str, Any]) -> dict[str, Any]:
    """A case entry with its output files named relative to OUT."""
    return {**entry, "outputs": batch_report.case_outputs(entry)}


def _advance(bar: tqdm, entry: dict[str, Any]) -> None:
    bar.update(1)
    if entry["status"] == "failed":
        bar.set_postfix_str(f"last failure: {entry['input']} ({entry['stage']})")


# --- worker processes --------------------------------------------------------------------

# Per-process state of a pool worker: the Predictor is loaded once by the initializer and
# used by every case the worker runs (the standard ProcessPoolExecutor pattern; never set in
# the parent process).
_WORKER: dict[str, Any] = {}


def _init_worker(model_dir: str, device: str, tta: bool, threads: int, runtime: str = "torch",
                 trust_export: bool = False, options: tuple[tuple[str, Any], ...] = ()) -> None:
    """Pool initializer: limit torch threads, load the Predictor."""
    import torch

    from medseg.inference.predictor import Predictor

    torch.set_num_threads(threads)
    _WORKER["predictor"] = Predictor.from_model(model_dir, device=device, tta=tta, runtime=runtime,
                                                trust_export=trust_export, **dict(options))


def _worker_case(plan: CasePlan, settings: CaseSettings) -> dict[str, Any]:
    return run_case(plan, _WORKER["predictor"], settings)


def _run_pool(plans: Sequence[CasePlan], model_dir: Path, settings: CaseSettings, device: str, tta: bool,
              workers: int, bar: tqdm, trust_export: bool = False) -> dict[str, dict[str, Any]]:
    """Run the cases in ``workers`` spawned processes; a dead worker fails its cases, not the batch."""
    workers = min(workers, len(plans))
    threads = max(1, _cpu_count() // workers)
    entries: dict[str, dict[str, Any]] = {}
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker,
                             initargs=(str(model_dir), device, tta, threads, settings.runtime, trust_export,
                                       settings.predictor_options)) as pool:
        futures = {pool.submit(_worker_case, plan, settings): plan for plan in plans}
        for future in as_completed(futures):
            plan = futures[future]
            try:
                entry = future.result()
            except BrokenProcessPool:
                entry = _failed_entry(plan, "predict", "the worker process died (out of memory?); "
                                      "hint: use fewer --workers")
            entries[plan.case_id] = entry
            _advance(bar, entry)
    return entries


def _model_channels(model_dir: Path) -> int:
    """The model card's modality count (1 when the card is missing: loading the model reports that)."""
    card = model_dir / "model_card.json"
    return len(read_card(card).modalities) if card.is_file() else 1


def _failed_entry(plan: CasePlan, stage: str, reason: str) -> dict[str, Any]:
    return {"case_id": plan.case_id, "input": plan.relative_input, "kind": plan.source.kind,
            "modality": plan.source.modality, "status": "failed", "stage": stage, "reason": reason,
            "outputs": [], "qc_flags": [], "class_volumes_ml": {}, "timings_s": {}}


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


# --- torchrun ------------------------------------------------------------------------------

def _join_launcher() -> tuple[int, int]:
    """(rank, world size): torchrun's, after joining its gloo group; (0, 1) for a plain run."""
    import torch.distributed as dist

    if not dist.is_torchelastic_launched():
        return 0, 1
    if not dist.is_initialized():
        dist.init_process_group(backend="gloo")  # only barriers: CPU gloo whatever the inference device
    return dist.get_rank(), dist.get_world_size()


def _merge_ranks(out: Path, rank: int, world_size: int, entries: list[dict[str, Any]],
                 order: Sequence[str]) -> list[dict[str, Any]]:
    """Rank 0 gets every rank's entries (in discovery order) after a barrier; others get their own."""
    import torch.distributed as dist

    from medseg.io.atomic import atomic_write_text

    folder = out / RANKS_FOLDER
    folder.mkdir(exist_ok=True)
    token = [secrets.token_hex(8) if rank == 0 else ""]
    dist.broadcast_object_list(token, src=0)  # one name per job: never another job's files
    atomic_write_text(folder / f"rank-{rank}.{token[0]}.json", json.dumps(entries))
    dist.barrier()
    if rank != 0:
        dist.barrier()  # rank 0 has read the files
        dist.destroy_process_group()
        return entries
    merged: dict[str, dict[str, Any]] = {}
    for other in range(world_size):
        path = folder / f"rank-{other}.{token[0]}.json"
        merged.update((entry["case_id"], entry) for entry in json.loads(path.read_text(encoding="utf-8")))
        path.unlink()
    dist.barrier()
    dist.destroy_process_group()
    try:
        folder.rmdir()
    except OSError:
        pass  # files of a killed earlier job: harmless, named apart from ours
    return [merged[identifier] for identifier in order if identifier in merged]

