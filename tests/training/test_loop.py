"""The training loop on a tiny sphere data set: run folder, early stopping, divergence stop,
transfer learning, and the test split never reaching training or validation."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch
import yaml
from training_helpers import tiny_config

from medseg.config import ExperimentConfig, NetworkConfig, load_experiment
from medseg.data.splits import load_split
from medseg.networks import build_network, network_geometry
from medseg.training.checkpoint import load_checkpoint, save_checkpoint
from medseg.training.data import prepare_data
from medseg.training.distributed import DistContext
from medseg.training.loop import TrainingDiverged, crop_to_output, resume, train
from medseg.training.run_folder import RunPaths
from medseg.training.transfer import ENCODER_PATTERNS, init_from_checkpoint


def _rows(run: Path) -> list[dict[str, str]]:
    with open(run / "log.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_run_folder_holds_config_seed_versions_split_logs_plots_and_checkpoints(tiny_dataset: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    result = train(tiny_config(tiny_dataset, train__max_epochs=3, train__val_every=2), run)
    assert (result.epochs, result.stop_reason) == (3, "max_epochs")
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["network"]["channels"] == [4, 8] and config["data"]["dataset_json"] == str(tiny_dataset)
    info = json.loads((run / "run.json").read_text())
    assert info["seed"] == 3 and info["versions"]["torch"] and info["versions"]["monai"]
    assert info["starts"][0]["world_size"] == 1 and info["starts"][0]["fresh"] is True
    split = load_split(run / "split.json")
    assert (len(split.train), len(split.val), len(split.test)) == (4, 1, 1)
    rows = _rows(run)
    assert [row["epoch"] for row in rows] == ["1", "2", "3"]
    # Validation on epochs 2 and 3 (the last); the background-only baseline scores 0 on the sphere.
    assert [row["val_dice_sphere"] != "" for row in rows] == [False, True, True]
    assert float(rows[2]["baseline_dice_sphere"]) == 0.0
    assert 0.0 <= float(rows[2]["val_dice_sphere"]) <= 1.0
    for name in ("loss.png", "dice.png"):
        assert (run / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    last = load_checkpoint(run / "checkpoints" / "last.pt")
    best = load_checkpoint(run / "checkpoints" / "best.pt")
    assert last["epoch"] == 3 and last["global_step"] == 3 * 2  # 4 training cases, 2 per batch
    assert best["epoch"] == result.best_epoch and best["early_stop"]["best_dice"] == pytest.approx(result.best_dice)
    assert last["class_names"] == ["background", "sphere"]
    model = build_network(NetworkConfig(**{**ExperimentConfig().network.__dict__, **_network(last)}))
    model.load_state_dict(last["model"])  # weights_only checkpoint rebuilds the network from its config
    assert not list(run.glob("checkpoints/.*tmp*"))


def _network(checkpoint: dict) -> dict:
    return {key: tuple(value) if isinstance(value, list) else value for key, value in checkpoint["config"]["network"].items()}


def test_test_patients_never_reach_training_or_validation(tiny_dataset: Path, tmp_path: Path) -> None:
    config = tiny_config(tiny_dataset)
    paths = RunPaths(tmp_path)
    data = prepare_data(config, network_geometry(config.network), paths, DistContext(), fresh=True)
    split = load_split(paths.split)
    train_patients = {item["patient"] for item in data.train_loader.dataset.data}
    val_patients = {item["patient"] for item in data.val_loader.dataset.data}
    assert train_patients == set(split.train) and val_patients == set(split.val)
    assert not (train_patients | val_patients) & set(split.test)
    batch = next(iter(data.train_loader))
    assert tuple(batch["image"].shape) == (2, 1, 16, 16, 16) and tuple(batch["label"].shape) == (2, 1, 16, 16, 16)


def test_early_stopping_after_patience_epochs_without_a_better_dice(tiny_dataset: Path, tmp_path: Path) -> None:
    # min_delta = 1: after epoch 1 no Dice can count as better, so patience 2 stops at epoch 3.
    config = tiny_config(tiny_dataset, train__max_epochs=10, train__patience=2, train__min_delta=1.0)
    result = train(config, tmp_path / "run")
    assert (result.epochs, result.best_epoch, result.stop_reason) == (3, 1, "early_stopping")
    assert len(_rows(tmp_path / "run")) == 3
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "best.pt")["epoch"] == 1
    # An early-stopped run stays stopped when resumed.
    assert resume(tmp_path / "run").epochs == 3


def test_exploding_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(
    tiny_dataset: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    train(tiny_config(tiny_dataset, train__max_epochs=2, train__grad_clip_norm=0.0), run)
    last = run / "checkpoints" / "last.pt"
    # Make the stored optimiser take absurd steps from now on (as a far too high learning rate would).
    state = load_checkpoint(last)
    for group in state["optimizer"]["param_groups"]:
        group["lr"] = 1e30
    state["scheduler"]["base_lrs"] = [1e30]
    save_checkpoint(state, last)
    good = last.read_bytes()
    with pytest.raises(TrainingDiverged) as raised:
        resume(run, max_epochs=4)
    message = str(raised.value)
    # Epoch 3's first step (global step 5) is taken with the huge rate; step 6's loss is no longer usable.
    assert "training stopped at epoch 3, step 6 (iteration 2 of the epoch)" in message
    assert "not finite" in message or "exceeds train.max_loss" in message
    assert f"the last good checkpoint is {last} (epoch 2)" in message
    assert last.read_bytes() == good and len(_rows(run)) == 2


def test_loss_above_max_loss_stops_before_any_checkpoint(tiny_dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(TrainingDiverged, match=r"epoch 1, step 1 .*exceeds train.max_loss=0.001; no checkpoint"):
        train(tiny_config(tiny_dataset, train__max_loss=0.001), tmp_path / "run")


def test_a_folder_with_a_run_is_not_overwritten(tiny_dataset: Path, tmp_path: Path) -> None:
    train(tiny_config(tiny_dataset, train__max_epochs=1), tmp_path / "run")
    with pytest.raises(Exception, match="already holds a run; continue it with `medseg train --resume"):
        train(tiny_config(tiny_dataset, train__max_epochs=1), tmp_path / "run")


def test_init_from_copies_weights_freezes_the_encoder_and_lowers_the_lr(tiny_dataset: Path, tmp_path: Path) -> None:
    source = tmp_path / "source"
    train(tiny_config(tiny_dataset, train__max_epochs=1), source)
    source_weights = load_checkpoint(source / "checkpoints" / "last.pt")["model"]
    config = tiny_config(
        tiny_dataset, train__max_epochs=1,
        train__finetune={"init_from": str(source / "checkpoints" / "last.pt"), "freeze_encoder": True, "lr_factor": 0.1},
    )
    train(config, tmp_path / "tuned")
    tuned = load_checkpoint(tmp_path / "tuned" / "checkpoints" / "last.pt")
    encoder = [name for name in tuned["model"] if name.startswith("model.0.") and name.endswith("weight")]
    decoder = [name for name in tuned["model"] if name.startswith("model.2.") and name.endswith("weight")]
    assert encoder and decoder
    assert all(torch.equal(tuned["model"][name], source_weights[name]) for name in encoder)
    assert not all(torch.equal(tuned["model"][name], source_weights[name]) for name in decoder)
    assert tuned["optimizer"]["param_groups"][0]["lr"] == pytest.approx(0.001)


def test_init_from_matches_by_name_and_shape(tiny_dataset: Path, tmp_path: Path) -> None:
    train(tiny_config(tiny_dataset, train__max_epochs=1), tmp_path / "source")
    wider = build_network(NetworkConfig(channels=(4, 16), strides=(2,), num_res_units=0))
    report = init_from_checkpoint(wider, tmp_path / "source" / "checkpoints" / "last.pt")
    source = load_checkpoint(tmp_path / "source" / "checkpoints" / "last.pt")["model"]
    assert report.loaded and report.skipped
    assert all(torch.equal(wider.state_dict()[name], source[name]) for name in report.loaded)
    assert all(wider.state_dict()[name].shape != source[name].shape for name in report.skipped if name in source)


def test_encoder_patterns_cover_the_down_path_only() -> None:
    import re

    model = build_network(NetworkConfig(channels=(4, 8, 16), strides=(2, 2), num_res_units=1))
    names = [name for name, _ in model.named_parameters()]
    encoder = [name for name in names if re.match(ENCODER_PATTERNS["unet"], name)]
    assert any(name.startswith("model.0.") for name in encoder)
    assert any(name.startswith("model.1.submodule.1.submodule.") for name in encoder)  # bottom
    assert not any(name.startswith(("model.2.", "model.1.submodule.2.")) for name in encoder)


def test_crop_to_output_centres_the_label_on_a_valid_networks_output() -> None:
    label = torch.arange(7**3, dtype=torch.float32).reshape(1, 1, 7, 7, 7)
    cropped = crop_to_output(label, (3, 3, 3))
    assert torch.equal(cropped, label[:, :, 2:5, 2:5, 2:5])
    assert math.isclose(float(cropped[0, 0, 1, 1, 1]), float(label[0, 0, 3, 3, 3]))


def test_deepmedic_trains_on_segments_and_validates_by_valid_sliding_windows(tiny_dataset: Path, tmp_path: Path) -> None:
    network = {"name": "deepmedic", "deepmedic_channels": [4, 4, 4], "deepmedic_fc_channels": [8],
               "deepmedic_residual_layers": [3], "patch_size": [], "window_size": [12, 12, 12]}
    config = tiny_config(tiny_dataset, network=network, sampling__name="deepmedic", sampling__samples_per_case=4,
                         train__max_epochs=1)
    geometry = network_geometry(config.network)
    assert geometry.margin == 9 and geometry.train_patch == (27, 27, 27)  # 9^3 outputs
    result = train(config, tmp_path / "run")
    row = _rows(tmp_path / "run")[0]
    assert result.epochs == 1 and 0.0 <= float(row["val_dice_sphere"]) <= 1.0
    assert float(row["baseline_dice_sphere"]) == 0.0


def test_presets_load_and_fit_their_networks() -> None:
    root = Path(__file__).resolve().parents[2]
    for name in ("brain-tissue-unet", "brain-tissue-deepmedic", "brain-tissue-deepmedic-finetune", "ct-phantom-unet"):
        config = load_experiment(root / "models" / "presets" / f"{name}.yaml")
        assert Path(config.data.dataset_json).is_absolute() and config.data.dataset_json.endswith("dataset.json")
        network_geometry(config.network)  # raises on a patch the network cannot take


def test_finetuning_from_a_model_folder_keeps_batch_norm_on_its_running_statistics(
    tiny_dataset: Path, tmp_path: Path
) -> None:
    """``init_from`` a model folder's weights.pt; ``freeze_norm_statistics`` leaves the running statistics as
    they were (what ``norm_statistics: running`` infers with) while the convolutions still learn."""
    train(tiny_config(tiny_dataset, train__max_epochs=1, network__norm="batch"), tmp_path / "source")
    source = load_checkpoint(tmp_path / "source" / "checkpoints" / "last.pt")["model"]
    folder = tmp_path / "model-folder"
    folder.mkdir()
    torch.save(source, folder / "weights.pt")
    config = tiny_config(tiny_dataset, train__max_epochs=2, network__norm="batch", network__norm_statistics="running",
                         train__finetune={"init_from": str(folder), "freeze_norm_statistics": True})
    train(config, tmp_path / "tuned")
    tuned = load_checkpoint(tmp_path / "tuned" / "checkpoints" / "last.pt")["model"]
    statistics = [name for name in tuned if name.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    convolutions = [name for name in tuned if name.endswith("weight") and tuned[name].dim() == 5]
    assert statistics and convolutions
    assert all(torch.equal(tuned[name], source[name]) for name in statistics)
    assert not all(torch.equal(tuned[name], source[name]) for name in convolutions)


def test_init_from_a_folder_without_weights_names_it(tmp_path: Path) -> None:
    from medseg.errors import InputError

    with pytest.raises(InputError, match="without weights.pt"):
        init_from_checkpoint(build_network(NetworkConfig(channels=(4, 8), strides=(2,))), tmp_path)
