"""The model-comparison report puts each model's numbers in its own column, per condition and class."""

from __future__ import annotations

import sys
from pathlib import Path

import nibabel
import pytest

from medseg.evaluation import peak_memory
from medseg.evaluation.model_comparison import ModelResults, condition_table, summary_table

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "inference"))
from batch_helpers import tiny_model_folder, write_nifti  # noqa: E402


def _checks(gm: float, hd95: float, seconds: float) -> dict:
    def row(condition: str, group: str) -> dict:
        return {"condition": condition, "group": group, "dice": {"CSF": 0.5, "GM": gm, "WM": 0.8, "mean": 0.6},
                "hd95_mm": {"CSF": 3.0, "GM": hd95, "WM": 2.0, "mean": 2.5},
                "surface_dice": {"CSF": 0.7, "GM": 0.9, "WM": 0.95, "mean": 0.85},
                "ece_away": 0.02, "ece_all": 0.05, "auroc_all": 0.7}
    timing = [{"condition": "timing", "group": "timing", "tta": tta, "seconds": seconds * (2 if tta else 1)}
              for tta in (False, True)]
    return {"rows": [row("sample", "sample"), row("robex-t1: skull-stripped", "real: robex-t1"), *timing]}


def test_tables_hold_each_models_own_numbers() -> None:
    models = [
        ModelResults("unet", _checks(0.81, 2.4, 2.0), {"training": {"training_seconds": 5830, "epochs": 125}},
                     1_234_567, {"peak_mib": 900.0, "scan_mib": 400.0}),
        ModelResults("deepmedic", _checks(0.77, 5.6, 3.5), {"training": {"training_seconds": 6000, "epochs": 64}},
                     659_084, {"peak_mib": 1500.0, "scan_mib": 1100.0}),
    ]
    summary = summary_table(models)
    assert "1,234,567" in summary and "659,084" in summary
    assert "97 min, 125 epochs" in summary and "100 min, 64 epochs" in summary
    assert "| 2.0 | 3.5 |" in summary and "| 4.0 | 7.0 |" in summary  # warm 1 mm head, then with TTA
    assert "900 / 400" in summary and "1,500 / 1,100" in summary
    table = condition_table(models)
    stripped = next(line for line in table.splitlines() if line.startswith("| robex-t1: skull-stripped"))
    cells = [cell.strip() for cell in stripped.strip("|").split("|")]
    assert cells[2] == "0.81 / 2.4 / 0.90" and cells[5] == "0.77 / 5.6 / 0.90"  # GM of each model


def test_peak_memory_runs_a_model_in_a_fresh_process(tmp_path) -> None:
    model = tiny_model_folder(tmp_path / "models")
    scan = write_nifti(tmp_path / "scan.nii.gz", seed=3)
    result = peak_memory.measure(model, scan)
    # A fresh interpreter with torch and a model loaded holds well over 100 MiB; the scan adds a little.
    assert result["after_load_mib"] > 100 and result["peak_mib"] >= result["after_load_mib"]
    assert result["scan_mib"] == pytest.approx(result["peak_mib"] - result["after_load_mib"], abs=0.11)
    assert result["shape"] == list(nibabel.load(str(scan)).shape[:3])


def test_interleaved_timing_runs_every_model_each_round_and_reports_medians(tmp_path) -> None:
    from medseg.evaluation.interleaved_timing import interleaved_seconds

    import shutil

    first = tiny_model_folder(tmp_path / "a")
    second = Path(shutil.copytree(first, tmp_path / "other-model"))
    scan = write_nifti(tmp_path / "scan.nii.gz", seed=5)
    result = interleaved_seconds([first, second], scan, rounds=3)
    names = [first.name, second.name]
    assert result["rounds"] == 3 and list(result["seconds"]) == names
    for name in names:
        values = result["seconds"][name]
        assert len(values) == 3 and all(v > 0 for v in values)
        assert result["median"][name] == sorted(values)[1]
    assert result["ratio_to_first"][names[0]] == pytest.approx(1.0)
    models = [ModelResults(name, _checks(0.8, 2.0, 2.0), {}, 1, {"peak_mib": 1.0, "scan_mib": 1.0},
                           {"rounds": 3, "median": result["median"][name], "ratio": result["ratio_to_first"][name],
                            "seconds": result["seconds"][name]}) for name in names]
    assert "3 interleaved rounds" in summary_table(models)
    with pytest.raises(ValueError, match="rounds"):
        interleaved_seconds([first], scan, rounds=0)
