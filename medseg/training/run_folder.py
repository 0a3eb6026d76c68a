"""The run folder: resolved config, seed and package versions, the split, and where things go.

Layout::

    RUN/config.yaml         the resolved ExperimentConfig (absolute paths); ``--resume`` reads it
    RUN/command.txt         the command line that started the run
    RUN/run.json            seed, package versions, device and world size of each start
    RUN/split.json          the patient-level split (``medseg.data.splits``)
    RUN/log.csv             one row per epoch; RUN/plots/{loss,dice}.png; RUN/tensorboard/ if installed
    RUN/checkpoints/last.pt, RUN/checkpoints/best.pt
"""

from __future__ import annotations

import importlib.metadata
import json
import platform
import shlex
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from medseg.config import ExperimentConfig, config_to_dict, load_config, load_yaml
from medseg.errors import ConfigError
from medseg.io.atomic import atomic_write_text
from medseg.io.folder_lock import FolderLock
from medseg.io.safe_folder import make_own_folder

PACKAGES = ("medseg", "torch", "monai", "numpy", "nibabel", "pydicom", "SimpleITK", "scipy")


@dataclass(frozen=True)
class RunPaths:
    """Files of one run folder."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def command(self) -> Path:
        return self.root / "command.txt"

    @property
    def info(self) -> Path:
        return self.root / "run.json"

    @property
    def split(self) -> Path:
        return self.root / "split.json"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def last(self) -> Path:
        return self.checkpoints / "last.pt"

    @property
    def best(self) -> Path:
        return self.checkpoints / "best.pt"


@contextmanager
def run_folder_lock(root: Path) -> Iterator[None]:
    """Hold the run folder's exclusive lock (``medseg.io.folder_lock``) on rank 0 for the whole run.

    Two processes training into one folder would delete each other's checkpoint temp files, both
    pass the ``last.pt`` check and interleave ``run.json``; the second one stops at once instead,
    naming the first one's pid. Other torchrun ranks take no lock: torchrun stops them when rank 0 fails.

    Raises:
        OutputError: another process holds the lock, or the folder is a link or someone else's.
    """
    from medseg.training.distributed import launcher_rank

    if launcher_rank() != 0:
        yield
        return
    make_own_folder(root, "run folder")
    with FolderLock(root, "run folder"):
        yield


def package_versions() -> dict[str, str]:
    """Installed versions of the packages a result depends on ("" when not installed)."""
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = ""
    if not versions["medseg"]:
        from medseg import (
            __version__,  # running from a source tree that is not pip-installed
        )

        versions["medseg"] = __version__
    return versions


def write_config(config: ExperimentConfig, paths: RunPaths) -> None:
    """Write the resolved config as YAML."""
    text = yaml.safe_dump(config_to_dict(config), sort_keys=False)
    atomic_write_text(paths.config, text)


def read_run_config(run_dir: str | Path) -> ExperimentConfig:
    """The config a run was started with (``RUN/config.yaml``).

    Raises:
        ConfigError: the folder holds no run, or its config no longer loads.
    """
    paths = RunPaths(Path(run_dir))
    if not paths.config.is_file():
        raise ConfigError(f"{paths.root}: not a run folder (no config.yaml); start one with `medseg train --config FILE --out RUN`")
    try:
        return load_config(ExperimentConfig, load_yaml(paths.config))
    except ConfigError as error:
        raise ConfigError(f"{paths.config}: {error}") from None


def record_command(run_dir: str | Path, argv: list[str]) -> None:
    """Keep the command line that created the run as ``RUN/command.txt`` (first one wins; resumes keep it)."""
    path = RunPaths(Path(run_dir)).command
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, shlex.join(argv) + "\n")


def record_start(paths: RunPaths, config: ExperimentConfig, **facts: Any) -> None:
    """Add this start (time, epoch, device, world size...) to ``run.json``; versions and seed on top.

    A read-modify-write: call it only while holding ``run_folder_lock`` (``medseg.training.loop`` does)."""
    info: dict[str, Any] = {}
    if paths.info.is_file():
        info = json.loads(paths.info.read_text(encoding="utf-8"))
    info.setdefault("seed", config.seed)
    info["versions"] = package_versions()
    info.setdefault("starts", []).append({"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **facts})
    atomic_write_text(paths.info, json.dumps(info, indent=2) + "\n")
