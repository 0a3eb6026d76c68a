"""The wheel: built from the tree, installed into a fresh venv outside it, used by name from an empty folder.

Nothing is downloaded: ``pip wheel --no-deps --no-build-isolation`` with this venv's setuptools, and
the fresh venv reaches this venv's dependencies through a .pth file (``scripts/wheel_check.py``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _wheel_check():
    spec = importlib.util.spec_from_file_location("wheel_check", ROOT / "scripts" / "wheel_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("wheel_check", module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.slow
def test_installed_wheel_lists_models_and_builds_the_sample_from_another_folder(tmp_path: Path) -> None:
    check = _wheel_check().check_wheel(tmp_path, builder="pip", deps_from=Path(sys.prefix), quick=True, log=False)

    # The wheel holds the tree's current files, mapped in at build time (not a second copy in the tree).
    expected = {f"medseg/_bundled/{p.relative_to(ROOT).as_posix()}": p for p in
                [*sorted((ROOT / "datasets").glob("*.yaml")), *sorted((ROOT / "models" / "presets").glob("*.yaml"))]}
    for name in ("brain-tissue-deepmedic", "brain-tissue-unet"):
        model = ROOT / "models" / name
        for folder in (model, *sorted((model / "members").glob("*"))):  # an ensemble's members travel too
            expected.update({f"medseg/_bundled/{p.relative_to(ROOT).as_posix()}": p for p in sorted(folder.iterdir())
                             if p.name in ("model.yaml", "weights.pt", "model_card.json", "calibration.json")})
    assert any("/members/unet-1.5mm/weights.pt" in name for name in expected)
    assert set(check.bundled) == set(expected)
    with zipfile.ZipFile(check.wheel) as archive:
        for name, source in expected.items():
            assert _sha(archive.read(name)) == _sha(source.read_bytes()), name
        assert "medseg_cli/models_command.py" in archive.namelist()
    assert not list((ROOT / "medseg").glob("_bundled"))  # the tree keeps one copy

    # The installed package, not this tree, answers in the empty folder.
    where = check.outputs["where"].splitlines()
    assert where[0].startswith(str(check.venv)) and where[1].endswith("site-packages/medseg/_bundled")
    assert "brain-tissue-unet " in check.outputs["models"] and "ct-phantom" in check.outputs["models"]
    assert "brain-tissue-deepmedic " in check.outputs["models"]
    card = check.outputs["card"]  # the installed card, read for people
    assert card.startswith("# brain-tissue-unet\n") and "## Known limitations\n\n- " in card
    assert "- members/deepmedic-outline: deepmedic" in card and "| robex-t1: whole head, skull on |" in card
    data = tmp_path / "empty" / "data"
    assert sorted(p.name for p in (data / "imagesTs").iterdir()) == ["brain_010.nii.gz", "brain_011.nii.gz"]
    assert (data / "dataset.json").is_file() and (data / "build_record.json").is_file()
