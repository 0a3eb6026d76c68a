"""Peak memory of segmenting one scan, measured in a fresh process.

``python -m medseg.evaluation.peak_memory MODEL_DIR SCAN`` loads the model, reads the scan, predicts and
writes the labels, and prints one JSON object: the process's peak resident memory (``ru_maxrss``) after
loading the model and after the whole run, and their difference (what the scan itself costs). A fresh
process is needed because ``ru_maxrss`` only grows: in a long-lived process it would report the largest
thing ever done there.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def measure(model_dir: str | Path, scan: str | Path) -> dict[str, Any]:
    """Run ``model_dir`` on ``scan`` in a child process; returns its peak-memory JSON (MiB and seconds)."""
    completed = subprocess.run(
        [sys.executable, "-m", "medseg.evaluation.peak_memory", str(model_dir), str(scan)],
        check=True, capture_output=True, text=True,
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    """Child side of ``measure``: prints one JSON line."""
    model_dir, scan = (argv if argv is not None else sys.argv[1:])[:2]
    from medseg.inference.predictor import Predictor
    from medseg.io import read_scan, write_labels

    predictor = Predictor.from_model(model_dir)
    loaded = _peak_mib()
    start = time.perf_counter()
    volume = read_scan(scan)
    prediction = predictor.predict(volume)
    with tempfile.TemporaryDirectory(prefix="medseg-memory-") as temporary:
        write_labels(prediction.labels, Path(temporary) / "labels.nii.gz", reference=volume)
    seconds = time.perf_counter() - start
    peak = _peak_mib()
    print(json.dumps({"peak_mib": round(peak, 1), "after_load_mib": round(loaded, 1),
                      "scan_mib": round(peak - loaded, 1), "seconds_cold": round(seconds, 2),
                      "shape": list(volume.spatial_shape)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
