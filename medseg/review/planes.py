"""The three reading planes in napari's world (LPS mm, axes (S, P, L); see ``medseg.review.display``).

Each plane is a napari ``dims.order`` (the sliced world axis first, then the two shown ones:
rows, columns) and a 2D camera orientation (``(vertical, horizontal)``, napari's
``camera.orientation2d``), chosen for radiological display:

* axial: slices along S; rows P downwards (anterior at the top), columns L rightwards (the
  patient's right on the screen's left), seen from the feet.
* coronal: slices along P; rows S upwards (head at the top), columns L rightwards (patient's
  right on the screen's left), seen from the front.
* sagittal: slices along L; rows S upwards, columns P rightwards (the face on the screen's left).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Plane:
    """A reading plane: napari dims order (sliced axis first) and 2D camera orientation."""

    name: str
    order: tuple[int, int, int]
    orientation: tuple[str, str]

    @property
    def sliced_axis(self) -> int:
        """The world axis this plane slices (0 S, 1 P, 2 L)."""
        return self.order[0]


PLANES: dict[str, Plane] = {
    "axial": Plane("axial", (0, 1, 2), ("down", "right")),
    "coronal": Plane("coronal", (1, 0, 2), ("up", "right")),
    "sagittal": Plane("sagittal", (2, 0, 1), ("up", "right")),
}


def other_planes(main: str) -> tuple[str, str]:
    """The two planes shown beside ``main``, in axial, coronal, sagittal order."""
    if main not in PLANES:
        raise KeyError(f"unknown plane {main!r}; known: {', '.join(PLANES)}")
    first, second = (name for name in PLANES if name != main)
    return first, second
