"""Run every benchmark (I/O, training, inference, the floor, the finish, DeepMedic) in turn; collect their tables.

Each script writes ``benchmarks/results/<name>.json`` and ``<name>.md``; this one runs them as
separate processes (so one's memory never counts in another's figures), prints their tables and
writes ``benchmarks/results/summary.md`` for the README.

Usage:
    python benchmarks/run_all.py [--quick]     # --quick: no 512x512x200 inference, 512x512x100 I/O, 8 training steps
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, ROOT, machine  # noqa: E402

HERE = Path(__file__).resolve().parent


def main() -> None:
    """Run the scripts, then write the summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller I/O volume, fewer steps, no 512x512x200")
    parser.add_argument("--big", action="store_true", help="also the 512x512x1000 CT inference (time and peak RSS)")
    args = parser.parse_args()
    runs = [
        ("io_load", ["--shape", "512", "512", "100", "--repeats", "2"] if args.quick else []),
        ("training", ["--iterations", "8"] if args.quick else []),
        ("inference", (["--quick", "--repeats", "2"] if args.quick else ["--variants"])
         + (["--big"] if args.big else [])),
        ("inference_floor", ["--rounds", "2"] if args.quick else ["--variants"]),
        ("finish", ["--rounds", "2"] if args.quick else []),
        ("deepmedic_inference", ["--rounds", "2"] if args.quick else []),
        ("refinement", ["--rounds", "2"] if args.quick else []),
    ]
    print(f"machine: {machine()}", flush=True)
    sections = []
    for name, extra in runs:
        print(f"\n== {name} ==", flush=True)
        subprocess.run([sys.executable, str(HERE / f"{name}.py"), *extra], cwd=ROOT, check=True)
        table = RESULTS / f"{name}.md"
        if table.is_file():
            sections.append(f"### {name}\n\n{table.read_text(encoding='utf-8')}")
    summary = RESULTS / "summary.md"
    summary.write_text("\n".join(sections), encoding="utf-8")
    print(f"\nwrote {summary}")


if __name__ == "__main__":
    main()
