"""The bundled sample a training config needs, when its ``dataset.json`` is not there yet.

The bundled presets train on bundled samples (``../../data/brain-tissue/dataset.json`` from
``models/presets/``). A missing ``dataset.json`` whose folder is named after a bundled sample
definition (``datasets/brain-tissue.yaml`` -> ``.../brain-tissue/dataset.json``) can be built
with ``medseg sample NAME --out FOLDER``; ``medseg train`` does that for a bundled preset and
names the command otherwise.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from medseg.errors import InputError
from medseg.resources import bundled_names, bundled_path


@dataclass(frozen=True)
class MissingSample:
    """A bundled sample to build.

    Attributes:
        name: the bundled definition (``medseg sample NAME``).
        folder: where it goes (the folder of the missing dataset.json).
        dataset_json: the file the config names.
    """

    name: str
    folder: Path
    dataset_json: Path

    @property
    def command(self) -> str:
        """The command that builds it."""
        return f"medseg sample {self.name} --out {shlex.quote(_shown(self.folder))}"


def missing_sample(dataset_json: str | Path) -> MissingSample | None:
    """The bundled sample that would be ``dataset_json``, when that file is missing; else None."""
    path = Path(dataset_json)
    if not str(dataset_json) or path.exists() or path.name != "dataset.json":
        return None
    name = path.parent.name
    return MissingSample(name, path.parent, path) if name in bundled_names("dataset") else None


def build_missing_sample(missing: MissingSample) -> Path:
    """Build the sample (``medseg sample``); returns its dataset.json."""
    from medseg.data.build import build_sample

    return build_sample(bundled_path("dataset", missing.name), missing.folder)


def refuse_missing_sample(missing: MissingSample) -> InputError:
    """The error for a config whose bundled sample is not built (and will not be built for it)."""
    return InputError(missing.dataset_json, "the training data set does not exist yet",
                      f"build it first: {missing.command}")


def _shown(folder: Path) -> str:
    """``folder`` relative to the current folder when it lies below it, else absolute."""
    try:
        return folder.resolve().relative_to(Path.cwd().resolve()).as_posix() or "."
    except ValueError:
        return str(folder)
