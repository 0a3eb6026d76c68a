"""`medseg info PATH`: what discovery and the readers see. Never prints patient identifiers.

DICOM sources are named by SeriesInstanceUID, never by their folder or file names (PACS exports
name folders after the patient, and this output ends up in logs); their error texts are redacted
the same way. Image files (NIfTI, NRRD, MetaImage) keep their paths. Skipped files are counted per
reason.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from medseg.config import DEFAULT_MAX_VOXELS
from medseg.io.inspect import SourceReport, inspect_path
from medseg.io.redact import redact_names


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the subcommand."""
    parser = subparsers.add_parser(
        "info",
        help="list the scans in a file or study folder and how they read",
        description="Discover the scans under PATH, read each one, and print series, shape, spacing, "
        "orientation and intensity range. Exit status 0 only when every scan reads.",
    )
    parser.add_argument("path", help="a scan file, a DICOM series folder, or a study folder")
    parser.add_argument("--max-voxels", type=int, default=DEFAULT_MAX_VOXELS, help="refuse larger scans")
    parser.set_defaults(run=run)


def format_report(report: SourceReport, root: Path | None = None) -> str:
    """One line per source; failures give the file (DICOM: the series UID) and the reason."""
    source = report.source
    if source.kind.startswith("dicom"):
        label = f"{source.kind} series {source.series_uid or '(unknown: damaged header)'}"
        label += f" [{source.modality or '?'}] '{source.description}'"
        if source.files:
            label += f" ({len(source.files)} files)"
    else:
        label = f"{source.kind} {source.path}"
    if not report.ok:
        error = report.error
        if source.kind.startswith("dicom"):
            error = redact_names(error, [*source.files, source.path], root)
        return f"ERROR {label}: {error}"
    spacing = "x".join(f"{value:.3g}" for value in report.spacing)
    low, high = report.intensity_range
    return (
        f"OK    {label}: shape {tuple(report.shape)} spacing {spacing} mm "
        f"orientation {report.orientation} {report.dtype} range [{low:.6g}, {high:.6g}]"
    )


def run(args: argparse.Namespace) -> int:
    """Print one line per source and per skipped file; 1 when any source fails to read."""
    discovery, reports = inspect_path(args.path, max_voxels=args.max_voxels)
    for report in reports:
        print(format_report(report, Path(args.path)))
    for reason, count in sorted(discovery.skipped_counts.items(), key=lambda item: (-item[1], item[0])):
        print(f"SKIP  {count} file(s): {reason}")
    failed = sum(not report.ok for report in reports)
    if not reports:
        print(f"medseg info: error: {args.path}: no scans found", file=sys.stderr)
        return 1
    print(f"{len(reports)} scan(s), {failed} unreadable, {discovery.n_skipped} file(s) skipped")
    return 1 if failed else 0
