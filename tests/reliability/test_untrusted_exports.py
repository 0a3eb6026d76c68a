"""Issue 17, findings 1 and 2: a model folder cannot run code through its export, and torch is not too old.

A planted TorchScript export (whose ``__setstate__`` prints a marker during ``torch.jit.load``)
with an ``export.json`` that vouches for itself must never be loaded unless the user trusts it;
export paths must stay inside the folder; pyproject's torch floor must be a safe one.
"""

from __future__ import annotations

import json
import shutil
import tomllib
from pathlib import Path

import hostile
import pytest
from batch_helpers import tiny_model_folder, write_nifti
from medseg_cli.main import main
from packaging.requirements import Requirement
from packaging.version import Version

from medseg.errors import InputError
from medseg.inference.completion import file_sha256
from medseg.research.export import export_model, load_model_export

ROOT = Path(__file__).resolve().parents[2]


def _planted_folder(base: Path, tmp_path: Path, file: str = "model.ts") -> Path:
    """A copy of the tiny model folder with a planted export and an export.json that vouches for it."""
    folder = tmp_path / "downloaded-model"
    shutil.copytree(tiny_model_folder(base), folder)
    hostile.planted_export(folder / "model.ts")
    record = {"torchscript": {"file": file, "weights_sha256": file_sha256(folder / "weights.pt")}}
    (folder / "export.json").write_text(json.dumps(record))
    return folder


def test_a_planted_torchscript_export_is_never_loaded(tmp_path_factory, tmp_path: Path,
                                                      capfd: pytest.CaptureFixture[str]) -> None:
    folder = _planted_folder(tmp_path_factory.getbasetemp(), tmp_path)
    scan = write_nifti(tmp_path / "scan.nii.gz", seed=1)
    status = main(["predict", str(scan), "--model", str(folder), "--out", str(tmp_path / "out"),
                   "--runtime", "torchscript", "--no-progress"])
    captured = capfd.readouterr()
    assert hostile.SETSTATE_MARKER not in captured.out + captured.err  # torch.jit.load never ran
    assert status == 2 and "refused to load" in captured.err and "--trust-export" in captured.err  # usage-level error
    with pytest.raises(InputError, match="not made by medseg export"):
        load_model_export(folder, "torchscript", store=tmp_path / "empty-store.json")


def test_trust_export_loads_it_on_the_users_word(tmp_path_factory, tmp_path: Path,
                                                 capfd: pytest.CaptureFixture[str]) -> None:
    folder = _planted_folder(tmp_path_factory.getbasetemp(), tmp_path)
    load_model_export(folder, "torchscript", trust=True)
    assert hostile.SETSTATE_MARKER in capfd.readouterr().out


def test_exports_made_here_are_trusted_through_a_store_outside_the_folder(tmp_path_factory, tmp_path: Path) -> None:
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_folder(tmp_path_factory.getbasetemp()), folder)
    store = tmp_path / "config" / "trusted-exports.json"
    export_model(folder, "torchscript", trust_store=store)
    assert file_sha256(folder / "model.ts") in json.loads(store.read_text())
    assert load_model_export(folder, "torchscript", store=store) is not None
    assert json.loads((folder / "export.json").read_text())["torchscript"]["file"] == "model.ts"
    hostile.planted_export(folder / "model.ts")  # swapped after the export: its hash is not in the store
    with pytest.raises(InputError, match="refused to load"):
        load_model_export(folder, "torchscript", store=store)


@pytest.mark.parametrize("file, reason", [
    ("/etc/passwd", "absolute path"), ("../model.ts", "climbs out"), ("sub/../../model.ts", "climbs out"),
])
def test_export_paths_stay_inside_the_model_folder(tmp_path_factory, tmp_path: Path, file: str, reason: str) -> None:
    folder = _planted_folder(tmp_path_factory.getbasetemp(), tmp_path, file=file)
    shutil.copy(folder / "model.ts", tmp_path / "model.ts")
    with pytest.raises(InputError, match=reason):
        load_model_export(folder, "torchscript", trust=True)  # not even with the user's trust


def test_the_torch_floor_is_a_safe_version() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    (torch,) = [Requirement(r) for r in project["dependencies"] if Requirement(r).name == "torch"]
    floors = [Version(spec.version) for spec in torch.specifier if spec.operator in (">=", "==", "~=")]
    assert floors and min(floors) >= Version("2.10"), torch  # CVE-2025-32434 (<2.6), CVE-2026-24747 (<2.10)
    assert not torch.specifier.contains("2.9.1") and not torch.specifier.contains("2.5.0")
