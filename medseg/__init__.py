"""medseg: medical-image segmentation with MONAI, served into napari."""

from __future__ import annotations

__version__ = "0.1.0"
