"""What the registry knows about each network: its builder and its patch geometry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from medseg.config import NetworkConfig


@dataclass(frozen=True)
class NetworkGeometry:
    """How a network's input and output patches relate, for training and sliding-window inference.

    Attributes:
        train_patch: input patch (voxels per axis) fed to the network in training.
        infer_window: output window (voxels per axis) of one sliding-window step at inference.
        margin: voxels lost per side: ``output = input - 2 * margin`` (0 for same-size networks).
        align: window sizes and window starts must be multiples of this for exact stitching
            (DeepMedic: its down-sampling factor; 1 otherwise).
    """

    train_patch: tuple[int, int, int]
    infer_window: tuple[int, int, int]
    margin: int
    align: int = 1

    @property
    def train_output(self) -> tuple[int, int, int]:
        """Output (= label) patch of one training step: ``train_patch - 2 * margin`` per axis."""
        return tuple(size - 2 * self.margin for size in self.train_patch)

    @property
    def infer_input(self) -> tuple[int, int, int]:
        """Input needed for one inference window: ``infer_window + 2 * margin`` per axis."""
        return tuple(size + 2 * self.margin for size in self.infer_window)


@dataclass(frozen=True)
class NetworkSpec:
    """One registered network.

    Attributes:
        name: the registry name (``NetworkConfig.name``).
        description: one line for ``--help`` and model cards.
        builder: makes the module from a config; raises ``ConfigError`` on bad hyperparameters.
        geometry: ``geometry(config)`` gives the default patch geometry for that config
            (``NetworkConfig.patch_size`` / ``window_size`` overrides are applied by the registry).
        check_patch: ``check_patch(config, input_size)`` raises ``ConfigError`` if the network
            cannot take an input patch of that size (voxels per axis).
        channels_last: run bfloat16 inference with weights and activations in channels-last
            (``torch.channels_last_3d``) layout, measured faster for this network on oneDNN.
    """

    name: str
    description: str
    builder: Callable[[NetworkConfig], nn.Module]
    geometry: Callable[[NetworkConfig], NetworkGeometry]
    check_patch: Callable[[NetworkConfig, tuple[int, ...]], None]
    channels_last: bool = False
