"""`--config PRESET|FILE` of `medseg train` and `medseg lr-find`: a path, or a bundled preset by name.

A preset given by name takes its relative paths as if it sat in ``./models/presets/`` (so
``brain-tissue-unet`` trains on ``./data/brain-tissue``). A bundled preset (by name or path) whose
bundled sample is missing gets it built first; any other config whose data set is a missing bundled
sample stops with the command that builds it (``medseg.data.preset_sample``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from medseg.config import ExperimentConfig

HELP = "bundled preset name (e.g. brain-tissue-unet; `medseg models`) or experiment YAML"


def load_config_arg(text: Path, overrides: Sequence[str]) -> ExperimentConfig:
    """The experiment from a path or a bundled preset, with its missing bundled sample built (or named)."""
    from medseg.config import load_experiment
    from medseg.data.preset_sample import build_missing_sample, missing_sample, refuse_missing_sample
    from medseg.resources import is_bundled, resolve

    path = resolve("preset", text)
    by_name = path != text
    config = load_experiment(path, list(overrides), base=Path.cwd() / "models" / "presets" if by_name else None)
    missing = missing_sample(config.data.dataset_json)
    if missing is not None:
        if not (by_name or is_bundled(path)):
            raise refuse_missing_sample(missing)
        print(f"{missing.dataset_json} is missing: building the bundled sample ({missing.command})", flush=True)
        build_missing_sample(missing)
    return config
