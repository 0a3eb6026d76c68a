"""PNG figures of an evaluation: Dice box plot, contour overlays, reliability diagram.

Drawn on ``matplotlib.figure.Figure`` objects, not pyplot: no global backend or figure
state is touched (the napari app may run Qt beside it), and ``savefig`` renders with Agg
without a display. Written atomically.
Overlays are shown in radiological convention: the volume is reoriented to the closest
RAS axes (nibabel), axial slices are drawn with the patient's right on the left and
anterior at the top, with the voxel aspect ratio of the grid.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import nibabel.orientations
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from medseg.evaluation.calibration import ReliabilityData
from medseg.io.atomic import atomic_path
from medseg.types import spacing_from_affine

COLOURS = matplotlib.colormaps["tab10"].colors


def _save(figure: Figure, path: Path) -> Path:
    path = Path(path)
    with atomic_path(path) as temp:
        figure.savefig(temp, dpi=100, format="png")
    return path


def dice_boxplot(rows: Sequence[dict[str, Any]], class_names: Sequence[str], path: str | Path) -> Path:
    """Per-class Dice over cases, model beside baseline, as a box plot with the points on top."""
    figure = Figure(figsize=(max(4.0, 1.8 * len(class_names) + 1.5), 4.0))
    axes = figure.subplots()
    positions, data, colours = [], [], []
    for index, name in enumerate(class_names):
        for offset, (method, colour) in enumerate((("model", COLOURS[0]), ("baseline", COLOURS[7]))):
            values = [r["dice"] for r in rows if r["class"] == name and r["method"] == method]
            positions.append(index * 3 + offset)
            data.append(values)
            colours.append(colour)
    boxes = axes.boxplot(data, positions=positions, widths=0.7, patch_artist=True, showfliers=False)
    for patch, colour in zip(boxes["boxes"], colours):
        patch.set_facecolor(colour)
        patch.set_alpha(0.5)
    for position, values, colour in zip(positions, data, colours):
        axes.scatter(np.full(len(values), position), values, s=14, color=colour, zorder=3)
    axes.set_xticks([index * 3 + 0.5 for index in range(len(class_names))], list(class_names))
    axes.set_ylim(-0.05, 1.05)
    axes.set_ylabel("Dice")
    axes.set_title("Dice per class")
    axes.legend(handles=[Patch(color=COLOURS[0], alpha=0.5, label="model"),
                         Patch(color=COLOURS[7], alpha=0.5, label="majority-class baseline")],
                fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=2, frameon=False)
    axes.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    return _save(figure, Path(path))


@dataclass(frozen=True)
class OverlayCase:
    """One case of an overlay montage.

    Attributes:
        title: the row's title (e.g. ``"best: case_003 (Dice 0.91)"``).
        truth: (I, J, K) reference labels.
        prediction: (I, J, K) predicted labels.
        affine: (4, 4) voxel -> RAS mm of the grid.
        image: (I, J, K) scan intensities, or None (a plain background is drawn).
    """

    title: str
    truth: np.ndarray
    prediction: np.ndarray
    affine: np.ndarray
    image: np.ndarray | None = None


def _canonical(array: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """The array reoriented to the closest RAS axes."""
    return nibabel.orientations.apply_orientation(array, nibabel.orientations.io_orientation(affine))


def _canonical_spacing(affine: np.ndarray) -> np.ndarray:
    order = nibabel.orientations.io_orientation(affine)[:, 0].astype(int)
    spacing = np.empty(3)
    spacing[order] = spacing_from_affine(affine)
    return spacing


def _slices(truth: np.ndarray, n_slices: int) -> list[int]:
    """Axial slices through the reference's foreground (its 25/50/75 % quantiles), else evenly spaced."""
    counts = np.count_nonzero(truth, axis=(0, 1))
    if counts.sum() == 0:
        return [int(v) for v in np.linspace(0, truth.shape[2] - 1, n_slices + 2)[1:-1].round()]
    cumulative = np.cumsum(counts) / counts.sum()
    quantiles = np.linspace(0, 1, n_slices + 2)[1:-1]
    return [int(np.searchsorted(cumulative, q)) for q in quantiles]


def _display(plane: np.ndarray) -> np.ndarray:
    """RAS axial plane (x, y) -> image rows/columns: right on the left, anterior up (origin lower)."""
    return plane[::-1, :].T


def overlay_montage(
    cases: Sequence[OverlayCase], class_names: Sequence[str], path: str | Path, n_slices: int = 3
) -> Path:
    """Rows of axial slices, one row per case: reference contours solid, prediction dashed."""
    figure = Figure(figsize=(3.2 * n_slices, 3.4 * len(cases)))
    axes = figure.subplots(len(cases), n_slices, squeeze=False)
    for row, case in enumerate(cases):
        truth = _canonical(np.asarray(case.truth), case.affine)
        prediction = _canonical(np.asarray(case.prediction), case.affine)
        spacing = _canonical_spacing(case.affine)
        image = None if case.image is None else _canonical(np.asarray(case.image, dtype=np.float32), case.affine)
        low, high = (0.0, 1.0) if image is None else np.percentile(image, [1, 99])
        for column, z in enumerate(_slices(truth, n_slices)):
            axis = axes[row, column]
            background = np.zeros(truth.shape[:2]) if image is None else image[:, :, z]
            axis.imshow(_display(background), cmap="gray", vmin=low, vmax=max(high, low + 1e-6),
                        origin="lower", aspect=spacing[1] / spacing[0], interpolation="nearest")
            for label in range(1, len(class_names)):
                colour = COLOURS[(label - 1) % len(COLOURS)]
                for mask, style in ((truth[:, :, z] == label, "solid"), (prediction[:, :, z] == label, "dashed")):
                    if mask.any():
                        axis.contour(_display(mask.astype(np.float32)), levels=[0.5], colors=[colour],
                                     linestyles=style, linewidths=1.2)
            axis.set_xticks([])
            axis.set_yticks([])
            axis.set_title(f"axial slice {z}", fontsize=8)
        axes[row, 0].set_ylabel(case.title, fontsize=9)
    handles = [Line2D([], [], color=COLOURS[(label - 1) % len(COLOURS)], label=name)
               for label, name in enumerate(class_names) if label]
    handles += [Line2D([], [], color="dimgray", linestyle="solid", label="reference"),
                Line2D([], [], color="dimgray", linestyle="dashed", label="prediction")]
    figure.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
    figure.tight_layout(rect=(0, 0.04, 1, 1))
    return _save(figure, Path(path))


def reliability_diagram(data: ReliabilityData, path: str | Path, title: str = "Reliability (top label)") -> Path:
    """Accuracy against confidence per bin, with the diagonal and the bin counts."""
    figure = Figure(figsize=(4.5, 5.5))
    top, bottom = figure.subplots(2, 1, height_ratios=(3, 1), sharex=True)
    centres = (data.edges[:-1] + data.edges[1:]) / 2
    width = data.edges[1] - data.edges[0]
    filled = data.counts > 0
    top.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect calibration")
    top.bar(centres[filled], data.accuracy[filled], width=width * 0.9, color=COLOURS[0], alpha=0.7, label="accuracy")
    top.plot(data.confidence[filled], data.accuracy[filled], "o", color=COLOURS[3], markersize=3,
             label="mean confidence")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.set_ylabel("accuracy")
    top.set_title(f"{title}: ECE {data.ece:.4f}", fontsize=10)
    top.legend(fontsize=7, loc="upper left")
    bottom.bar(centres, data.counts, width=width * 0.9, color=COLOURS[7])
    bottom.set_yscale("log")
    bottom.set_xlabel("confidence")
    bottom.set_ylabel("voxels")
    figure.tight_layout()
    return _save(figure, Path(path))
