"""TorchScript and ONNX exports of tiny model folders: outputs within 1e-4 of PyTorch, dynamic axes where the
network allows, the export plugged into the Predictor's sliding windows, stale exports refused."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from medseg_cli.main import main

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "inference"))
from predictor_helpers import sphere_volume, tiny_config, trained_state, write_model_folder  # noqa: E402

from medseg.errors import InputError, OutputError  # noqa: E402
from medseg.inference import Predictor  # noqa: E402
from medseg.networks import build_network  # noqa: E402
from medseg.research.export import export_model, load_exported_network, load_model_export  # noqa: E402


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained tiny UNet; training patches 16^3, sliding windows 24^3 (so two sizes to check)."""
    config = tiny_config(network__window_size=[24, 24, 24])
    return write_model_folder(tmp_path_factory.mktemp("model") / "unet", trained_state(), config)


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_export_matches_pytorch_and_drives_the_predictor(model_dir: Path, fmt: str, tmp_path: Path) -> None:
    result = export_model(model_dir, fmt)
    assert result.path == model_dir / {"torchscript": "model.ts", "onnx": "model.onnx"}[fmt]
    assert result.max_abs_diff < 1e-4 and result.input_shape == (1, 1, 24, 24, 24)
    assert result.probability_diff <= result.max_abs_diff and result.logit_scale > 1.0
    assert result.dynamic and result.dynamic_max_abs_diff < 1e-4
    record = json.loads((model_dir / "export.json").read_text())[fmt]
    assert record["max_abs_diff"] == pytest.approx(result.max_abs_diff) and record["dynamic_axes"] is True

    # The exported file alone reproduces the network, at another batch and size too.
    exported = load_exported_network(result.path)
    network = build_network(tiny_config().network)
    network.load_state_dict(torch.load(model_dir / "weights.pt", weights_only=True))
    sample = torch.randn(2, 1, 32, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert float((exported(sample) - network.eval()(sample)).abs().max()) < 1e-4

    # Plugged into the Predictor's sliding-window inference in place of the PyTorch network.
    volume = sphere_volume(np.diag([1.5, 1.5, 1.5, 1.0]), size=40, centre=(20.0, 18.0, 22.0), radius=7.0)
    reference = Predictor.from_model(model_dir, precision="float32").predict(volume)
    predictor = Predictor.from_model(model_dir, runtime=fmt)  # what `medseg predict --runtime` loads
    assert type(predictor.network) is type(load_model_export(model_dir, fmt))
    prediction = predictor.predict(volume)
    assert np.abs(prediction.probabilities - reference.probabilities).max() < 1e-4
    assert np.array_equal(prediction.labels.array, reference.labels.array)
    assert reference.labels.array.sum() > 100  # the sphere was found: a real comparison

    # `medseg predict --runtime FORMAT` runs the export end to end.
    scan = tmp_path / "scan.nii.gz"
    nib.save(nib.Nifti1Image(volume.array[0], volume.affine), scan)
    out = tmp_path / f"out-{fmt}"
    assert main(["predict", str(scan), "--model", str(model_dir), "--out", str(out), "--runtime", fmt,
                 "--no-progress"]) == 0
    (segmentation,) = out.glob("case_*/seg.nii.gz")
    assert np.array_equal(np.asarray(nib.load(segmentation).dataobj), reference.labels.array)


def test_deepmedic_valid_convolutions_export_to_onnx_within_tolerance(tmp_path: Path) -> None:
    config = tiny_config(network__name="deepmedic", network__deepmedic_channels=[4] * 8,
                         network__deepmedic_fc_channels=[8, 8], network__patch_size=[], network__window_size=[])
    torch.manual_seed(0)
    state = build_network(config.network).state_dict()
    folder = write_model_folder(tmp_path / "deepmedic", state, config)
    result = export_model(folder, "onnx")
    assert result.max_abs_diff < 1e-4 and result.input_shape[2:] == (93, 93, 93)


def test_stale_or_missing_exports_are_refused_and_the_cli_prints_the_difference(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "copy.onnx"
    assert main(["export", str(model_dir), "--format", "onnx", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "max abs difference" in printed and "dynamic batch and spatial axes" in printed and out.is_file()
    folder = write_model_folder(tmp_path / "other", trained_state(steps=2), tiny_config())
    with pytest.raises(InputError, match="has no torchscript export"):
        load_model_export(folder, "torchscript")
    export_model(folder, "torchscript")
    torch.save(trained_state(steps=3), folder / "weights.pt")  # the weights change after the export
    with pytest.raises(InputError, match="made from other weights"):
        load_model_export(folder, "torchscript")
    with pytest.raises(OutputError, match="logits differ from the PyTorch model.s by up to"):
        export_model(folder, "onnx", tolerance=0.0)
    assert not (folder / "model.onnx").exists() and not list(folder.glob(".model*"))
