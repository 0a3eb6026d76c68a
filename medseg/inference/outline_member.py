"""An outline member: a second network's opinion on where a whole head's brain ends.

An ensemble card may name one member with ``"role": "outline"`` (``medseg.inference.ensemble``). On a scan
with the skull on (not judged skull-stripped, ``medseg.inference.stripped_scan``) it runs after the weighted
mean and may only *remove* tissue from it: with the mean's background probability b, the member's b_o and
the card's weight w,

    b' = b + w · max(b_o − b, 0),   each tissue class scaled by (1 − b') / (1 − b),

so where the member sees background with more confidence than the mean, the mean's background rises toward
it; where the member sees tissue, nothing changes (it never adds tissue, so a member that sees brain where
there is none cannot move the outline outwards). The tissue classes keep their proportions: the split between
them stays the mean's (and the intensity refinement's after it).

Why: the networks place a real head's outline differently. The shipped brain DeepMedic (a low-resolution
pathway with 3x the context) leaves 20 / 40 mL of tissue outside the brain masks of the two real check heads
where the UNet ensemble leaves 37 / 101 mL (``models/brain-tissue-unet/model_card.json`` has the numbers), but
its tissue classes are worse; used as an outline member it trims the UNet's outline and nothing else.

The member may change the outline, not the brain: when the brain after the card's clean-up (the voxels where some
tissue class is more probable than the background, then the largest-foreground clean-up) would lose more than
``MAX_REMOVED_SHARE`` of its voxels, the member is judged to have failed on this scan and is ignored; the
prediction says so (``OutlineTrim.applied`` False, a QC flag). Measured (the shipped UNet with the DeepMedic as
its outline member, 2026-12-05, on the shift checks' cases): the real check heads lose
2.2-4.2 % (native, moved 11/-8/14 degrees, resampled to 1 mm; mostly tissue outside the brain mask), nine of the
ten synthetic check heads 0-6.9 %; the tenth, an arbitrary-contrast head that the DeepMedic cannot read (it calls
most of its brain background), 81 %.

Where its network runs: only over the box of the mean's cleaned-up brain grown by ``REGION_MARGIN_MM`` per side
(``brain_region``; a valid-convolution member such as DeepMedic computes just the segments covering it, each with
its full context, so inside the box its answer is the whole-scan answer, ``medseg.windows.whole.segment_volume``);
beyond the box the member is taken to see background, so stray tissue far from the brain is trimmed at full
weight. The brain box is about 30 % of a head's field of view: on a 1 mm head the DeepMedic pass went from 1.7 to
0.7 s. Against running it over the whole scan (real check heads: native, moved, 1 mm): the removed shares are the
same, 0.00-0.06 % of the labels differ (the intensity refinement fits its classes on every voxel with enough
tissue, and sees the far stray tissue trimmed a little more), tissue outside the brain mask moves by -0.08 to
+0.3 mL and no class Dice by more than 0.0007. Members whose plan covers the whole scan in one forward (a UNet)
run over the whole scan as before.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# The most of the mean's brain (after clean-up) an outline member may remove (module docstring).
MAX_REMOVED_SHARE = 0.10
# How far beyond the box of the mean's cleaned-up brain the outline member's network runs (module docstring).
REGION_MARGIN_MM = 8.0


@dataclass(frozen=True)
class OutlineTrim:
    """What an outline member did to one scan.

    Attributes:
        member: the member's name.
        applied: False when it would have removed more than ``MAX_REMOVED_SHARE`` of the brain (then ignored).
        removed_share: the share of the mean's cleaned-up brain voxels it removed (or would have removed).
    """

    member: str
    applied: bool
    removed_share: float

    def to_dict(self) -> dict[str, object]:
        return {"member": self.member, "applied": self.applied, "removed_share": self.removed_share}

    def qc_flag(self) -> str | None:
        """The QC flag when the member was ignored (None when it was applied)."""
        if self.applied:
            return None
        return (f"networks disagree on the brain's outline: the outline network ({self.member}) would remove "
                f"{100 * self.removed_share:.0f} % of the brain (limit {100 * MAX_REMOVED_SHARE:.0f} %) and was "
                "ignored; check the scan's contrast and the contours")


def mean_brain(probabilities: np.ndarray,
               clean_up: Callable[[np.ndarray], np.ndarray] = lambda labels: labels) -> np.ndarray:
    """(I, J, K) bool: the brain as the argmax sees it (some tissue class above the background), cleaned up.

    Args:
        probabilities: (C, I, J, K), background first.
        clean_up: the card's clean-up of an (I, J, K) uint8 label map.
    """
    return clean_up((probabilities[0] < probabilities[1:].max(axis=0)).astype(np.uint8)) > 0


def brain_region(brain: np.ndarray, spacing: tuple[float, ...], margin_mm: float = REGION_MARGIN_MM,
                 ) -> tuple[slice, ...] | None:
    """The box of ``brain`` (I, J, K) grown by ``margin_mm`` per side (clipped to the grid); None when it is empty.

    Where an outline member's network needs to run: beyond it the member is taken to see background
    (module docstring), which is what it sees there on every check head.
    """
    found = np.argwhere(brain)
    if found.size == 0:
        return None
    grow = [int(np.ceil(margin_mm / s)) for s in spacing]
    return tuple(slice(max(int(lo) - g, 0), min(int(hi) + 1 + g, n))
                 for lo, hi, g, n in zip(found.min(axis=0), found.max(axis=0), grow, brain.shape))


def trim_outline(
    probabilities: np.ndarray, member_background: np.ndarray, weight: float, member: str,
    clean_up: Callable[[np.ndarray], np.ndarray] = lambda labels: labels, *,
    max_removed_share: float = MAX_REMOVED_SHARE, brain: np.ndarray | None = None,
) -> OutlineTrim:
    """Raise the background of ``probabilities`` toward ``member_background`` where it is higher (module docstring).

    Args:
        probabilities: (C, I, J, K) float32, background first, summing to 1 over C; changed in place when applied.
        member_background: (I, J, K) the outline member's background probability on the same grid.
        weight: w in (0, 1).
        member: the member's name (for the record).
        clean_up: the card's clean-up of an (I, J, K) uint8 label map (the brain judged after it).
        max_removed_share: the most of the cleaned-up brain it may remove (more: not applied, ``applied`` False).
        brain: ``mean_brain(probabilities, clean_up)`` when the caller has it already.
    """
    background = probabilities[0]
    trimmed = np.maximum(member_background.astype(np.float32, copy=False) - background, 0.0)
    trimmed *= np.float32(weight)
    trimmed += background
    # tissue classes scaled by (1 - b') / (1 - b); where b = 1 there is no tissue to scale (and b' = 1)
    scale = (1.0 - trimmed) / np.maximum(1.0 - background, np.float32(1e-12))
    if brain is None:
        brain = mean_brain(probabilities, clean_up)
    # the brain as the argmax sees it after the trim, cleaned up
    strongest = probabilities[1:].max(axis=0)
    strongest *= scale
    kept = clean_up((trimmed < strongest).astype(np.uint8)) > 0
    del strongest
    share = int(np.count_nonzero(brain & ~kept)) / max(int(np.count_nonzero(brain)), 1)
    if share > max_removed_share:
        return OutlineTrim(member, False, share)
    probabilities[1:] *= scale[None]
    probabilities[0] = trimmed
    return OutlineTrim(member, True, share)
