"""Window/level for reading: CT presets in Hounsfield units, an MR percentile auto-window, drag steps.

A window is a (level, width) pair: grey values from ``level - width / 2`` (black) to
``level + width / 2`` (white), napari's ``contrast_limits``. CT presets are the usual reading
windows (brain 80/40, subdural 200/75, stroke 40/40, bone 1800/400, lung 1500/-600, soft
tissue/abdomen 400/50; width/level in HU). MR intensities have no absolute scale, so its
window is automatic: the 1st to 99th percentile of the voxels above the lowest value (the
air around the head would otherwise pull the window down). Any other modality gets the
automatic window too.

Dragging: a horizontal move changes the width, a vertical move the level, by
``width / 200`` per screen pixel (so a drag feels the same at every width); right widens,
down raises the level (the picture darkens), as in most PACS viewers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

AUTO = "auto (percentiles)"
CT_PRESETS: dict[str, tuple[float, float]] = {  # name -> (level, width), HU
    "brain": (40.0, 80.0),
    "subdural": (75.0, 200.0),
    "stroke": (40.0, 40.0),
    "bone": (400.0, 1800.0),
    "lung": (-600.0, 1500.0),
    "soft tissue/abdomen": (50.0, 400.0),
}
AUTO_PERCENTILES = (1.0, 99.0)
DRAG_FRACTION = 1 / 200  # of the width, per screen pixel
MIN_WIDTH = 1e-3


@dataclass(frozen=True)
class Window:
    """A grey-value window: ``level`` (centre) and ``width``."""

    level: float
    width: float

    @property
    def limits(self) -> tuple[float, float]:
        """(low, high) grey values: napari's ``contrast_limits``."""
        return (self.level - self.width / 2, self.level + self.width / 2)

    @classmethod
    def from_limits(cls, low: float, high: float) -> Window:
        """The window of contrast limits ``(low, high)``."""
        return cls(level=(low + high) / 2, width=max(high - low, MIN_WIDTH))

    def text(self) -> str:
        """``"W 80 L 40"``: what the viewer shows."""
        return f"W {self.width:.4g} L {self.level:.4g}"


def presets(modality: str) -> tuple[str, ...]:
    """The preset names offered for a modality (DICOM code such as ``"CT"``, ``"MR"``, or ``""``)."""
    if modality.upper() == "CT":
        return (*CT_PRESETS, AUTO)
    return (AUTO,)


def auto_window(data: np.ndarray, percentiles: tuple[float, float] = AUTO_PERCENTILES) -> Window:
    """The percentile window of an image (finite voxels above its minimum; all finite voxels when none)."""
    values = np.asarray(data)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return Window(level=0.5, width=1.0)
    above = values[values > values.min()]
    low, high = np.percentile(above if above.size else values, percentiles)
    return Window.from_limits(float(low), float(high) if high > low else float(low) + 1.0)


def preset_window(name: str, data: np.ndarray | None = None) -> Window:
    """The window of a preset name (``AUTO`` needs the image ``data``).

    Raises:
        KeyError: an unknown preset name (the message lists the known ones).
    """
    if name in CT_PRESETS:
        level, width = CT_PRESETS[name]
        return Window(level=level, width=width)
    if name == AUTO:
        if data is None:
            raise KeyError(f"the {AUTO!r} window needs the image")
        return auto_window(data)
    raise KeyError(f"unknown window preset {name!r}; known: {', '.join([*CT_PRESETS, AUTO])}")


def default_preset(modality: str) -> str:
    """The preset a case opens with: soft tissue/abdomen for CT, the automatic window otherwise."""
    return "soft tissue/abdomen" if modality.upper() == "CT" else AUTO


def drag_window(window: Window, dx: float, dy: float, fraction: float = DRAG_FRACTION) -> Window:
    """The window after a drag of ``(dx, dy)`` screen pixels (see the module docstring)."""
    step = max(window.width, MIN_WIDTH) * fraction
    return Window(level=window.level + dy * step, width=max(window.width + dx * step, MIN_WIDTH))


def modality_of(declared: str, data: np.ndarray | None = None) -> str:
    """The modality that chooses the presets: the declared DICOM code, else ``"CT"`` for an image
    reaching -500 or below (air in Hounsfield units; a NIfTI CT declares nothing), else ``""``."""
    if declared:
        return declared.upper()
    if data is not None:
        values = np.asarray(data)
        if values.size and np.nanmin(values) <= -500:
            return "CT"
    return ""
