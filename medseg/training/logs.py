"""Training logs: CSV, optional TensorBoard, and PNG plots of loss and Dice per class.

The checkpoint holds the history (one row per epoch); the CSV and the plots are
rewritten from it atomically, so a run killed and resumed never shows an epoch twice.
TensorBoard is written only when the ``tensorboard`` package is installed.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from medseg.io.atomic import atomic_path, atomic_write_text


def tensorboard_available() -> bool:
    """Whether ``torch.utils.tensorboard`` can be used (it needs the ``tensorboard`` package)."""
    return importlib.util.find_spec("tensorboard") is not None


class RunLogger:
    """Writes ``log.csv``, ``plots/*.png`` and (when available) ``tensorboard/`` in a run folder.

    Args:
        run_dir: the run folder.
        class_names: label names, background first (Dice columns use the others).
    """

    def __init__(self, run_dir: Path, class_names: Sequence[str]) -> None:
        self.run_dir = Path(run_dir)
        self.class_names = tuple(class_names)
        (self.run_dir / "plots").mkdir(parents=True, exist_ok=True)
        self._writer = None
        if tensorboard_available():
            from torch.utils.tensorboard import (
                SummaryWriter,  # local: optional dependency
            )

            self._writer = SummaryWriter(log_dir=str(self.run_dir / "tensorboard"))

    def write(self, history: Sequence[dict[str, Any]], plot: bool) -> None:
        """Rewrite the CSV from ``history``; add the last row to TensorBoard; redraw plots if ``plot``."""
        write_csv(history, self.run_dir / "log.csv")
        if self._writer is not None and history:
            row = history[-1]
            for key, value in row.items():
                if key != "epoch" and isinstance(value, (int, float)) and math.isfinite(value):
                    self._writer.add_scalar(key.replace("_", "/", 1), value, int(row["epoch"]))
            self._writer.flush()
        if plot:
            plot_history(history, self.run_dir / "plots", self.class_names)

    def close(self) -> None:
        """Close the TensorBoard writer."""
        if self._writer is not None:
            self._writer.close()


def write_csv(history: Sequence[dict[str, Any]], path: Path) -> None:
    """One row per epoch; columns are the union of the rows' keys in first-seen order."""
    columns: list[str] = []
    for row in history:
        columns += [key for key in row if key not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({key: _cell(value) for key, value in row.items()})
    atomic_write_text(path, buffer.getvalue())


def _cell(value: Any) -> Any:
    """Floats with 6 significant digits; NaN as empty."""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return value


def plot_history(history: Sequence[dict[str, Any]], folder: Path, class_names: Sequence[str]) -> None:
    """``loss.png`` (training and validation loss) and ``dice.png`` (validation Dice per class
    with the majority-class baseline dashed), written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot  # local: matplotlib is only needed when plotting

    epochs = [row["epoch"] for row in history]

    def series(key: str) -> tuple[list[float], list[float]]:
        points = [(row["epoch"], row[key]) for row in history if key in row and math.isfinite(row[key])]
        return [p[0] for p in points], [p[1] for p in points]

    figure, axes = pyplot.subplots(figsize=(6, 4))
    axes.plot(*series("train_loss"), label="training loss")
    axes.plot(*series("val_loss"), "o-", label="validation loss")
    axes.set_xlabel("epoch")
    axes.set_ylabel("loss")
    axes.set_xlim(left=min(epochs, default=0))
    axes.legend()
    axes.grid(alpha=0.3)
    _save(figure, folder / "loss.png")
    pyplot.close(figure)

    figure, axes = pyplot.subplots(figsize=(6, 4))
    for index, name in enumerate(class_names[1:], start=1):
        line = axes.plot(*series(f"val_dice_{name}"), "o-", label=f"{name}")[0]
        axes.plot(*series(f"baseline_dice_{name}"), "--", color=line.get_color(), alpha=0.6,
                  label=f"{name} (background-only baseline)" if index == 1 else None)
    axes.set_xlabel("epoch")
    axes.set_ylabel("validation Dice")
    axes.set_ylim(-0.02, 1.02)
    axes.legend(fontsize="small")
    axes.grid(alpha=0.3)
    _save(figure, folder / "dice.png")
    pyplot.close(figure)


def _save(figure: Any, path: Path) -> None:
    """Save a figure as PNG atomically."""
    with atomic_path(path) as temp:
        figure.tight_layout()
        figure.savefig(temp, format="png", dpi=100)
