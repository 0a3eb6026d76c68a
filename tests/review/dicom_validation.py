"""Validating a written DICOM file: dciodvfy (Debian's dicom3tools) when installed, highdicom reading back always."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


def dciodvfy_errors(path: Path) -> list[str] | None:
    """dciodvfy's "Error" lines for a file (``[]``: valid); None when dciodvfy is not installed."""
    tool = shutil.which("dciodvfy")
    if tool is None:
        return None
    result = subprocess.run([tool, str(path)], capture_output=True, text=True, timeout=120, check=False)
    return [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("Error")]
