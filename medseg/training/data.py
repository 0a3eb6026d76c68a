"""From a config to data loaders: datalist, patient-level split, transform chains, cached datasets."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monai.data import DataLoader, Dataset
from monai.transforms import Compose
from torch.utils.data import DistributedSampler

from medseg.config import ExperimentConfig
from medseg.data.datasets import build_dataset
from medseg.data.decathlon import Case, Datalist, read_datalist
from medseg.data.splits import Split, assign_cases, load_split, make_split, save_split
from medseg.data.synth.dataset import SynthPatchDataset
from medseg.data.synth.source import source_for_contrast
from medseg.data.synth.validation import write_validation_volumes
from medseg.errors import ConfigError
from medseg.networks import NetworkGeometry
from medseg.training.distributed import DistContext
from medseg.training.run_folder import RunPaths
from medseg.transforms import build_sampler, build_transforms, normalisation_steps


@dataclass
class TrainingData:
    """Loaders and what the loop needs to know about the data.

    Attributes:
        train_loader: patches; batches of ``batch_size * samples_per_case`` patches.
        train_sampler: reshuffles per epoch (``set_epoch``); shards across processes.
        train_transform: the training chain (its random state is reseeded per epoch).
        val_loader: whole validation volumes, one per batch (None on ranks other than 0
            or without validation patients).
        channel_names: modalities in input order.
        class_names: label names, background first.
        split: the patient-level split.
    """

    train_loader: DataLoader
    train_sampler: DistributedSampler
    train_transform: Compose
    val_loader: DataLoader | None
    channel_names: tuple[str, ...]
    class_names: tuple[str, ...]
    split: Split

    def start_epoch(self, epoch: int) -> None:
        """Reshuffle (and, for a generative stream, draw this epoch's volumes) before iterating."""
        self.train_sampler.set_epoch(epoch)
        dataset = self.train_loader.dataset
        if isinstance(dataset, SynthPatchDataset):
            dataset.set_epoch(epoch)


def case_item(case: Case) -> dict[str, Any]:
    """The data dict of one case for the transform chains."""
    return {"image": [str(p) for p in case.images], "label": str(case.label), "patient": case.patient_id}


def resolve_split(config: ExperimentConfig, datalist: Datalist, paths: RunPaths, fresh: bool) -> Split:
    """A fresh run makes (or copies) the split and saves it; a resumed run reads its own."""
    if not fresh and paths.split.is_file():
        return load_split(paths.split)
    if config.split.split_file:
        split = load_split(config.split.split_file)
    else:
        patients = [case.patient_id for case in datalist.training]
        split = make_split(patients, config.split.val_fraction, config.split.test_fraction, config.split.seed)
    return split


def check_channels(config: ExperimentConfig, datalist: Datalist) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Channel and class names, checked against ``network.in_channels`` / ``out_channels``."""
    channels = tuple(config.data.modalities) or datalist.modalities
    classes = datalist.labels
    if config.network.in_channels != len(channels):
        raise ConfigError(
            f"network.in_channels: {config.network.in_channels}, but the data have {len(channels)} "
            f"modalities ({', '.join(channels)}); set network.in_channels={len(channels)}"
        )
    if config.network.out_channels != len(classes):
        raise ConfigError(
            f"network.out_channels: {config.network.out_channels}, but the data have {len(classes)} "
            f"labels incl. background ({', '.join(classes)}); set network.out_channels={len(classes)}"
        )
    return channels, classes


def prepare_data(
    config: ExperimentConfig, geometry: NetworkGeometry, paths: RunPaths, context: DistContext, fresh: bool
) -> TrainingData:
    """Read the datalist, split by patient (saved by rank 0), and build the loaders.

    Test patients are dropped here: nothing in training or model selection sees them.

    Raises:
        ConfigError: no dataset_json, channel/class counts that do not fit, or an empty training part.
        InputError: an unreadable datalist or split.
    """
    if not config.data.dataset_json:
        raise ConfigError("data.dataset_json: missing; give the Decathlon dataset.json to train on")
    datalist = read_datalist(Path(config.data.dataset_json))
    channels, classes = check_channels(config, datalist)
    split = resolve_split(config, datalist, paths, fresh)
    if context.is_main and (fresh or not paths.split.is_file()):
        save_split(split, paths.split)
    parts = assign_cases(datalist.training, split, lambda case: case.patient_id)
    if not parts["train"]:
        raise ConfigError("split: no training patients; lower split.val_fraction / split.test_fraction")
    if config.data.synth.enabled:
        train_set, train_transform = _synth_training_set(config, geometry.train_patch)
    else:
        train_transform = build_transforms("train", config, channels, geometry.train_patch)
        train_set = build_dataset(
            [case_item(c) for c in parts["train"]], train_transform, config.train.cache,
            Path(config.data.cache_dir) / "train" if config.data.cache_dir else "", config.train.num_workers,
        )
    # One sampler for every case: it reshuffles per epoch from (seed, epoch), so a resumed
    # run sees the same order, and shards the cases across torchrun processes.
    sampler = DistributedSampler(
        train_set, num_replicas=context.world_size, rank=context.rank, shuffle=True, seed=config.seed
    )
    train_loader = DataLoader(
        train_set, batch_size=config.train.batch_size, sampler=sampler, num_workers=config.train.num_workers,
        pin_memory=context.device.type == "cuda",
    )
    val_loader = None
    val_items = [case_item(c) for c in parts["val"]]
    if context.is_main and config.data.synth.enabled and config.data.synth.validation_volumes:
        val_items += write_validation_volumes(config.data.synth, _synth_spacing(config), paths.root / "synth-val")
    if context.is_main and val_items:
        val_transform = build_transforms("val", config, channels)
        val_set: Dataset = build_dataset(
            val_items, val_transform, config.train.cache,
            Path(config.data.cache_dir) / "val" if config.data.cache_dir else "", config.train.num_workers,
        )
        val_loader = DataLoader(val_set, batch_size=1, shuffle=False, num_workers=config.train.num_workers)
    return TrainingData(train_loader, sampler, train_transform, val_loader, channels, classes, split)


def _synth_spacing(config: ExperimentConfig) -> tuple[float, ...]:
    """The network grid the generator draws on (``transforms.spacing``, required)."""
    if len(config.transforms.spacing) != 3:
        raise ConfigError("data.synth: needs transforms.spacing (the network grid, 3 sizes in mm)")
    return tuple(float(s) for s in config.transforms.spacing)


def _synth_training_set(config: ExperimentConfig, patch_size: tuple[int, ...]) -> tuple[SynthPatchDataset, Compose]:
    """The generative stream: volumes drawn per (seed, epoch, index), normalised as inference does, cut into patches."""
    if config.network.in_channels != 1:
        raise ConfigError("data.synth: synthesises one channel; set network.in_channels=1")
    sampler = build_sampler(config, patch_size)
    # Once, here: forked loader workers share the sources instead of rebuilding them each epoch (the
    # template-contrast source only when such volumes are drawn; it is the same one at boundary 0.5).
    synth = config.data.synth
    for contrast in ("t1", "template") if synth.template_prob > 0 else ("t1",):
        source_for_contrast(contrast, synth.gm_wm_boundary)
    dataset = SynthPatchDataset(config.data.synth, _synth_spacing(config), Compose(normalisation_steps(config)),
                                sampler, config.seed)
    return dataset, Compose([sampler])
