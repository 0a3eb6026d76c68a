"""Typed, frozen configs loaded from plain YAML; unknown keys and wrong types raise ConfigError.

Every config is a frozen dataclass. ``load_config(cls, mapping)`` builds one from
plain data (nested dataclasses, tuples, literals), naming the exact key at fault.
YAML is always read with ``yaml.safe_load``.
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

import yaml

from medseg.errors import ConfigError

ConfigT = TypeVar("ConfigT")

DEFAULT_MAX_VOXELS = 1024 * 1024 * 1024  # 1 Gi voxels per channel: a 1024^3 volume


@dataclass(frozen=True)
class SynthConfig:
    """A generative training stream (SynthSeg-style): images synthesised afresh from label maps.

    Each training item is a new volume made by ``medseg.data.synth`` from the MNI template's
    tissue maps (and a synthetic head around them): random pose and elastic anatomy, random
    per-label intensities, partial volume, resolution, bias field, gamma and noise. Validation
    keeps the data set's validation split and adds fixed shifted volumes from the same generator.

    Attributes:
        enabled: train on the stream instead of the data set's training files.
        volumes_per_epoch: volumes synthesised per epoch (each gives ``sampling.samples_per_case`` patches).
        grid_shape: voxels of each synthesised volume on the network grid (``transforms.spacing``).
        whole_head_prob: share of volumes with skull, scalp, orbits and neck (the rest skull-stripped).
        template_prob: share of volumes whose brain has the template T1's own intensities.
        contrast_weights: weights of T1-like, T2-like, PD-like and arbitrary per-label intensities.
        rotate_deg: maximum rotation about each axis, degrees.
        scale: maximum relative zoom per axis.
        translate_mm: maximum shift per axis, mm.
        elastic_mm: standard deviation of the smooth elastic displacement, mm.
        thick_slice_prob: share of volumes acquired with thick slices along one axis.
        slice_spacing_mm: (low, high) slice spacing of thick-slice volumes, mm.
        bias_std: standard deviation of the log bias field.
        gamma_std: standard deviation of log gamma.
        noise_std: (low, high) Rician noise level relative to the brightest tissue.
        flip: random left-right flips (the labels are symmetric).
        validation_volumes: fixed shifted validation volumes (other contrasts, thick slices, heads, rotations).
        gm_wm_boundary: white-matter share WM / (GM + WM) of the template's maps where the generator puts
            the gray/white boundary, in image and labels alike; 0.5 is the template's own argmax. The
            template averages 152 brains, so its gray matter is thicker than one subject's (GM/WM volume
            1.72 at 0.5; 1.24 at 0.35, where single adult brains lie, about 1.1-1.4).
        rim_csf_tied_prob: share of volumes whose CSF outside the brain mask (the rim under the skull, and
            the margin a skull-stripping tool leaves) takes the sulcal CSF's intensity (times 0.85-1.15), as
            in a real head, where both are CSF: the brain's outline must then be found from anatomy, not from
            an intensity step. 0 draws the rim's intensity independently (the earlier stream, bit for bit).
        dura_prob: share of whole heads with a dura layer on the inner surface of the skull (at the outer
            edge of the CSF rim), its own intensity (T1: between CSF and gray matter); background.
        dura_mm: (low, high) thickness of that layer, mm.
        temporalis_prob: share of whole heads with a temporalis muscle over each temporal lobe (gray on T1,
            under a thinner temporal bone), as real heads have; background.
        temporalis_mm: (low, high) of the muscle's greatest thickness, mm.
    """

    enabled: bool = False
    volumes_per_epoch: int = 32
    grid_shape: tuple[int, ...] = (112, 128, 112)
    whole_head_prob: float = 0.5
    template_prob: float = 0.2
    contrast_weights: tuple[float, ...] = (0.45, 0.15, 0.1, 0.3)
    rotate_deg: float = 20.0
    scale: float = 0.15
    translate_mm: float = 15.0
    elastic_mm: float = 3.0
    thick_slice_prob: float = 0.35
    slice_spacing_mm: tuple[float, float] = (3.0, 7.0)
    bias_std: float = 0.3
    gamma_std: float = 0.25
    noise_std: tuple[float, float] = (0.0, 0.06)
    flip: bool = True
    validation_volumes: int = 8
    gm_wm_boundary: float = 0.5
    rim_csf_tied_prob: float = 0.0
    dura_prob: float = 0.0
    dura_mm: tuple[float, float] = (0.5, 1.5)
    temporalis_prob: float = 0.0
    temporalis_mm: tuple[float, float] = (8.0, 18.0)

    def __post_init__(self) -> None:
        if not 0.05 <= self.gm_wm_boundary <= 0.95:
            raise ValueError(f"gm_wm_boundary must lie in [0.05, 0.95], got {self.gm_wm_boundary}")
        for name in ("rim_csf_tied_prob", "dura_prob", "temporalis_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")
        if len(self.dura_mm) != 2 or not 0.0 < self.dura_mm[0] <= self.dura_mm[1] <= 5.0:
            raise ValueError(f"dura_mm must be (low, high) with 0 < low <= high <= 5, got {self.dura_mm}")
        if len(self.temporalis_mm) != 2 or not 0.0 < self.temporalis_mm[0] <= self.temporalis_mm[1] <= 30.0:
            raise ValueError(f"temporalis_mm must be (low, high) with 0 < low <= high <= 30, got {self.temporalis_mm}")


@dataclass(frozen=True)
class DataConfig:
    """Where the labelled data lives and how scans are read.

    Attributes:
        dataset_json: a Decathlon-style ``dataset.json`` (its folder is the data root).
        modalities: channel names in input order; empty = take them from dataset.json.
        max_voxels: refuse any scan with more voxels per channel than this (checked before allocating).
        cache_dir: folder for preprocessed-volume caches; empty = no persistent cache.
        synth: the generative training stream (off by default).
    """

    dataset_json: str = ""
    modalities: tuple[str, ...] = ()
    max_voxels: int = DEFAULT_MAX_VOXELS
    cache_dir: str = ""
    synth: SynthConfig = field(default_factory=SynthConfig)


@dataclass(frozen=True)
class NetworkConfig:
    """A network chosen by name from ``medseg.networks`` and its hyperparameters.

    Attributes:
        name: registry name (``medseg.networks.available_networks()``): ``"unet"``, ``"dynunet"``, ``"deepmedic"``.
        in_channels: input channels (modalities); output channels = number of labels incl. background.
        out_channels: classes including background.
        channels: feature maps per level (UNet, DynUNet).
        strides: down-sampling strides between UNet levels (one fewer than ``channels``).
        num_res_units: residual units per UNet block (0 = plain conv blocks; DynUNet: > 0 = residual blocks).
        norm: ``"batch"``, ``"instance"`` or ``"group"`` (UNet, DynUNet; DeepMedic always uses batch norm).
        norm_statistics: what batch norm uses outside training: ``"running"`` averages (placement-invariant)
            or each ``"window"``'s own statistics (models trained on a generative stream of many contrasts;
            ``medseg.networks.norm_statistics``).
        dropout: dropout probability (UNet, DynUNet: every block; DeepMedic: inputs of its last two 1x1x1 layers).
        patch_size: training input patch in voxels per axis; empty = the network's default.
        window_size: sliding-window output window in voxels per axis; empty = the network's default.
        deepmedic_channels: feature maps of each 3x3x3 layer of DeepMedic's normal pathway (and of its
            low-resolution pathway unless ``deepmedic_low_channels`` is set).
        deepmedic_low_channels: feature maps of each layer of the low-resolution pathway; empty = the same as
            ``deepmedic_channels`` (same length when set). That pathway runs on 1/27 of the voxels, so a slim
            normal pathway with a wide context pathway costs little more than a slim network.
        deepmedic_fc_channels: feature maps of DeepMedic's hidden 1x1x1 layers before the classifier.
        deepmedic_residual_layers: 1-based layers whose output adds the output of the layer two before.
        deepmedic_downsample: down-sampling factor of DeepMedic's low-resolution pathway.
    """

    name: str = "unet"
    in_channels: int = 1
    out_channels: int = 2
    channels: tuple[int, ...] = (16, 32, 64, 128)
    strides: tuple[int, ...] = (2, 2, 2)
    num_res_units: int = 2
    norm: str = "instance"
    norm_statistics: Literal["running", "window"] = "running"
    dropout: float = 0.0
    patch_size: tuple[int, ...] = ()
    window_size: tuple[int, ...] = ()
    deepmedic_channels: tuple[int, ...] = (30, 30, 40, 40, 40, 40, 50, 50)
    deepmedic_low_channels: tuple[int, ...] = ()
    deepmedic_fc_channels: tuple[int, ...] = (150, 150)
    deepmedic_residual_layers: tuple[int, ...] = (4, 6, 8)
    deepmedic_downsample: int = 3


@dataclass(frozen=True)
class LossConfig:
    """A MONAI loss by name with its imbalance options.

    Attributes:
        name: ``"dice"``, ``"dice_ce"``, ``"generalized_dice"`` or ``"dice_focal"``.
        include_background: whether the background class counts in the Dice term.
        class_weights: optional per-class weights (length = out_channels) for the CE/focal term.
    """

    name: str = "dice_ce"
    include_background: bool = False
    class_weights: tuple[float, ...] = ()


@dataclass(frozen=True)
class SplitConfig:
    """Patient-level train/validation/test split.

    Attributes:
        val_fraction: share of patients for validation (model selection, early stopping).
        test_fraction: share of patients held out; never seen by training or model selection.
        seed: seed of the patient shuffle (the same seed and datalist give the same split).
        split_file: a split JSON to reuse instead (relative to the config file unless absolute).
    """

    val_fraction: float = 0.2
    test_fraction: float = 0.2
    seed: int = 0
    split_file: str = ""


@dataclass(frozen=True)
class AugmentConfig:
    """Random spatial and intensity augmentation applied to training patches.

    Attributes:
        enabled: switch all augmentation off with ``false``.
        prob: probability of each random transform.
        rotate_deg: maximum rotation about each axis, degrees.
        scale: maximum relative zoom (0.1 = 0.9..1.1).
        flip: random flips along each spatial axis.
        noise_std: standard deviation of added Gaussian noise (after normalisation).
        intensity_scale: maximum relative intensity scaling.
        intensity_shift: maximum intensity offset (after normalisation).
        gamma: (low, high) range of the contrast gamma; empty = off.
    """

    enabled: bool = True
    prob: float = 0.2
    rotate_deg: float = 15.0
    scale: float = 0.1
    flip: bool = True
    noise_std: float = 0.05
    intensity_scale: float = 0.1
    intensity_shift: float = 0.1
    gamma: tuple[float, ...] = (0.7, 1.5)


@dataclass(frozen=True)
class TransformConfig:
    """Deterministic preprocessing shared by training, validation and inference.

    Attributes:
        orientation: axis codes every volume is turned to (``""`` = keep the source's).
        spacing: target voxel size in mm along i, j, k (empty = keep the source's).
        normalize: ``"zscore"`` (per channel, over non-zero voxels), ``"range"`` (clip
            ``intensity_range`` to 0..1, e.g. CT in HU), ``"percentile"`` (per channel, divided by
            the 99th percentile of its non-zero voxels: MR in arbitrary units, zero = no signal, the
            same with or without skull and background) or ``"none"``.
        intensity_range: (low, high) for ``"range"``.
        augment: training-only augmentation.
    """

    orientation: str = "RAS"
    spacing: tuple[float, ...] = ()
    normalize: Literal["zscore", "range", "percentile", "none"] = "zscore"
    intensity_range: tuple[float, float] = (-1000.0, 1000.0)
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass(frozen=True)
class SamplingConfig:
    """How training patches are drawn from each case (their size is ``network.patch_size``).

    Attributes:
        name: ``"pos_neg"`` (RandCropByPosNegLabeld with ``pos``/``neg``), ``"class_ratios"``
            (RandCropByLabelClassesd with ``class_ratios``) or ``"deepmedic"`` (segment
            centres 50/50 on foreground and background).
        samples_per_case: patches drawn from a case each time it is loaded.
        pos: weight of foreground-centred patches (``pos_neg``).
        neg: weight of background-centred patches (``pos_neg``).
        class_ratios: per-class weights incl. background (``class_ratios``; empty = equal).
    """

    name: Literal["pos_neg", "class_ratios", "deepmedic"] = "pos_neg"
    samples_per_case: int = 2
    pos: float = 1.0
    neg: float = 1.0
    class_ratios: tuple[float, ...] = ()


@dataclass(frozen=True)
class OptimizerConfig:
    """Optimiser by name.

    Attributes:
        name: ``"adamw"`` (default), ``"adam"`` or ``"sgd"`` (with Nesterov momentum).
        lr: peak learning rate (reached after the warm-up).
        weight_decay: L2 / decoupled weight decay.
        momentum: SGD momentum.
        nesterov: Nesterov momentum for SGD.
    """

    name: Literal["adamw", "adam", "sgd"] = "adamw"
    lr: float = 1e-3
    weight_decay: float = 1e-5
    momentum: float = 0.99
    nesterov: bool = True


@dataclass(frozen=True)
class ScheduleConfig:
    """Learning-rate schedule, stepped once per iteration.

    Attributes:
        name: ``"cosine"``, ``"poly"`` or ``"constant"`` decay after the warm-up.
        warmup_iterations: iterations of linear warm-up from ``lr / warmup_iterations`` to ``lr``.
        poly_power: exponent of the poly decay.
        min_lr_factor: the decay ends at ``lr * min_lr_factor``.
    """

    name: Literal["cosine", "poly", "constant"] = "cosine"
    warmup_iterations: int = 0
    poly_power: float = 0.9
    min_lr_factor: float = 0.0


@dataclass(frozen=True)
class FinetuneConfig:
    """Transfer learning from an earlier checkpoint.

    Attributes:
        init_from: checkpoint (``.pt``) or model folder whose weights are copied where name and shape
            match ("" = none).
        freeze_encoder: keep the encoder (down path / feature pathways) fixed.
        lr_factor: multiply the learning rate by this when ``init_from`` is set.
        freeze_norm_statistics: batch norm normalises with its running statistics while training and
            keeps them (scale and shift still learn): fine-tuning a model that infers with
            ``network.norm_statistics: running`` on the statistics it will use.
    """

    init_from: str = ""
    freeze_encoder: bool = False
    lr_factor: float = 0.1
    freeze_norm_statistics: bool = False


@dataclass(frozen=True)
class TrainConfig:
    """The training loop's behaviour.

    Attributes:
        max_epochs: epochs to train (one epoch = one pass over the training cases).
        batch_size: cases per batch (each gives ``sampling.samples_per_case`` patches).
        val_every: validate every this many epochs (and after the last).
        patience: stop after this many epochs without a better validation Dice (0 = never).
        min_delta: the smallest Dice gain that counts as better.
        grad_clip_norm: clip the gradient norm to this (0 = off).
        max_loss: a loss above this counts as exploding and stops the run.
        amp: mixed precision: float16 with loss scaling on CUDA, bfloat16 autocast on a CPU that runs it
            natively (AVX512-BF16/AMX), float32 otherwise.
        device: ``"auto"`` (CUDA when present), ``"cpu"`` or ``"cuda"``.
        num_workers: data-loader worker processes.
        cache: ``"memory"`` (CacheDataset), ``"disk"`` (PersistentDataset in ``data.cache_dir``) or ``"none"``.
        sw_overlap: sliding-window overlap in validation.
        sw_batch_size: windows per forward pass in validation.
        progress: show a progress bar.
        optimizer: optimiser settings.
        schedule: learning-rate schedule.
        finetune: transfer learning.
    """

    max_epochs: int = 100
    batch_size: int = 2
    val_every: int = 1
    patience: int = 0
    min_delta: float = 0.0
    grad_clip_norm: float = 12.0
    max_loss: float = 1.0e4
    amp: bool = True
    device: Literal["auto", "cpu", "cuda"] = "auto"
    num_workers: int = 0
    cache: Literal["memory", "disk", "none"] = "memory"
    sw_overlap: float = 0.25
    sw_batch_size: int = 2
    progress: bool = True
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything a training run needs; written resolved into the run folder.

    Relative paths (``data.dataset_json``, ``data.cache_dir``, ``split.split_file``,
    ``train.finetune.init_from``) are relative to the config file's folder; see
    ``load_experiment``.
    """

    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    transforms: TransformConfig = field(default_factory=TransformConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping with ``yaml.safe_load``; errors name the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{path}: cannot read config ({error.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        reason = " ".join(str(error).split())  # PyYAML's message spans lines (with a caret); errors are one line
        raise ConfigError(f"{path}: not valid YAML ({reason})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping, got {type(data).__name__}")
    return data


def load_config(cls: type[ConfigT], data: dict[str, Any] | None, where: str = "") -> ConfigT:
    """Build the frozen dataclass ``cls`` from plain data.

    Args:
        cls: a dataclass type whose fields may be nested dataclasses, tuples, literals or scalars.
        data: the mapping (missing keys take the defaults).
        where: the key path so far, for messages (e.g. ``"train.optimizer"``).

    Raises:
        ConfigError: naming the key, for unknown keys and values of the wrong type.
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where or cls.__name__}: expected a mapping, got {type(data).__name__}")
    hints = get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        prefix = f"{where}." if where else ""
        raise ConfigError(
            f"unknown key '{prefix}{unknown[0]}' (known keys: {', '.join(sorted(known))})"
        )
    values = {}
    for name, value in data.items():
        key = f"{where}.{name}" if where else name
        values[name] = _coerce(hints[name], value, key)
    try:
        return cls(**values)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{where or cls.__name__}: {error}") from None


def _coerce(hint: Any, value: Any, key: str) -> Any:
    """Check ``value`` against the type hint ``hint`` and convert lists to tuples."""
    origin = get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return load_config(hint, value, key)
    if origin in (typing.Union, types.UnionType):
        errors = []
        for option in get_args(hint):
            if option is type(None) and value is None:
                return None
            try:
                return _coerce(option, value, key)
            except ConfigError as error:
                errors.append(str(error))
        raise ConfigError(errors[0] if errors else f"{key}: invalid value {value!r}")
    if origin is Literal:
        if value not in get_args(hint):
            choices = ", ".join(repr(c) for c in get_args(hint))
            raise ConfigError(f"{key}: {value!r} is not one of {choices}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        args = get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], item, f"{key}[{i}]") for i, item in enumerate(value))
        if len(args) != len(value):
            raise ConfigError(f"{key}: expected {len(args)} items, got {len(value)}")
        return tuple(_coerce(a, item, f"{key}[{i}]") for i, (a, item) in enumerate(zip(args, value)))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return dict(value)
    if hint is Any:
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported config type {hint!r}")


def config_to_dict(config: Any) -> dict[str, Any]:
    """Plain data (lists, not tuples) for writing a resolved config to YAML."""

    def plain(value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(dataclasses.asdict(config))




# Keys of ExperimentConfig that hold paths; relative ones are taken from the config file's folder.
_PATH_KEYS = (("data", "dataset_json"), ("data", "cache_dir"), ("split", "split_file"),
              ("train", "finetune", "init_from"))


def apply_overrides(data: dict[str, Any], overrides: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """A copy of ``data`` with ``key.sub=value`` overrides; values are parsed as YAML scalars/lists.

    Raises:
        ConfigError: an override without ``=`` or a key path through a non-mapping.
    """
    result = copy.deepcopy(data)
    for override in overrides:
        key, sep, text = override.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"override '{override}': expected key=value, e.g. train.max_epochs=10")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            value = text
        node = result
        parts = key.split(".")
        for depth, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                where = ".".join(parts[: depth + 1])
                raise ConfigError(f"override '{override}': '{where}' is not a section")
            node = child
        node[parts[-1]] = value
    return result


def load_experiment(path: str | Path, overrides: tuple[str, ...] | list[str] = (), *,
                    base: str | Path | None = None) -> ExperimentConfig:
    """Read an experiment YAML, apply ``--set`` overrides and make relative paths absolute.

    Relative paths in the file are taken from ``base``, by default the folder holding the file (so
    presets in ``models/presets/`` can say ``../../data/brain-tissue/dataset.json``); paths given as
    overrides are taken from the current directory.

    Raises:
        ConfigError: unreadable file, unknown key or wrong value, naming the key.
    """
    path = Path(path)
    data = load_yaml(path)
    data = _absolute_paths(data, Path(base).resolve() if base is not None else path.resolve().parent)
    data = apply_overrides(data, overrides)
    data = _absolute_paths(data, Path.cwd())
    try:
        return load_config(ExperimentConfig, data)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None


def _absolute_paths(data: dict[str, Any], base: Path) -> dict[str, Any]:
    """A copy of ``data`` whose relative path values (see ``_PATH_KEYS``) are joined to ``base``."""
    result = copy.deepcopy(data)
    for keys in _PATH_KEYS:
        node = result
        for key in keys[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict) and isinstance(node.get(keys[-1]), str) and node[keys[-1]]:
            value = Path(node[keys[-1]]).expanduser()
            node[keys[-1]] = str(value if value.is_absolute() else (base / value).resolve())
    return result
