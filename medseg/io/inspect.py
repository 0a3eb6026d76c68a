"""What medseg sees in a path: discovery plus a read of every source (for `medseg info`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medseg.config import DEFAULT_MAX_VOXELS
from medseg.errors import InputError
from medseg.io.discover import Discovery, ScanSource, discover
from medseg.io.read import read_source
from medseg.io.redact import library_error


@dataclass(frozen=True)
class SourceReport:
    """The outcome of reading one source.

    Attributes:
        source: what discovery found (headers only).
        shape: (C, I, J, K) of the volume read, ``()`` on failure.
        spacing: (di, dj, dk) mm.
        orientation: axis codes, e.g. ``"LAS"``.
        intensity_range: (min, max) over all voxels.
        dtype: the array's dtype name.
        error: the reason it could not be read (``""`` on success).
    """

    source: ScanSource
    shape: tuple[int, ...] = ()
    spacing: tuple[float, ...] = ()
    orientation: str = ""
    intensity_range: tuple[float, float] = (0.0, 0.0)
    dtype: str = ""
    error: str = ""

    @property
    def ok(self) -> bool:
        """True when the source was read."""
        return not self.error


def inspect_path(path: str | Path, max_voxels: int = DEFAULT_MAX_VOXELS) -> tuple[Discovery, list[SourceReport]]:
    """Discover the scans under ``path`` and read each one.

    Returns:
        The discovery and one report per source, in discovery order. Errors are
        caught per source (any exception: its type and tag only) so one bad series does not hide the others.

    Raises:
        InputError: when ``path`` does not exist.
    """
    discovery = discover(path, max_voxels=max_voxels)
    reports = []
    for source in discovery.sources:
        if source.problem:
            reports.append(SourceReport(source=source, error=source.problem))
            continue
        try:
            volume = read_source(source, max_voxels=max_voxels)
        except InputError as error:
            reports.append(SourceReport(source=source, error=error.reason + (f" (hint: {error.hint})" if error.hint else "")))
            continue
        except Exception as error:  # noqa: BLE001 - one unreadable source never hides the others
            reports.append(SourceReport(source=source, error=f"cannot be read ({library_error(error)})"))
            continue
        array = volume.array
        reports.append(
            SourceReport(
                source=source,
                shape=tuple(int(s) for s in array.shape),
                spacing=volume.spacing,
                orientation=volume.orientation,
                intensity_range=(float(np.min(array)), float(np.max(array))),
                dtype=str(array.dtype),
            )
        )
    return discovery, reports
