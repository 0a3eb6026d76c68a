"""MONAI datasets that cache the deterministic part of a transform chain.

``CacheDataset`` keeps preprocessed volumes in memory (small data sets, the default);
``PersistentDataset`` writes them to a cache folder (large data sets, several runs);
either way NIfTI files are decoded once, not every epoch.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from monai.data import CacheDataset, Dataset, PersistentDataset
from monai.transforms import Compose

from medseg.errors import ConfigError

CacheKind = Literal["memory", "disk", "none"]


def build_dataset(
    items: Sequence[dict[str, Any]],
    transform: Compose,
    cache: CacheKind = "memory",
    cache_dir: str | Path = "",
    num_workers: int = 0,
) -> Dataset:
    """A MONAI dataset over ``items`` (dicts of paths) with the chosen cache.

    Args:
        items: data dicts, e.g. ``{"image": [...], "label": ..., "patient": ...}``.
        transform: the chain; its leading deterministic transforms are cached.
        cache: ``"memory"`` (CacheDataset), ``"disk"`` (PersistentDataset) or ``"none"``.
        cache_dir: folder for ``"disk"`` (created when missing).
        num_workers: threads used to fill the memory cache.

    Raises:
        ConfigError: ``"disk"`` without a cache folder, or an unknown kind.
    """
    data = [dict(item) for item in items]
    if cache == "memory":
        return CacheDataset(data, transform=transform, cache_rate=1.0, num_workers=max(num_workers, 1),
                            progress=False, copy_cache=True)
    if cache == "disk":
        if not cache_dir:
            raise ConfigError("train.cache: 'disk' needs data.cache_dir (a folder for preprocessed volumes)")
        folder = Path(cache_dir)
        folder.mkdir(parents=True, exist_ok=True)
        return PersistentDataset(data, transform=transform, cache_dir=folder)
    if cache == "none":
        return Dataset(data, transform=transform)
    raise ConfigError(f"train.cache: unknown kind '{cache}' (choose memory, disk or none)")
