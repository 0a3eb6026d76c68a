"""`medseg train`: bad configs give one line naming the key; a run and its resume through the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from training_helpers import tiny_config_dict
from medseg.training.checkpoint import load_checkpoint
from medseg_cli.main import main


def _write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("change", "extra", "message"),
    [
        ({"train": {"optimzer": {}}}, [], "unknown key 'train.optimzer'"),
        ({}, ["--set", "train.max_epochs=many"], "train.max_epochs: expected an integer, got 'many'"),
        ({}, ["--set", "train.schedule.name=linear"], "train.schedule.name: 'linear' is not one of"),
        ({}, ["--set", "network.in_channels=3"], "network.in_channels: 3, but the data have 1 modalities"),
        ({}, ["--set", "network.name=vnet"], "network.name: unknown network 'vnet'"),
        ({}, ["--set", "split.val_fraction=0.6", "--set", "split.test_fraction=0.5"], "split: val_fraction + test_fraction"),
        ({}, ["--set", "data.dataset_json=missing.json"], "missing.json: cannot read the file"),
    ],
)
def test_bad_config_is_one_line_naming_the_key(
    tiny_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], change: dict, extra: list[str], message: str
) -> None:
    data = tiny_config_dict(tiny_dataset)
    for section, values in change.items():
        data[section].update(values)
    config = _write(tmp_path / "bad.yaml", data)
    status = main(["train", "--config", str(config), "--out", str(tmp_path / "run"), *extra])
    error = capsys.readouterr().err
    assert status == 2
    assert error.count("\n") == 1 and error.startswith("medseg train: error: ")
    assert message in error
    assert not (tmp_path / "run" / "checkpoints" / "last.pt").exists()


def test_relative_data_path_is_taken_from_the_config_folder(tiny_dataset: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "presets"
    folder.mkdir()
    data = tiny_config_dict(tiny_dataset)
    data["data"]["dataset_json"] = str(Path("..") / tiny_dataset.relative_to(tiny_dataset.parents[1]))
    # The fixture's data set lives elsewhere: copy-free check by pointing at it relatively.
    (tmp_path / tiny_dataset.parent.name).symlink_to(tiny_dataset.parent)
    config = _write(folder / "tiny.yaml", data)
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "run"), "--max-epochs", "1"]) == 0
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert Path(saved["data"]["dataset_json"]).resolve() == tiny_dataset.resolve()
    assert saved["train"]["max_epochs"] == 1
    assert "1 epochs (max_epochs)" in capsys.readouterr().out


def test_resume_continues_to_a_new_epoch_count(tiny_dataset: Path, tmp_path: Path) -> None:
    config = _write(tmp_path / "tiny.yaml", tiny_config_dict(tiny_dataset))
    run = tmp_path / "run"
    assert main(["train", "--config", str(config), "--out", str(run), "--max-epochs", "1"]) == 0
    assert main(["train", "--resume", str(run), "--max-epochs", "2"]) == 0
    assert load_checkpoint(run / "checkpoints" / "last.pt")["epoch"] == 2
    assert main(["train", "--resume", str(run), "--set", "seed=1"]) == 2
    # The command that started the run is kept (resumes do not replace it); model cards cite it.
    assert (run / "command.txt").read_text().split() == [
        "medseg", "train", "--config", str(config), "--out", str(run), "--max-epochs", "1"
    ]
