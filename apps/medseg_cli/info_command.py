"""`medseg info PATH`: what discovery and the readers see. Never prints patient identifiers."""

from __future__ import annotations

import argparse
import sys

from medseg.config import DEFAULT_MAX_VOXELS
from medseg.io.inspect import SourceReport, inspect_path


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


def format_report(report: SourceReport) -> str:
    """One line per source; failures give the file and the reason."""
    source = report.source
    label = f"{source.kind} {source.path}"
    if source.kind.startswith("dicom"):
        label += f" [{source.modality or '?'}] '{source.description}'"
        if source.files:
            label += f" ({len(source.files)} files)"
    if not report.ok:
        return f"ERROR {label}: {report.error}"
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
        print(format_report(report))
    for skipped in discovery.skipped:
        print(f"SKIP  {skipped.path}: {skipped.reason}")
    failed = sum(not report.ok for report in reports)
    if not reports:
        print(f"medseg info: error: {args.path}: no scans found", file=sys.stderr)
        return 1
    print(f"{len(reports)} scan(s), {failed} unreadable, {len(discovery.skipped)} file(s) skipped")
    return 1 if failed else 0
