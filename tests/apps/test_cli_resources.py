"""Bundled resources by name: `medseg models`, names in place of paths, a preset's missing sample, renamed commands."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from medseg_cli.main import main

from medseg.data import preset_sample
from medseg.errors import InputError
from medseg.resources import bundled_names, bundled_path, card_summary, resolve, resources_root

ROOT = Path(__file__).resolve().parents[2]


def test_models_lists_the_shipped_models_with_a_line_from_each_card(capsys: pytest.CaptureFixture) -> None:
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    model_line = next(line for line in lines if line.strip().startswith("brain-tissue-unet "))
    assert card_summary(ROOT / "models" / "brain-tissue-unet" / "model_card.json") in model_line
    assert "\n" not in card_summary(ROOT / "models" / "brain-tissue-unet" / "model_card.json")
    for name in ("brain-tissue-unet", "ct-phantom-unet", "brain-tissue", "ct-phantom"):
        assert f"  {name}" in out


def test_the_source_tree_is_the_resource_root_when_not_installed_from_a_wheel() -> None:
    assert resources_root() == ROOT
    assert bundled_names("model") == ("brain-tissue-deepmedic", "brain-tissue-unet")
    assert {"brain-tissue", "ct-phantom"} <= set(bundled_names("dataset"))
    assert bundled_path("preset", "brain-tissue-unet") == ROOT / "models" / "presets" / "brain-tissue-unet.yaml"


def test_an_existing_path_wins_over_a_bundled_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "brain-tissue").mkdir()  # a data folder of that name does not hide the definition
    assert resolve("dataset", "brain-tissue") == ROOT / "datasets" / "brain-tissue.yaml"
    assert resolve("dataset", "datasets/brain-tissue.yaml") == ROOT / "datasets" / "brain-tissue.yaml"
    own = tmp_path / "brain-tissue-unet"
    (own).mkdir(exist_ok=True)
    assert resolve("model", "brain-tissue-unet") == Path("brain-tissue-unet")  # the folder here
    assert resolve("model", str(ROOT / "models" / "brain-tissue-unet")) == ROOT / "models" / "brain-tissue-unet"


def test_an_unknown_name_lists_the_bundled_ones(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    expected = r"model folder not found, and 'brain-unet' is not a bundled one \(bundled: brain-tissue-deepmedic, brain-tissue-unet\)"
    with pytest.raises(InputError, match=expected):
        resolve("model", "nowhere/brain-unet")
    with pytest.raises(InputError, match="medseg models"):
        resolve("preset", "no-such-preset")
    with pytest.raises(InputError):
        bundled_path("model", "..")  # a name never climbs out of the bundled folder


def test_sample_by_name_builds_the_bundled_definition(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture) -> None:
    built = []
    monkeypatch.setattr("medseg.data.build.build_sample", lambda definition, out: built.append(definition)
                        or Path(out) / "dataset.json")
    monkeypatch.chdir(tmp_path)
    assert main(["sample", "ct-phantom", "--out", "data/ct"]) == 0
    assert built == [ROOT / "datasets" / "ct-phantom.yaml"]
    assert "sample data set ready" in capsys.readouterr().out


def test_a_bundled_preset_by_name_builds_its_missing_sample_in_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    calls = []

    def fake_build(missing: preset_sample.MissingSample) -> Path:
        calls.append(missing)
        raise InputError(missing.folder, "stop here (test)")

    monkeypatch.setattr(preset_sample, "build_missing_sample", fake_build)
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--config", "brain-tissue-unet", "--out", "runs/x"]) == 2
    assert [(m.name, m.dataset_json) for m in calls] == [("brain-tissue", tmp_path / "data/brain-tissue/dataset.json")]
    out = capsys.readouterr().out
    assert "building the bundled sample (medseg sample brain-tissue --out data/brain-tissue)" in out


def test_an_own_config_on_a_missing_sample_names_the_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture) -> None:
    preset = yaml.safe_load((ROOT / "models" / "presets" / "brain-tissue-unet.yaml").read_text())
    preset["data"]["dataset_json"] = "samples/brain-tissue/dataset.json"
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump(preset))
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--config", "mine.yaml", "--out", "runs/x"]) == 2
    err = capsys.readouterr().err
    assert "the training data set does not exist yet" in err
    assert "build it first: medseg sample brain-tissue --out samples/brain-tissue" in err
    assert not (tmp_path / "samples").exists()


def test_model_folder_is_the_new_name_and_export_model_a_deprecated_alias(tmp_path: Path,
                                                                           capsys: pytest.CaptureFixture) -> None:
    for name in ("model-folder", "export-model"):
        assert main([name, str(tmp_path / "no-run"), "--out", str(tmp_path / "model")]) == 2
    err = capsys.readouterr().err
    assert err.count("deprecated, use `medseg model-folder`") == 1
    assert "medseg model-folder: error:" in err and "medseg export-model: error:" in err
