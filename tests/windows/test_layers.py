"""Layers point down: inference needs no training code (the window runner and weights loader live below both)."""

from __future__ import annotations

import subprocess
import sys


def test_importing_inference_imports_no_training_module() -> None:
    code = ("import sys, medseg.inference, medseg.inference.predictor, medseg.windows; "
            "print(sorted(m for m in sys.modules if m.startswith('medseg.training')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=600)
    assert done.stdout.strip().splitlines()[-1] == "[]"
