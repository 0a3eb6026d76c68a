"""Build hook: the wheel carries the source tree's datasets/ and models/ as medseg/_bundled/.

Everything else is declared in pyproject.toml. The files are taken at build time from the
top-level folders (one copy in the tree; the wheel always holds the current ones) and looked up
by name through ``medseg.resources``. Editable installs read the source tree directly.
"""

from __future__ import annotations

import os
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
# What a shipped model folder ships (medseg.resources.MODEL_FILES): never exports or stray files.
MODEL_FILES = ("model.yaml", "weights.pt", "model_card.json", "calibration.json")


def bundled_files(root: Path = ROOT) -> list[str]:
    """Paths relative to ``root`` of the sample definitions, presets and shipped model files."""
    files = sorted(p for p in (root / "datasets").glob("*.yaml"))
    files += sorted((root / "models" / "presets").glob("*.yaml"))
    for folder in sorted(p for p in (root / "models").iterdir() if (p / "model.yaml").is_file()):
        # An ensemble's members (medseg.inference.ensemble) are model folders under members/.
        members = sorted(p for p in (folder / "members").glob("*") if (p / "model.yaml").is_file())
        for part in (folder, *members):
            files += [part / name for name in MODEL_FILES if (part / name).is_file()]
    return [p.relative_to(root).as_posix() for p in files if p.is_file()]


class BuildWithBundled(build_py):
    """``build_py`` that also copies ``bundled_files()`` to ``medseg/_bundled/`` in the build folder."""

    def _get_data_files(self):  # noqa: ANN202 - setuptools' own signature
        files = super()._get_data_files()
        if getattr(self, "editable_mode", False):
            return files
        target = os.path.join(self.build_lib, "medseg", "_bundled")
        return [*files, ("medseg", str(ROOT), target, bundled_files())]


setup(cmdclass={"build_py": BuildWithBundled})
