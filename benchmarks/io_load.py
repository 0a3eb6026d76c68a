"""I/O benchmark: medseg's readers against SimpleITK's ImageSeriesReader and nibabel alone, in one run.

Writes a volume (default 512x512x300 int16) as a DICOM series and as NIfTI (.nii, .nii.gz), then times
each reader in interleaved rounds (baseline, medseg, baseline, medseg...) and reports the fastest of each
and the ratio medseg / baseline (lower is faster). medseg does more per read (series checks, geometry
validation, NaN/size checks), and the ratio shows what that costs. medseg's header cache
(``medseg.io.dicom_headers``) is cleared before each of its reads: every round parses every header.

Usage:
    python benchmarks/io_load.py [--shape 512 512 300] [--repeats 5]   # writes benchmarks/results/io_load.{json,md}
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ensure_root_on_path, machine, write_results  # noqa: E402

ensure_root_on_path()

from medseg.io import read_scan  # noqa: E402
from medseg.io.dicom_export import write_dicom_series  # noqa: E402
from medseg.io.dicom_headers import clear_header_cache  # noqa: E402
from medseg.types import Volume  # noqa: E402


def sitk_series(folder: Path) -> np.ndarray:
    """Baseline: SimpleITK/GDCM series reader, shape (Z, Y, X)."""
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    return sitk.GetArrayFromImage(reader.Execute())


def nibabel_load(path: Path) -> np.ndarray:
    """Baseline: nibabel alone, raw stored values read into memory (not a lazy memmap), shape (I, J, K)."""
    return np.array(nib.load(path).dataobj)


def fastest_interleaved(first: Callable[[], object], second: Callable[[], object], rounds: int) -> tuple[float, float]:
    """The fastest of ``rounds`` alternating calls of each (first, second, first, second...)."""
    best = [float("inf"), float("inf")]
    for _ in range(rounds):
        for index, function in enumerate((first, second)):
            start = time.perf_counter()
            function()
            best[index] = min(best[index], time.perf_counter() - start)
    return best[0], best[1]


def fresh_read(path: Path) -> object:
    """medseg's read with no header kept from an earlier round."""
    clear_header_cache()
    return read_scan(path)


def run(shape: tuple[int, int, int], repeats: int) -> list[dict[str, object]]:
    """Time each (case, medseg reader, baseline reader) pair; returns one row per case."""
    rng = np.random.default_rng(0)
    array = rng.integers(-1000, 2000, size=(1, *shape), dtype=np.int16)
    affine = np.diag([-0.7, 0.7, 1.0, 1.0])
    volume = Volume(array=array, affine=affine)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        series = root / "series"
        write_dicom_series(volume, series, modality="CT")
        image = nib.Nifti1Image(array[0], affine)
        image.set_qform(affine, code=1)
        image.set_sform(affine, code=1)
        for name in ("scan.nii", "scan.nii.gz"):
            nib.save(image, root / name)
        cases = [
            ("DICOM series", lambda: fresh_read(series), lambda: sitk_series(series), "SimpleITK ImageSeriesReader"),
            ("NIfTI .nii", lambda: read_scan(root / "scan.nii"), lambda: nibabel_load(root / "scan.nii"), "nibabel"),
            ("NIfTI .nii.gz", lambda: read_scan(root / "scan.nii.gz"), lambda: nibabel_load(root / "scan.nii.gz"),
             "nibabel"),
        ]
        for label, medseg_read, baseline_read, baseline_name in cases:
            medseg_read()  # warm the page cache and imports for both
            baseline_read()
            baseline_s, medseg_s = fastest_interleaved(baseline_read, medseg_read, repeats)
            rows.append(
                {
                    "case": label,
                    "shape": list(shape),
                    "baseline": baseline_name,
                    "baseline_s": round(baseline_s, 4),
                    "medseg_s": round(medseg_s, 4),
                    "ratio_medseg_over_baseline": round(medseg_s / baseline_s, 3),
                }
            )
    return rows


def markdown(rows: list[dict[str, object]]) -> str:
    """A Markdown table of the rows."""
    lines = ["| input | baseline | baseline s | medseg s | medseg / baseline |", "|---|---|---|---|---|"]
    for row in rows:
        lines.append(
            f"| {row['case']} {'x'.join(map(str, row['shape']))} | {row['baseline']} | "
            f"{row['baseline_s']:.3f} | {row['medseg_s']:.3f} | {row['ratio_medseg_over_baseline']:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    """Parse arguments, run, print the table, write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=3, default=(512, 512, 300))
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds (the fastest of each counts)")
    args = parser.parse_args()
    facts = machine()
    rows = run(tuple(args.shape), args.repeats)
    table = markdown(rows)
    print(table)
    payload = {"benchmark": "io_load", "machine": facts, "load_average_end": machine()["load_average"],
               "repeats": args.repeats, "rows": rows}
    print(f"wrote {write_results('io_load', payload, table)}")


if __name__ == "__main__":
    main()
