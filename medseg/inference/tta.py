"""Which mirror flips test-time augmentation averages: the ones the model was trained under.

A network is only invariant to what its training showed it. The generative stream (``data.synth.flip``)
mirrors left and right only, so a brain flipped front-to-back or upside down is an input such a model
never saw: averaging it in cost the synthetic test subjects 0.02-0.03 GM/WM Dice and doubled the
calibration error away from class boundaries (``docs/model-checks/inference-variants.md``), while
left-right flips alone kept both. Patch augmentation (``transforms.augment.flip``) flips every axis.
"""

from __future__ import annotations

from medseg.config import ExperimentConfig
from medseg.errors import ConfigError

Flip = tuple[int, ...]  # dims of a (B, C, I, J, K) tensor to flip; () = the scan as it is

ALL_AXES: tuple[Flip, ...] = ((), (2,), (3,), (4,))


def left_right_dim(orientation: str) -> int | None:
    """Tensor dim (of (B, C, I, J, K)) along which the network grid runs left-right, or None if unknown.

    ``orientation`` is the config's axis code (e.g. ``"RAS"``); ``""`` keeps each source's own axes,
    so no axis is known to be left-right.
    """
    for index, code in enumerate(orientation.upper()):
        if code in "LR":
            return 2 + index
    return None


def tta_flips(config: ExperimentConfig) -> tuple[Flip, ...]:
    """The passes of mirror TTA for a model trained with ``config``: ``()`` first, then single flips.

    Raises:
        ConfigError: the model was trained without any flips, so TTA has nothing it is invariant to.
    """
    if config.transforms.augment.enabled and config.transforms.augment.flip:
        return ALL_AXES
    if config.data.synth.enabled and config.data.synth.flip:
        dim = left_right_dim(config.transforms.orientation)
        if dim is None:
            raise ConfigError("tta: the model was trained with left-right flips, but transforms.orientation is "
                              "empty, so no axis of its grid is known to be left-right")
        return ((), (dim,))
    raise ConfigError("tta: the model was trained without mirror flips (transforms.augment.flip, "
                      "data.synth.flip), so test-time mirroring would show it inputs it never saw")


def mirrored_box(box: tuple[slice, ...], flip: Flip, shape: tuple[int, ...]) -> tuple[slice, ...]:
    """A box of (I, J, K) voxels (integer starts and stops) of a grid of ``shape``, as it lies after ``flip``."""
    return tuple(slice(shape[axis] - part.stop, shape[axis] - part.start) if axis + 2 in flip else part
                 for axis, part in enumerate(box))
