"""`medseg predict`: segment every scan under INPUT with a model folder.

    medseg predict INPUT --model MODEL --out OUT_DIR [--uncertainty] [--probabilities] [--tta | --no-tta]
                   [--workers N] [--device cpu|cuda] [--no-progress] [--rtstruct]
    medseg predict URL [URL ...] --model MODEL --out OUT_DIR [--send-to ROOT_URL] [--credentials FILE] ...

URL is a study on a DICOMweb server, ``http(s)://HOST/.../studies/<StudyInstanceUID>``: it is retrieved
into OUT/studies/ and predicted like a local study (``medseg.inference.pacs_batch``); ``--send-to``
stores the DICOM-SEG (and RTSTRUCT) back into the study.

MODEL is a model folder or the name of a shipped one (`medseg models`: brain-tissue-unet).
Multi-process over machines or GPUs: ``torchrun --nproc_per_node N -m medseg predict ...``.
Exit status: 0 when every case succeeded (or was already complete), 1 when any case failed.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the subcommand."""
    parser = subparsers.add_parser(
        "predict",
        help="segment a scan, a DICOM series or a folder of studies with a model folder",
        description="Every scan found under INPUT (searched recursively) is segmented; each gets "
        "OUT/<case_id>/ with seg.nii.gz on the source grid, seg.dcm (DICOM-SEG) for DICOM input, "
        "case.json and a completion record. OUT/report.json lists every case with its status, QC flags, "
        "volumes and timings; OUT/report.md says the same for people (failures, the cases to review first). "
        "Case ids are pseudonymous. Rerunning skips complete cases and redoes the rest.",
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="scan file, DICOM series folder or study root; or one or more DICOMweb study URLs "
                        "http(s)://HOST/.../studies/<StudyInstanceUID>")
    parser.add_argument("--model", type=Path, required=True, metavar="MODEL",
                        help="model folder, or the name of a shipped model (`medseg models`)")
    parser.add_argument("--out", type=Path, required=True, metavar="OUT_DIR", help="output folder")
    parser.add_argument("--uncertainty", action="store_true", help="also write uncertainty.nii.gz (entropy, 0..1)")
    parser.add_argument("--probabilities", action="store_true",
                        help="also write probabilities.nii.gz (I, J, K, C) calibrated class probabilities, as they are "
                        "before the card's clean-up: where it removed a stray piece, seg.nii.gz says background")
    parser.add_argument("--tta", action=argparse.BooleanOptionalAction, default=None,
                        help="mirror test-time augmentation over the flips the model trained under (the brain "
                             "models: left-right, 2 passes; slower); default: what the model card says "
                             "(brain-tissue-unet: on, `medseg models MODEL`), --no-tta switches it off")
    parser.add_argument("--workers", type=int, default=1, help="parallel worker processes (default 1)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="inference device (default cpu)")
    parser.add_argument("--runtime", choices=("torch", "torchscript", "onnx"), default="torch",
                        help="run the weights (torch) or the model folder's `medseg export` file (default torch)")
    parser.add_argument("--trust-export", action="store_true",
                        help="load the folder's TorchScript/ONNX export even if your medseg did not make it; loading "
                        "an export runs code from it, so only for folders from a source you trust")
    parser.add_argument("--window-plan", choices=("auto", "windows", "whole", "segments", "monai"), default=None,
                        help="how the network covers the scan (default auto: the model's plan; see "
                        "medseg.windows.plans)")
    parser.add_argument("--memory-budget-gb", type=float, default=None, metavar="GB",
                        help="peak-memory budget of the network pass (default 6): larger scans get smaller "
                        "windows or segments")
    parser.add_argument("--no-refine", action="store_true",
                        help="skip the model card's intensity refinement (the network's probabilities as they are)")
    parser.add_argument("--no-ensemble", action="store_true",
                        help="with an ensemble model folder (`medseg ensemble`): its own network alone, without its "
                        "members (faster; the card's clean-up unchanged)")
    parser.add_argument("--no-bias-field", action="store_true",
                        help="refine on the intensities as they are, without dividing out the bias field the "
                        "model card names")
    parser.add_argument("--prior-weight", type=float, default=None, metavar="W",
                        help="override the model card's weight (0 < W <= 1) of the network's prior in the intensity "
                        "refinement; 1 = the network's probabilities as they are, lower lets the scan's own "
                        "intensities move tissue boundaries further")
    parser.add_argument("--stripped-background-odds", type=float, default=None, metavar="K",
                        help="override the model card's factor (0 < K <= 1; 1 = off) on the background's odds at the "
                        "signal voxels of a scan judged skull-stripped")
    parser.add_argument("--head-background-odds", type=float, default=None, metavar="K",
                        help="override the model card's factor (1 <= K <= 4; 1 = off) on the background's odds of a "
                        "scan with the skull on: higher labels less tissue outside the brain, at its edge's cost")
    parser.add_argument("--foreground-opening-mm", type=float, default=None, metavar="MM",
                        help="override the model card's foreground opening (models that keep the largest foreground "
                        "component): cut tissue joined through bridges narrower than about twice this radius; 0 = off")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--rtstruct", action="store_true",
                        help="also write rtstruct.dcm, an RT Structure Set of the predicted structures (DICOM series)")
    parser.add_argument("--send-to", metavar="ROOT_URL", default=None,
                        help="store each case's DICOM-SEG (and RTSTRUCT) into its study on this DICOMweb server "
                        "(http(s)://HOST/.../dicom-web; STOW-RS)")
    parser.add_argument("--credentials", type=Path, metavar="FILE", default=None,
                        help="JSON/YAML file with username and password, or token, for the DICOMweb server(s); "
                        "must be readable by you only (chmod 600); never printed")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the batch, print a summary and the failed cases; 1 when any case (or study) failed."""
    from medseg.errors import InputError
    from medseg.inference.batch import run_batch
    from medseg.inference.pacs_batch import run_pacs_batch, send_local_results
    from medseg.pacs.credentials import read_optional_credentials
    from medseg.pacs.dicomweb import is_dicomweb_url
    from medseg.resources import resolve

    urls = [text for text in args.inputs if is_dicomweb_url(text)]
    if urls and len(urls) != len(args.inputs):
        raise InputError(args.inputs[0], "give either study URLs or one local INPUT, not both", "run them apart")
    if not urls and len(args.inputs) > 1:
        raise InputError(args.inputs[1], "one local INPUT at a time (a folder of studies is searched recursively)",
                         "give the folder that holds them")
    credentials = read_optional_credentials(args.credentials)
    options = dict(uncertainty=args.uncertainty, runtime=args.runtime, probabilities=args.probabilities, tta=args.tta,
                   workers=args.workers, device=args.device, progress=not args.no_progress,
                   trust_export=args.trust_export, rtstruct=args.rtstruct, predictor_options=_predictor_options(args))
    model = resolve("model", args.model)
    if urls:
        pacs = run_pacs_batch(urls, model, args.out, credentials=credentials, send_to=args.send_to, **options)
        if pacs.batch is not None:
            _print_cases(pacs.batch)
        for study in pacs.studies:
            if study["status"] == "ok":
                sent = f", {study['sent_instances']} object(s) sent" if "sent_instances" in study else ""
                print(f"study {study['study_uid']}: {len(study['case_ids'])} case(s){sent}, "
                      f"round trip {study['round_trip_s']:.1f} s")
            else:
                print(f"FAILED study {study['url']} at {study['stage']}: {study['reason']}")
        print(f"report: {pacs.report_path}")
        return 0 if pacs.succeeded else 1
    result = run_batch(args.inputs[0], model, args.out, **options)
    if result.report_path is None:  # torchrun rank > 0: rank 0 reports
        return 0 if result.succeeded else 1
    code = _print_cases(result)
    if args.send_to:
        for sent in send_local_results(result, args.send_to, credentials):
            if sent["status"] != "ok":
                print(f"FAILED sending {sent['case_id']}: {sent['reason']}")
                code = 1
    return code


def _predictor_options(args: argparse.Namespace) -> dict[str, object]:
    """The Predictor options given on the command line (none: the model's defaults)."""
    from medseg.errors import ConfigError

    options: dict[str, object] = {}
    if args.window_plan is not None:
        options["window_plan"] = args.window_plan
    if args.memory_budget_gb is not None:
        if args.memory_budget_gb <= 0:
            raise ConfigError(f"--memory-budget-gb: must be positive, got {args.memory_budget_gb}")
        options["memory_budget_gb"] = args.memory_budget_gb
    if args.no_refine:
        options["intensity_refinement"] = False
    if args.no_bias_field:
        options["bias_correction"] = False
    if args.no_ensemble:
        options["ensemble"] = False
    if args.prior_weight is not None:
        options["prior_weight"] = args.prior_weight  # range checked by the Predictor
    if args.stripped_background_odds is not None:
        options["stripped_background_odds"] = args.stripped_background_odds  # range checked by the Predictor
    if args.head_background_odds is not None:
        options["head_background_odds"] = args.head_background_odds  # range checked by the Predictor
    if args.foreground_opening_mm is not None:
        options["foreground_opening_mm"] = args.foreground_opening_mm  # range checked by the Predictor
    return options


def _print_cases(result) -> int:  # noqa: ANN001 - a medseg.inference.batch.BatchResult
    """Print the failed cases and a summary; 1 when any case failed."""
    for case in result.cases:
        if case["status"] == "failed":
            print(f"FAILED {case['input']} -> {case['case_id']} at {case['stage']}: {case['reason']}")
    flagged = sum(1 for case in result.cases if case["status"] != "failed" and case.get("qc_flags"))
    print(f"{result.count('ok')} predicted, {result.count('skipped-complete')} already complete, "
          f"{result.count('failed')} failed, {flagged} flagged for review; report: {result.report_path} "
          f"(for people: {result.report_path.with_suffix('.md').name})")
    return 0 if result.succeeded else 1
