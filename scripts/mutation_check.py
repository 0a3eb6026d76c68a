#!/usr/bin/env python3
"""Mutation check: break one thing at a time in a scratch copy and run the tests that should notice.

Each mutant is a named source patch (an exact text, found exactly once, replaced by a broken one)
and the test files that must fail when it is applied. The script copies the working tree (tracked
files plus untracked ones git does not ignore) to a temporary folder once, runs the tests there
unmutated (the baseline must pass), then for each mutant writes the broken file, runs its tests, and
puts the file back. The checkout itself is never written to.

Results: ``killed`` (the tests failed: good), ``survived`` (they passed: a gap in the suite),
``not applied`` (the patched text is no longer in the source: update the mutant), ``baseline fails``.

The Markdown report (``--write``) ends with notes: history, and equivalent mutants tried and dropped.

Usage (from the repository root, with the project's venv)::

    nice -n 19 .venv/bin/python scripts/mutation_check.py                  # every mutant
    nice -n 19 .venv/bin/python scripts/mutation_check.py --only ddp-bare-module --only augment-raises
    nice -n 19 .venv/bin/python scripts/mutation_check.py --list
    nice -n 19 .venv/bin/python scripts/mutation_check.py --write docs/mutation-results.md
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutant:
    """One deliberate bug.

    Attributes:
        name: short id (``--only``).
        what: the bug in words.
        path: the file patched, relative to the repository root.
        old: text that must occur exactly once in the file.
        new: what replaces it.
        tests: pytest arguments (files or node ids) that must fail.
    """

    name: str
    what: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


PLACEMENT = ("tests/inference/test_placement.py",)
TRAINING = ("tests/training/test_learning.py", "tests/research/test_lr_find.py", "tests/research/test_tune.py")
GRID_LINE = "    grid_affine = np.asarray(torch.as_tensor(affine).detach().cpu().numpy(), dtype=np.float64)\n"
SPACING_DIFFERS = "    if not np.allclose(np.linalg.norm(grid_affine[:3, :3], axis=0), volume.spacing, atol=1e-3):\n"
SHOW_LINE = "        return self.show(volume, prediction.labels.array, class_names=names, colors=colors,\n"

MUTANTS: tuple[Mutant, ...] = (
    Mutant("mask-one-voxel-off", "the model grid's affine shifted by one model voxel (2 mm) when the spacings differ",
           "medseg/inference/finish.py", GRID_LINE,
           GRID_LINE + SPACING_DIFFERS + "        grid_affine[:3, 3] += grid_affine[:3, 0]\n", PLACEMENT),
    Mutant("mask-quarter-voxel-off", "the same shift by a quarter of a model voxel (0.5 mm)",
           "medseg/inference/finish.py", GRID_LINE,
           GRID_LINE + SPACING_DIFFERS + "        grid_affine[:3, 3] += 0.25 * grid_affine[:3, 0]\n", PLACEMENT),
    Mutant("slab-shift-wrong-axis", "slab-wise resampling to the source grid offsets each slab along j instead of i",
           "medseg/inference/finish.py", "        shift[0, 3] = slab.start\n",
           "        shift[1, 3] = slab.start\n", ("tests/inference/test_finish.py", *PLACEMENT)),
    Mutant("tta-no-flip-back", "mirror TTA averages flipped probabilities without flipping them back (fast path)",
           "medseg/inference/network_pass.py",
           "            soft = torch.flip(soft, tuple(d - 1 for d in flip))",
           "            soft = soft", PLACEMENT),
    Mutant("gradient-ascent", "the training loop climbs the loss instead of descending it",
           "medseg/training/loop.py", "scaler.scale(loss_tensor).backward()", "scaler.scale(-loss_tensor).backward()",
           ("tests/training/test_learning.py", "tests/research/test_tune.py")),
    Mutant("no-optimizer-step", "the loop computes gradients but never steps the optimiser",
           "medseg/training/loop.py", "    scaler.step(optimizer)\n", "    pass\n",
           ("tests/training/test_learning.py",)),
    Mutant("lr-find-no-step", "lr-find never updates the weights (the loss cannot fall)",
           "medseg/research/lr_find.py", "        optimizer.step()\n", "        pass\n",
           ("tests/research/test_lr_find.py",)),
    Mutant("lr-find-suggests-minimum", "lr-find suggests the rate at the loss minimum, not the steepest fall",
           "medseg/research/lr_find.py", "    return float(lrs[skip + int(np.argmin(slopes[skip:]))])",
           "    return float(lrs[stop - 1])", ("tests/research/test_lr_find.py",)),
    Mutant("ddp-bare-module", "DDP replaced by the bare module: ranks train apart, nothing is synchronised",
           "medseg/training/loop.py", "trained = DistributedDataParallel(model) if context.distributed else model",
           "trained = model", ("tests/training/test_distributed.py",)),
    Mutant("napari-transposed-flipped", "the Segment dock shows the mask transposed and flipped",
           "apps/medseg_napari/segment_widget.py", SHOW_LINE,
           SHOW_LINE.replace("prediction.labels.array", "prediction.labels.array.transpose(2, 1, 0)[::-1]"),
           ("tests/napari/test_segment_placement.py",)),
    Mutant("napari-flipped", "the Segment dock shows the mask flipped along one axis (same shape)",
           "apps/medseg_napari/segment_widget.py", SHOW_LINE,
           SHOW_LINE.replace("prediction.labels.array", "prediction.labels.array[:, ::-1]"),
           ("tests/napari/test_segment_placement.py",)),
    Mutant("display-ignores-flips", "napari display arrays are permuted but never flipped (the layer affine still flips)",
           "medseg/review/display.py", "result = nibabel.orientations.apply_orientation(moved, self.orientation)",
           "result = nibabel.orientations.apply_orientation(moved, np.abs(self.orientation))",
           ("tests/napari/test_segment_placement.py",)),
    Mutant("augment-raises", "any enabled augmentation raises",
           "medseg/transforms.py", "    if not settings.enabled:\n        return []\n",
           "    if not settings.enabled:\n        return []\n    raise RuntimeError('augmentation')\n",
           ("tests/test_augmentation.py", "tests/training/test_learning.py")),
    Mutant("augment-flip-image-only", "random flips move the image but not the label",
           "medseg/transforms.py", "RandFlipd(keys=keys, prob=0.5, spatial_axis=axis)",
           "RandFlipd(keys=[IMAGE], prob=0.5, spatial_axis=axis)", ("tests/test_augmentation.py",)),
    Mutant("augment-affine-separate-draws", "image and label get separate random rotations/zooms",
           "medseg/transforms.py",
           'keys=keys, prob=prob, rotate_range=(angle, angle, angle),\n'
           '                scale_range=(settings.scale,) * 3, mode=("bilinear", "nearest"), padding_mode="zeros",\n'
           '            )\n        )\n',
           'keys=[IMAGE], prob=prob, rotate_range=(angle, angle, angle),\n'
           '                scale_range=(settings.scale,) * 3, mode="bilinear", padding_mode="zeros",\n'
           '            )\n        )\n'
           '        steps.append(RandAffined(keys=[LABEL], prob=prob, rotate_range=(angle, angle, angle),\n'
           '                                 scale_range=(settings.scale,) * 3, mode="nearest"))\n',
           ("tests/test_augmentation.py",)),
    Mutant("calibrate-shuffled-labels", "calibration pairs sampled logits with the wrong voxels' labels",
           "medseg/inference/calibrate.py", "samples, targets = samples[chosen], targets[chosen]",
           "samples, targets = samples[chosen], targets[np.sort(chosen)]", ("tests/apps/test_cli_calibrate.py",)),
    Mutant("calibrate-half-temperature", "the fitted temperature is halved before it is stored",
           "medseg/inference/calibrate.py",
           "    temperature = fit_temperature(samples, targets, max_samples=samples.shape[0], seed=seed)\n",
           "    temperature = 0.5 * fit_temperature(samples, targets, max_samples=samples.shape[0], seed=seed)\n",
           ("tests/apps/test_cli_calibrate.py",)),
    Mutant("refine-prior-weight-ignored", "the intensity refinement ignores its prior weight (the network's prior at full "
           "weight whatever the card says)",
           "medseg/inference/intensity_refinement.py",
           "        log_prior *= np.float32(prior_weight)  # prior^w; the softmax of each E-step renormalises it\n",
           "        log_prior *= np.float32(1.0)\n", ("tests/inference/test_intensity_refinement.py",)),
    Mutant("ensemble-weights-swapped", "an ensemble weighs each member by 1 - its card weight",
           "medseg/inference/predictor.py",
           "                member_probabilities *= np.float32(weight)  # in place: a 1 mm head's (C, I, J, K) is 145 MB\n",
           "                member_probabilities *= np.float32(1.0 - weight)\n",
           ("tests/inference/test_ensemble.py",)),
    Mutant("outline-adds-tissue", "the outline member averages the backgrounds both ways (it can add tissue)",
           "medseg/inference/outline_member.py",
           "    trimmed = np.maximum(member_background.astype(np.float32, copy=False) - background, 0.0)\n",
           "    trimmed = member_background.astype(np.float32) - background\n",
           ("tests/inference/test_outline_member.py",)),
    Mutant("outline-never-gated", "an outline member that would remove most of the brain is still applied",
           "medseg/inference/outline_member.py", "    if share > max_removed_share:\n", "    if False:\n",
           ("tests/inference/test_outline_member.py",)),
    Mutant("outline-on-stripped-scans", "the outline member also trims scans judged skull-stripped",
           "medseg/inference/predictor.py",
           "        if self.outline_member is not None and not (stripped is not None and stripped.skull_stripped):\n",
           "        if self.outline_member is not None:\n", ("tests/models/test_shipped_ensemble.py",)),
    Mutant("clean-up-skips-opening", "the prediction's clean-up keeps the largest foreground without opening first",
           "medseg/inference/prediction.py",
           "                labels = open_foreground(labels, spacing, self.foreground_opening_mm)\n",
           "                pass\n", ("tests/inference/test_foreground_opening.py",)),
    Mutant("predictor-drops-prior-weight", "the Predictor refines with weight 1 instead of the card's prior weight",
           "medseg/inference/predictor.py", "prior_weight=self.refine_prior_weight)", "prior_weight=1.0)",
           ("tests/models/test_refinement_on_real_scans.py",)),
    Mutant("refine-keeps-the-bias-field", "the refinement fits the em bias field but never divides it out of the "
           "intensities it labels",
           "medseg/inference/intensity_refinement.py",
           "        field_here = field.at(slice(None))\n        log_intensity -= field_here\n",
           "        field_here = field.at(slice(None))\n", ("tests/inference/test_bias_field.py",)),
    Mutant("stripped-never-detected", "no scan is ever judged skull-stripped (the background's odds never fall)",
           "medseg/inference/stripped_scan.py",
           "    stripped = bool(coarse_signal.any()) and fraction < STRIPPED_FAR_FRACTION\n",
           "    stripped = False\n", ("tests/inference/test_stripped_scan.py",)),
    Mutant("stripped-heads-too", "every scan is judged skull-stripped: whole heads get the background's odds "
           "lowered on the scalp", "medseg/inference/stripped_scan.py",
           "    stripped = bool(coarse_signal.any()) and fraction < STRIPPED_FAR_FRACTION\n",
           "    stripped = bool(coarse_signal.any())\n", ("tests/inference/test_stripped_scan.py",)),
    Mutant("card-accepts-unknown-keys", "a model card's misspelt top-level key is silently ignored",
           "medseg/inference/model_card.py", "    unknown_keys = set(data) - CARD_KEYS\n", "    unknown_keys = set()\n",
           ("tests/inference/test_card_text.py",)),
    Mutant("export-drops-card-texts", "exporting the same weights again drops the card's intended use and limitations",
           "medseg/inference/model_folder.py",
           "                   intended_use=intended_use or kept.intended_use,\n",
           "                   intended_use=intended_use,\n", ("tests/inference/test_model_folder.py",)),
    Mutant("tta-disagreement-counts-strays", "the TTA QC check counts voxels outside the structure the clean-up keeps",
           "medseg/inference/qc_content.py",
           "    kept = torch.as_tensor(np.asarray(structure, dtype=bool)) if structure is not None else final_labels > 0\n",
           "    kept = final_labels > 0\n    for labels in pass_labels:\n        kept = kept | (labels > 0)\n",
           ("tests/inference/test_qc_content.py",)),
    Mutant("card-text-swaps-compared-values", "the card's evaluation table shows the compared model's values as "
           "this model's", "medseg/inference/card_text.py",
           "        own, theirs = row.get(card.name) or {}, row.get(other_name) or {}\n",
           "        theirs, own = row.get(card.name) or {}, row.get(other_name) or {}\n",
           ("tests/inference/test_card_text.py",)),
    Mutant("report-md-review-order-by-id", "report.md lists the flagged cases by case id, not most in need of review "
           "first", "medseg/inference/batch_summary.py",
           "    return (-attention, -_mean_uncertainty(entry, default=0.0), str(entry.get(\"case_id\", \"\")))\n",
           "    return (str(entry.get(\"case_id\", \"\")),)\n", ("tests/inference/test_batch_summary.py",)),
    Mutant("image-reason-names-absolute-path", "a failed image file's reason names it by its absolute path (the "
           "input's folders may name a patient)", "medseg/inference/batch_case.py",
           "        for path in sorted(public, key=len, reverse=True):\n            text = text.replace(path, public[path])\n",
           "", ("tests/inference/test_batch.py",)),
    Mutant("segment-region-off-pooling-grid", "a segment region starts where the box starts, not on the pooling grid",
           "medseg/windows/whole.py",
           "        bounds.append((start // align * align, min(-(-stop // align) * align, limit)))\n",
           "        bounds.append((start, min(-(-stop // align) * align, limit)))\n", ("tests/windows/test_runner.py",)),
    Mutant("outline-member-over-whole-scan", "the outline member's network runs over the whole scan again",
           "medseg/inference/predictor.py",
           "                region=brain_region(brain, volume.spacing), background_only=True)\n",
           "                region=None, background_only=True)\n", ("tests/models/test_shipped_ensemble.py",)),
    Mutant("region-not-mirrored", "a mirror pass computes the region where it lies in the unmirrored scan",
           "medseg/inference/tta.py",
           "    return tuple(slice(shape[axis] - part.stop, shape[axis] - part.start) if axis + 2 in flip else part\n",
           "    return tuple(part\n", ("tests/models/test_shipped_ensemble.py",)),
    Mutant("head-odds-never-applied", "the card's whole-head background odds are read but never applied",
           "medseg/inference/predictor.py",
           "        if stripped is not None and self.head_background_odds > 1.0:\n",
           "        if False:\n", ("tests/models/test_refinement_on_real_scans.py",)),
    Mutant("head-odds-on-stripped-scans", "the whole-head background odds also raise a skull-stripped scan's",
           "medseg/inference/stripped_scan.py",
           "    if check.skull_stripped or odds == 1.0:\n",
           "    if odds == 1.0:\n", ("tests/inference/test_stripped_scan.py",)),
    Mutant("far-outside-in-voxels", "far mL measures the distance from the brain mask in voxels, not mm",
           "medseg/evaluation/shift_checks.py",
           "    distance = ndimage.distance_transform_edt(outside, sampling=[float(v) for v in spacing])\n",
           "    distance = ndimage.distance_transform_edt(outside)\n", ("tests/evaluation/test_shift_checks.py",)),
    Mutant("uncertainty-shown-everywhere", "the viewer shows the full uncertainty map, face and neck included",
           "apps/medseg_napari/_results.py",
           "        shown_uncertainty = add_layer(viewer, uncertainty_layer(near if near_contours else uncertainty, volume,\n",
           "        shown_uncertainty = add_layer(viewer, uncertainty_layer(uncertainty, volume,\n",
           ("tests/napari/test_widgets.py",)),
)


NOTES = """Notes:

* Before issue 18 (the review on commit 17c2e91), `mask-one-voxel-off`, `gradient-ascent`, `ddp-bare-module`,
  `napari-transposed-flipped` and `augment-raises` passed every test that should have caught them.
* Each mutant runs only its listed test files and stops at the first failure; other tests may kill it too
  (e.g. `gradient-ascent` also fails `tests/research/test_tune.py`, `augment-raises` also
  `tests/training/test_learning.py`, `mask-one-voxel-off` also `tests/napari/test_segment_placement.py`).
* Equivalent mutant tried and dropped: `align_corners=True` in the Predictor's resampling back to the source
  grid (MONAI maps the affines consistently either way: probabilities agree to 3e-6, labels exactly).
* 2026-12-04: four mutants had gone stale ("not applied": the resampling back to the source grid had moved to
  `medseg/inference/finish.py`, the TTA line had lost an indent); retargeted, `slab-shift-wrong-axis` then
  survived, because a rotated grid's plane-at-a-time path only ever ran as one slab in the tests:
  `tests/inference/test_finish.py` now forces 16 slabs on it."""


def copy_tree(destination: Path) -> int:
    """Copy tracked and untracked-not-ignored files of the checkout to ``destination``; returns the count."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    count = 0
    for name in filter(None, listed):
        source = ROOT / name
        if not source.is_file() or source.is_symlink():
            continue  # deleted in the working tree, or a link
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
        count += 1
    return count


def environment(copy: Path) -> dict[str, str]:
    """The environment of the test runs: the copy's packages first on the path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(copy), str(copy / "apps"), env.get("PYTHONPATH", "")])
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def check_imports(copy: Path) -> None:
    """Fail unless ``medseg`` and the apps import from the copy (not from the checkout's editable install)."""
    code = "import medseg, medseg_cli, medseg_napari; print(medseg.__file__); print(medseg_cli.__file__)"
    done = subprocess.run([sys.executable, "-c", code], cwd=copy, env=environment(copy), capture_output=True,
                          text=True, check=True)
    for line in done.stdout.split():
        if not Path(line).resolve().is_relative_to(copy.resolve()):
            raise SystemExit(f"the copy imports {line}, not its own sources; check the editable install")


def run_tests(copy: Path, tests: tuple[str, ...], timeout: int) -> tuple[int, str, float]:
    """pytest on ``tests`` in the copy (stop at the first failure); returns (exit status, output, seconds)."""
    command = [sys.executable, "-m", "pytest", *tests, "-q", "-x", "-p", "no:cacheprovider"]
    started = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=copy, env=environment(copy), capture_output=True, text=True,
                              timeout=timeout)
        status, output = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as expired:
        status, output = 124, f"timed out after {timeout} s\n{expired.stdout or ''}"
    return status, output, time.perf_counter() - started


def first_failure(output: str) -> str:
    """The first ``FAILED``/``ERROR`` test id of pytest's summary (or the last line)."""
    for line in output.splitlines():
        match = re.match(r"^(FAILED|ERROR) (\S+)", line)
        if match:
            return match.group(2)
    lines = [line for line in output.splitlines() if line.strip()]
    return lines[-1] if lines else ""


@dataclass
class Outcome:
    mutant: Mutant
    result: str
    detail: str = ""
    seconds: float = 0.0


def check(mutant: Mutant, copy: Path, timeout: int) -> Outcome:
    """Apply ``mutant`` in the copy, run its tests, restore the file."""
    path = copy / mutant.path
    if not path.is_file():
        return Outcome(mutant, "not applied", f"{mutant.path} is missing")
    original = path.read_text(encoding="utf-8")
    if original.count(mutant.old) != 1:
        return Outcome(mutant, "not applied", f"the patched text occurs {original.count(mutant.old)} times")
    path.write_text(original.replace(mutant.old, mutant.new), encoding="utf-8")
    try:
        status, output, seconds = run_tests(copy, mutant.tests, timeout)
    finally:
        path.write_text(original, encoding="utf-8")
    if status == 0:
        return Outcome(mutant, "survived", "all tests passed", seconds)
    if status == 5:
        return Outcome(mutant, "survived", "no tests ran", seconds)
    return Outcome(mutant, "killed", first_failure(output), seconds)


def report(outcomes: list[Outcome], baseline_seconds: float, started: str) -> str:
    """The results as Markdown."""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    killed = sum(o.result == "killed" for o in outcomes)
    lines = [
        "# Mutation check results",
        "",
        f"`scripts/mutation_check.py`, run {started} on commit {commit} (working tree as it was), "
        f"{os.cpu_count()} CPU cores; baseline (all listed tests, unmutated) passed in {baseline_seconds:.0f} s.",
        "",
        f"**{killed} of {len(outcomes)} mutants killed.**",
        "",
        "| mutant | what it breaks | file | result | first failing test | s |",
        "|---|---|---|---|---|---|",
    ]
    for o in outcomes:
        detail = o.detail.replace("|", "\\|")
        lines.append(f"| `{o.mutant.name}` | {o.mutant.what} | `{o.mutant.path}` | {o.result} | `{detail}` | "
                     f"{o.seconds:.0f} |")
    rerun = "nice -n 19 .venv/bin/python scripts/mutation_check.py --write docs/mutation-results.md"
    lines += ["", NOTES, "", f"Rerun: `{rerun}`.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", default=[], help="run only this mutant (repeatable)")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--write", type=Path, help="write the results as Markdown to this file")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per test run")
    parser.add_argument("--keep", action="store_true", help="keep the scratch copy (its path is printed)")
    args = parser.parse_args(argv)
    chosen = [m for m in MUTANTS if not args.only or m.name in args.only]
    unknown = set(args.only) - {m.name for m in MUTANTS}
    if unknown:
        parser.error(f"unknown mutant(s): {', '.join(sorted(unknown))}")
    if args.list:
        for m in MUTANTS:
            print(f"{m.name:32s} {m.path:40s} {m.what}")
        return 0

    started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    scratch = Path(tempfile.mkdtemp(prefix="medseg-mutation-"))
    try:
        files = copy_tree(scratch)
        print(f"copied {files} files to {scratch}", flush=True)
        check_imports(scratch)
        tests = tuple(dict.fromkeys(t for m in chosen for t in m.tests))
        status, output, baseline = run_tests(scratch, tests, args.timeout * 2)
        if status != 0:
            print(output[-4000:])
            print(f"baseline fails ({first_failure(output)}): fix the suite before judging mutants")
            return 2
        print(f"baseline passed in {baseline:.0f} s", flush=True)
        outcomes = []
        for mutant in chosen:
            outcome = check(mutant, scratch, args.timeout)
            outcomes.append(outcome)
            print(f"{mutant.name:32s} {outcome.result:12s} {outcome.seconds:5.0f} s  {outcome.detail}", flush=True)
    finally:
        if args.keep:
            print(f"scratch copy kept: {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    text = report(outcomes, baseline, started)
    if args.write:
        args.write.write_text(text, encoding="utf-8")
        print(f"wrote {args.write}")
    return 0 if all(o.result == "killed" for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
