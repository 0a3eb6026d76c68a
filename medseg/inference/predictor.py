"""The Predictor: a model folder applied to a scan, with results on the scan's own grid.

Steps of ``Predictor.predict(volume)``:

1. preprocessing exactly as the config's infer chain (orientation, spacing, normalisation);
2. the network over the scan by the model's window plan (``medseg.windows``, the runner validation
   uses too): one whole-volume forward for networks whose answer does not depend on where windows
   fall (batch norm folded into the convolutions where it uses running averages), Gaussian-blended
   windows for instance-norm networks, aligned segments for DeepMedic, within a memory budget; run
   in bfloat16 where the CPU has it, or by onnxruntime in float32 (``medseg.inference.engine``);
   optionally with mirror test-time augmentation: the identity and one flip along each spatial axis
   (4 passes), softmax probabilities averaged. ``fast=False`` is MONAI's ``sliding_window_inference``
   on logits (plan ``"monai"``, the reference);
3. temperature scaling from ``calibration.json``: softmax(logits / T);
4. probabilities resampled from the network's grid to the SOURCE grid (MONAI ``SpatialResample``
   to the source affine and shape, bilinear, border padding), renormalised to sum to 1, then the
   argmax (steps 1-4 for one network: ``medseg.inference.network_pass``). The output affine is the input
   volume's affine, by construction. An ensemble folder (``medseg.inference.ensemble``) runs steps 1-4 for each
   member on its own grid and with its own temperature, and takes the card's weighted mean on the source grid; the
   steps below run once (after the skull-stripped check, an outline member may trim the mean's brain outline:
   ``medseg.inference.outline_member``; on a scan with the skull on the card's ``head_background_odds`` then
   raises the background's odds: ``medseg.inference.stripped_scan``);
5. optional clean-up (largest connected component per class, small components by mL; steps 5-6: ``.prediction``);
6. predictive entropy / log C as the uncertainty map, class volumes, QC flags.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from medseg.config import ExperimentConfig
from medseg.errors import ConfigError, InputError
from medseg.inference.engine import ENGINES, resolve_precision, select_engine
from medseg.inference.intensity_refinement import refine_by_intensity
from medseg.inference.model_card import (
    check_background_odds,
    check_head_background_odds,
    check_prior_weight,
    opening_radius,
)
from medseg.inference.model_folder import ModelFolder, load_model_folder
from medseg.inference.outline_member import brain_region, mean_brain, trim_outline
from medseg.inference.network_pass import SOURCE_SHARE, CancelCallback, check_cancel, network_probabilities
from medseg.inference.prediction import CleanUp, Prediction, finish_prediction
from medseg.inference.stripped_scan import adapt_to_skull_stripped, raise_head_background_odds
from medseg.inference.tta import mirrored_box, tta_flips
from medseg.networks import NetworkGeometry, fusion, get_network_spec, network_geometry
from medseg.types import Volume
from medseg.windows import DEFAULT_BUDGET_BYTES, WindowPlan, choose_plan, placement_invariant, run_plan
from medseg.windows.run import PlanResult

RUNTIMES = ("torch", "torchscript", "onnx")
ProgressCallback = Callable[[float], None]
# engine "auto" exports to onnxruntime (a few seconds, once per Predictor) only for scans needing more windows.
AUTO_ENGINE_MIN_WINDOWS = 4


class Predictor:
    """A model folder ready to segment scans.

    Args:
        model: a loaded model folder.
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        tta: mirror test-time augmentation over the flips the model was trained under
            (``medseg.inference.tta``: left-right for the generative stream, 2 passes; every axis for patch
            augmentation, 4 passes); None: the card's default (``inference.tta``).
        overlap: sliding-window overlap (default: the config's ``train.sw_overlap``).
        sw_batch_size: windows per network call.
        largest_component: override the card's largest-connected-component setting.
        min_component_ml: override the card's small-component threshold (mL).
        fast: False: MONAI's ``sliding_window_inference`` on logits (plan ``"monai"``), whatever ``window_plan``.
        engine: ``"auto"``, ``"torch"`` or ``"onnxruntime"`` (``medseg.inference.engine``).
        crop_foreground: plan ``"windows"``: run windows over the foreground box only.
        precision: ``"float32"``, ``"bfloat16"`` or ``"auto"`` (``medseg.inference.engine``).
        window_plan: ``"auto"`` (the model's plan: ``medseg.windows.auto_plan_name``), ``"windows"``,
            ``"whole"``, ``"segments"`` or ``"monai"``.
        memory_budget_gb: peak-memory budget of the window runner in GiB (default
            ``medseg.windows.DEFAULT_BUDGET_BYTES``): larger scans get smaller windows or segments.
        fold_batch_norm: fold batch norm with running averages into the convolutions (exact).
        intensity_refinement: apply the card's intensity refinement, if it has one (False: the network's
            probabilities as they are).
        bias_correction: with the card's refinement, divide out the bias field the card names (False:
            refine on the intensities as they are).
        prior_weight: override the card's exponent on the network's prior in that refinement, in (0, 1].
        stripped_background_odds: override the card's factor on the background's odds at the signal voxels of a
            scan judged skull-stripped (``medseg.inference.stripped_scan``; 1 = off), in (0, 1].
        head_background_odds: override the card's factor on the background's odds of a scan with the skull on
            (``stripped_scan.raise_head_background_odds``; 1 = off), in [1, 4].
        foreground_opening_mm: override the card's foreground opening radius (mm; 0 = off): with the
            card's largest-foreground clean-up, pieces joined through narrower bridges are cut first
            (``medseg.inference.foreground_opening``).
        channels_last: run bfloat16 windows in channels-last layout (None: the network's own choice,
            ``NetworkSpec.channels_last``).
        runtime: ``"torch"`` (weights.pt), or the folder's ``"torchscript"`` / ``"onnx"`` export from
            ``medseg export`` (run in float32).
        ensemble: with an ensemble folder (``medseg.inference.ensemble``), average its members' probabilities
            with this network's (False: this folder's own network alone, its card's clean-up unchanged).
        outline_member: with ``ensemble``, let the card's outline member trim the mean's outline on scans with the
            skull on (``medseg.inference.outline_member``; False: the mean alone).
        trust_export: load the export even when this user's medseg did not make it
            (``medseg.research.export_trust``: loading an export runs code from it).
    """

    def __init__(
        self,
        model: ModelFolder,
        *,
        device: str = "cpu",
        tta: bool | None = None,
        overlap: float | None = None,
        sw_batch_size: int = 1,
        largest_component: bool | None = None,
        min_component_ml: float | None = None,
        fast: bool = True,
        engine: str = "auto",
        crop_foreground: bool = False,
        precision: str = "auto",
        runtime: str = "torch",
        trust_export: bool = False,
        window_plan: str = "auto",
        memory_budget_gb: float | None = None,
        fold_batch_norm: bool = True,
        intensity_refinement: bool = True,
        bias_correction: bool = True,
        prior_weight: float | None = None,
        stripped_background_odds: float | None = None,
        head_background_odds: float | None = None,
        foreground_opening_mm: float | None = None,
        channels_last: bool | None = None,
        ensemble: bool = True,
        outline_member: bool = True,
    ) -> None:
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError(f"device {device!r}: CUDA is not available on this machine; use --device cpu")
        self.model = model
        self.device = torch.device(device)
        tta = model.card.tta if tta is None else bool(tta)  # None: the card's default (inference.tta)
        self.tta = tta
        self.tta_flips = tta_flips(model.config) if tta else ((),)
        self.overlap = model.config.train.sw_overlap if overlap is None else float(overlap)
        if not 0.0 <= self.overlap < 1.0:
            raise ConfigError(f"overlap: must be in [0, 1), got {self.overlap}")
        self.sw_batch_size = max(1, int(sw_batch_size))
        card = model.card.postprocess
        # The card's intensity refinement (medseg.inference.intensity_refinement), unless switched off here.
        self.refine_classes = card.refine_classes if intensity_refinement else ()
        self.refine_iterations = card.refine_iterations
        self.refine_bias_field = card.refine_bias_field if bias_correction else "none"
        try:  # the card's settings, or this call's overrides of them, validated as the card's are
            self.refine_prior_weight = check_prior_weight(card.refine_prior_weight if prior_weight is None
                                                          else prior_weight)
            self.stripped_background_odds = check_background_odds(
                card.stripped_background_odds if stripped_background_odds is None else stripped_background_odds)
            self.head_background_odds = check_head_background_odds(
                card.head_background_odds if head_background_odds is None else head_background_odds)
            opening_mm = opening_radius(card.foreground_opening_mm if foreground_opening_mm is None
                                        else foreground_opening_mm)
        except ValueError as error:
            raise ConfigError(str(error)) from None
        self.clean_up = CleanUp(
            largest_foreground=card.largest_foreground, foreground_opening_mm=opening_mm,
            largest_component=card.largest_component if largest_component is None else bool(largest_component),
            min_component_ml=card.min_component_ml if min_component_ml is None else float(min_component_ml))
        if model.members and ensemble and runtime != "torch":
            raise ConfigError(f"runtime {runtime!r}: an ensemble model folder runs with runtime 'torch' (its members "
                              "have no exports of their own); --no-ensemble runs its own network's export alone")
        # Ensemble members run as this folder's network does (device, TTA, plan, engine, precision) and give
        # only their calibrated probabilities: this folder's card does the rest once, on their weighted mean.
        def member_predictor(member: ModelFolder, member_tta: bool = tta) -> Predictor:
            return Predictor(member, device=device, tta=member_tta, sw_batch_size=sw_batch_size, fast=fast,
                             engine=engine, crop_foreground=crop_foreground, precision=precision,
                             window_plan=window_plan, memory_budget_gb=memory_budget_gb,
                             fold_batch_norm=fold_batch_norm, channels_last=channels_last, intensity_refinement=False)

        entries = model.card.ensemble if ensemble else ()
        folders = dict(zip((entry.name for entry in model.card.ensemble), model.members))
        self.members: tuple[Predictor, ...] = tuple(
            member_predictor(folders[entry.name]) for entry in entries if entry.role == "mean")
        # The weights of this network and each mean member (the card's; 1 for this network alone).
        self.network_weights: tuple[float, ...] = (
            (model.card.own_weight, *(entry.weight for entry in entries if entry.role == "mean")) if self.members
            else (1.0,))
        # The outline member (medseg.inference.outline_member): (name, weight, its predictor), or None. One pass even
        # with TTA: it only moves the outline, and mirrored passes would cost a third network's time again.
        self.outline_member: tuple[str, float, Predictor] | None = next(
            ((entry.name, entry.weight, member_predictor(folders[entry.name], member_tta=False))
             for entry in entries if entry.role == "outline" and outline_member), None)
        self.geometry: NetworkGeometry = network_geometry(model.config.network)
        self.channels_last = (get_network_spec(model.config.network.name).channels_last if channels_last is None
                              else bool(channels_last))
        if runtime not in RUNTIMES:
            raise ConfigError(f"runtime: {runtime!r} is not one of {', '.join(RUNTIMES)}")
        self.runtime = runtime
        self.folded_norms = 0
        if runtime == "torch":
            self.network: nn.Module = model.build_network().to(self.device).eval()
            if fold_batch_norm and placement_invariant(model.config.network):
                self.network, self.folded_norms = fusion.fold_batch_norm(self.network)
        else:
            # The model folder's own TorchScript/ONNX export (`medseg export`), refused when stale.
            from medseg.research.export import load_model_export

            self.network = load_model_export(model.path, runtime, trust=trust_export).to(self.device).eval()
            precision = "float32"  # an exported graph runs as exported
            engine = "torch"
        if engine not in ENGINES:
            raise ConfigError(f"engine: {engine!r} is not one of {', '.join(ENGINES)}")
        self.window_plan = window_plan if fast else "monai"
        self.budget_bytes = DEFAULT_BUDGET_BYTES if memory_budget_gb is None else int(memory_budget_gb * 2**30)
        self.engine = engine
        self.crop_foreground = bool(crop_foreground)
        self.plan_for((64, 64, 64))  # an unknown plan, or one the network cannot run, fails here
        self.precision = resolve_precision(precision, self.device)
        self._windows: Callable[[torch.Tensor], torch.Tensor] | None = None

    @classmethod
    def from_model(
        cls, model_dir: str | Path, *, device: str = "cpu", tta: bool | None = None, **options: object
    ) -> Predictor:
        """Load ``model_dir`` (config, weights with ``weights_only=True``, card, calibration)."""
        return cls(load_model_folder(model_dir), device=device, tta=tta, **options)

    @property
    def model_dir(self) -> Path:
        return self.model.path

    @property
    def config(self) -> ExperimentConfig:
        return self.model.config

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.model.card.class_names

    @property
    def class_colors(self) -> tuple[tuple[float, float, float], ...]:
        return self.model.card.rgb

    @property
    def modalities(self) -> tuple[str, ...]:
        return self.model.card.modalities

    @property
    def temperature(self) -> float:  # the model folder's calibration
        return self.model.temperature

    def plan_for(self, shape: tuple[int, ...]) -> WindowPlan:
        """The window plan for a preprocessed scan of ``shape`` (I, J, K) on the network grid."""
        return choose_plan(self.window_plan, self.config.network, self.geometry, shape, overlap=self.overlap,
                           crop=self.crop_foreground, budget_bytes=self.budget_bytes)

    def predict_logits(
        self, image: torch.Tensor, *, flips: tuple[int, ...] = (), progress: Callable[[], None] | None = None,
        cancel: CancelCallback | None = None,
    ) -> torch.Tensor:
        """Logits (K, I', J', K') of a preprocessed image (C, I', J', K') on its own grid (no temperature).

        Args:
            flips: spatial dims of the batched (B, C, I, J, K) tensor to mirror before and after the network.
        """
        plan = self.plan_for(tuple(image.shape[1:]))
        logits = self.run_pass(image, plan, flips, progress or (lambda: None), cancel, 1.0).logits()
        if flips:
            logits = torch.flip(logits, tuple(d - 1 for d in flips))
        return logits

    def predict(
        self, volume: Volume, *, progress: ProgressCallback | None = None, cancel: CancelCallback | None = None
    ) -> Prediction:
        """Segment one scan; every output is on ``volume``'s grid.

        Args:
            volume: (C, I, J, K) scan with C = ``len(self.modalities)`` in that order.
            progress: called with the fraction done (0..1) after each stage and window batch.
            cancel: polled before each window batch; returning True raises ``Cancelled``.

        Raises:
            InputError: wrong channel count.
            Cancelled: ``cancel()`` returned True.
        """
        report = progress or (lambda fraction: None)
        started = time.perf_counter()
        timings: dict[str, float] = {"preprocess": 0.0, "network": 0.0, "resample": 0.0}
        self._check_channels(volume)
        check_cancel(cancel)
        # An ensemble: each member's calibrated probabilities on the scan's grid, weighted (the card's weights).
        predictors = (self, *self.members)
        weights = self.network_weights
        parts = len(predictors) + (self.outline_member is not None)  # progress: one share per network
        source_probabilities: np.ndarray | None = None
        disagreements = []
        for index, (predictor, weight) in enumerate(zip(predictors, weights)):
            member_probabilities, disagreement = network_probabilities(
                predictor, volume, timings, cancel,
                lambda done, index=index: report((index * SOURCE_SHARE + done) / parts))
            disagreements.append(disagreement)
            if len(predictors) > 1:
                member_probabilities *= np.float32(weight)  # in place: a 1 mm head's (C, I, J, K) is 145 MB
            if source_probabilities is None:
                source_probabilities = member_probabilities
            else:
                source_probabilities += member_probabilities
            del member_probabilities
        # TTA disagreement: the largest among the members (each compares its own passes on its own grid).
        disagreement = max((d for d in disagreements if not math.isnan(d)), default=math.nan)

        stripped = None  # the skull-stripped check runs when either background-odds setting needs it
        if self.stripped_background_odds < 1.0 or self.head_background_odds > 1.0:
            mark = time.perf_counter()
            stripped = adapt_to_skull_stripped(volume.array[0], source_probabilities, volume.spacing,
                                               self.stripped_background_odds)
            timings["stripped"] = time.perf_counter() - mark

        outline = None
        if self.outline_member is not None and not (stripped is not None and stripped.skull_stripped):
            name, weight, member = self.outline_member
            mark = time.perf_counter()
            clean_up = functools.partial(self.clean_up.apply, spacing=volume.spacing)
            brain = mean_brain(source_probabilities, clean_up)
            timings["outline"] = time.perf_counter() - mark
            member_probabilities, _ = network_probabilities(
                member, volume, timings, cancel, lambda done: report(((parts - 1) * SOURCE_SHARE + done) / parts),
                region=brain_region(brain, volume.spacing), background_only=True)
            mark = time.perf_counter()
            outline = trim_outline(source_probabilities, member_probabilities[0], weight, name, clean_up, brain=brain)
            del member_probabilities, brain
            timings["outline"] += time.perf_counter() - mark
        if stripped is not None and self.head_background_odds > 1.0:
            stripped = raise_head_background_odds(source_probabilities, stripped, self.head_background_odds)

        # One C-ordered copy for the ravels below (a NIfTI's array is Fortran-ordered): not a copy per ravel.
        volume = volume.with_array(np.ascontiguousarray(volume.array))
        refinement = None
        if self.refine_classes:
            mark = time.perf_counter()
            refinement = refine_by_intensity(volume.array[0], source_probabilities, self.refine_classes,
                                             self.refine_iterations, bias_field=self.refine_bias_field,
                                             spacing=volume.spacing, prior_weight=self.refine_prior_weight)
            timings["refine"] = time.perf_counter() - mark

        mark = time.perf_counter()
        prediction = finish_prediction(volume, source_probabilities, self.model.card, self.clean_up, timings,
                                       disagreement, refinement, stripped, outline)
        timings["postprocess"] = time.perf_counter() - mark
        timings["total"] = time.perf_counter() - started
        report(1.0)
        return prediction

    def window_runner(self, windows: int) -> Callable[[torch.Tensor], torch.Tensor]:
        """The callable running windows: the engine's, made once (``"auto"``: only for >= 4 windows)."""
        if self._windows is not None:
            return self._windows
        if self.engine == "auto" and self.precision == "float32" and windows < AUTO_ENGINE_MIN_WINDOWS:
            return self.network
        with torch.inference_mode(False), torch.no_grad():
            self._windows = select_engine(
                self.engine, self.network, self.device, self.config.network.in_channels, self.geometry.infer_window,
                self.precision, self.channels_last,
            )
        return self._windows

    def run_pass(
        self, image: torch.Tensor, plan: WindowPlan, flip: tuple[int, ...], tick: Callable[[], None],
        cancel: CancelCallback | None, temperature: float, region: tuple[slice, ...] | None = None,
    ) -> PlanResult:
        """The plan's result for one mirror ``flip`` (of the flipped image: flip back after); ``region``: a box of
        the unflipped image's voxels (``run_plan``)."""
        # "monai": the reference, the network as it is (float32); the other plans through the engine.
        runner = self.network if plan.kind == "monai" else self.window_runner(plan.forwards)
        values = torch.as_tensor(image).as_subclass(torch.Tensor).to(torch.float32)
        dims = tuple(d - 1 for d in flip)  # (B, C, ...) dims -> (C, ...) dims
        if dims:
            values = torch.flip(values, dims)
        if region is not None:
            region = mirrored_box(region, flip, tuple(values.shape[1:]))

        def network(batch: torch.Tensor) -> torch.Tensor:
            out = runner(batch.to(self.device))
            tick()
            return out.cpu()

        return run_plan(values.cpu(), network, plan, self.config.network, self.geometry, temperature=temperature,
                        batch_size=self.sw_batch_size, before_batch=lambda: check_cancel(cancel), region=region)

    def _check_channels(self, volume: Volume) -> None:
        expected = len(self.modalities)
        if volume.array.shape[0] != expected:
            raise InputError(
                volume.source.path or "the input volume",
                f"{volume.array.shape[0]} channel(s) but the model takes {expected} ({', '.join(self.modalities)})",
                "give one scan per modality, in the model's order",
            )
