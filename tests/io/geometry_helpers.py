"""Geometry helpers shared by the I/O tests."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation


def rotation(ax: float, ay: float, az: float) -> np.ndarray:
    """A 3x3 rotation from Euler angles in degrees about the fixed x, then y, then z axes (Rz @ Ry @ Rx)."""
    return Rotation.from_euler("xyz", [ax, ay, az], degrees=True).as_matrix()
