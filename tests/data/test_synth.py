"""The generative stream: reproducible, labels aligned with the image, heads and strips, thick slices."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from medseg.config import SynthConfig, load_config
from medseg.data.synth.dataset import SynthPatchDataset
from medseg.data.synth.generator import sample_source, synthesize, template_coordinates
from medseg.data.synth.head import GENERATION_LABELS, LABEL, MIXED_TISSUES, head_labels
from medseg.data.synth.params import draw_params
from medseg.data.synth.source import SOURCE_CHANNELS, load_synth_source, move_gm_wm_boundary, source_for_contrast
from medseg.errors import ConfigError
from medseg.transforms import ScaleToPercentiled

# A coarse grid keeps each volume well under a second: 4 mm voxels over a whole head.
SHAPE, SPACING = (56, 64, 56), (4.0, 4.0, 4.0)
CLEAN = {"bias_std": 0.0, "noise_std": 0.0, "thick_axis": -1, "elastic_mm": 0.0, "gamma": 1.0}


@pytest.fixture(scope="module")
def source():
    return load_synth_source()


def _volume(source, seed: int = 0, **forced):
    params = draw_params(SynthConfig(), (11, seed), **forced)
    image, labels, affine = synthesize(source, params, SHAPE, SPACING)
    return image[0].numpy(), labels.numpy(), affine, params


def test_source_holds_the_template_brain_and_distance_maps(source) -> None:
    channels = dict(zip(SOURCE_CHANNELS, source.channels))
    brain = channels["csf"] + channels["gm"] + channels["wm"]
    volume_ml = float((brain >= 0.5).sum()) / 1000.0  # 1 mm voxels
    assert 1300 < volume_ml < 1900  # an adult brain incl. ventricles and sulcal CSF
    assert float(brain.max()) <= 1.0 + 1e-5
    # dist_out is 0 inside and grows by 1 mm per voxel outside; depth_in the reverse.
    inside = channels["depth_in"] > 0
    assert float(channels["dist_out"][inside].max()) == 0.0
    assert float(channels["dist_out"].max()) > 60.0


def test_same_seed_same_volume_and_forced_fields(source) -> None:
    first = _volume(source, 3)
    second = _volume(source, 3)
    assert np.array_equal(first[0], second[0]) and np.array_equal(first[1], second[1])
    other = _volume(source, 4)
    assert not np.array_equal(first[0], other[0])
    forced = draw_params(SynthConfig(), (11, 3), contrast="t2", whole_head=False)
    assert forced.contrast == "t2" and not forced.whole_head
    assert draw_params(SynthConfig(), (11, 3)).rotation == forced.rotation  # the rest is unchanged


@pytest.mark.parametrize("rotation", [(0.0, 0.0, 0.0), (0.3, -0.25, 0.35)])
def test_labels_stay_on_their_tissue_in_t1_and_t2(source, rotation) -> None:
    """T1: WM brighter than GM brighter than CSF; T2: the reverse. A misaligned label map breaks both."""
    for contrast, sign in (("t1", 1.0), ("t2", -1.0)):
        image, labels, _, _ = _volume(source, 5, contrast=contrast, whole_head=False, rotation=rotation, **CLEAN)
        means = [float(image[labels == c].mean()) for c in (1, 2, 3)]
        assert sign * (means[2] - means[1]) > 0.05 * image.max(), (contrast, means)
        assert sign * (means[1] - means[0]) > 0.05 * image.max(), (contrast, means)


def test_whole_head_has_signal_outside_the_brain_labelled_background(source) -> None:
    head, head_labels, _, _ = _volume(source, 6, contrast="t1", whole_head=True, **CLEAN)
    stripped, stripped_labels, _, params = _volume(source, 6, contrast="t1", whole_head=False, **CLEAN)
    assert np.array_equal(head_labels, stripped_labels)  # the head never changes the tissue labels
    outside = head_labels == 0
    bright = head > 0.3 * head.max()
    # Skull-on: a good part of the bright voxels are outside the brain (scalp fat, marrow).
    assert (bright & outside).sum() > 0.1 * bright.sum()
    # Skull-stripped: nothing beyond the brain mask plus its margin.
    assert (stripped[outside] > 0).mean() < 0.25
    assert (stripped[labels_far(stripped_labels)] == 0).all()


def labels_far(labels: np.ndarray) -> np.ndarray:
    """Voxels more than 3 voxels (12 mm) away from any brain label."""
    from scipy import ndimage

    return ndimage.distance_transform_edt(labels == 0) > 3


def test_thick_slices_remove_detail_along_their_axis_only(source) -> None:
    thin, labels, _, _ = _volume(source, 7, contrast="t1", whole_head=False, **CLEAN)
    thick, _, _, _ = _volume(source, 7, contrast="t1", whole_head=False,
                             **dict(CLEAN, thick_axis=2, slice_spacing_mm=12.0))
    brain = labels > 0

    def detail(image: np.ndarray, axis: int) -> float:
        return float(np.abs(np.diff(image, axis=axis))[brain[tuple(slice(0, -1) if a == axis else slice(None)
                                                                    for a in range(3))]].mean())

    kept = [detail(thick, axis) / detail(thin, axis) for axis in range(3)]
    # Thick along S: the least detail survives along S (0.49 vs 0.74 / 0.67 when written), none of it is lost
    # when the step is skipped (all 1.0), and another axis would be the smallest when the axis is wrong.
    assert kept[2] < 0.6 and kept[2] < 0.8 * min(kept[0], kept[1]), kept


def test_every_generation_label_has_an_intensity(source) -> None:
    from medseg.data.synth.contrast import draw_intensities

    for contrast in ("t1", "t2", "pd", "random", "template"):
        means, stds = draw_intensities(contrast, np.random.default_rng(0))
        assert means.shape == stds.shape == (len(GENERATION_LABELS),)
        assert means[GENERATION_LABELS.index("air")] <= 0.05
    with pytest.raises(ValueError, match="unknown synthetic contrast"):
        draw_intensities("ct", np.random.default_rng(0))


def test_dataset_is_seeded_by_run_epoch_and_index(source) -> None:
    from monai.transforms import Compose, RandCropByLabelClassesd

    synth = dataclasses.replace(SynthConfig(), volumes_per_epoch=3, grid_shape=SHAPE)
    sampler = RandCropByLabelClassesd(keys=["image", "label"], label_key="label", spatial_size=(24, 24, 24),
                                      num_classes=4, num_samples=2, warn=False)
    dataset = SynthPatchDataset(synth, SPACING, Compose([ScaleToPercentiled(["image"])]), sampler, seed=1)
    dataset.set_epoch(1)
    first = dataset[0]
    again = dataset[0]
    assert len(first) == 2 and tuple(first[0]["image"].shape) == (1, 24, 24, 24)
    assert all(torch.equal(a["image"], b["image"]) for a, b in zip(first, again))
    dataset.set_epoch(2)
    assert not torch.equal(dataset[0][0]["image"], first[0]["image"])
    assert len(dataset) == 3


def test_percentile_scaling_ignores_zero_padding() -> None:
    rng = np.random.default_rng(0)
    brain = torch.as_tensor(rng.uniform(10, 500, (1, 20, 20, 20)), dtype=torch.float32)
    padded = torch.zeros((1, 60, 60, 60))
    padded[:, 20:40, 20:40, 20:40] = brain
    scale = ScaleToPercentiled(["image"])
    small = scale({"image": MetaTensor(brain)})["image"]
    large = scale({"image": MetaTensor(padded)})["image"]
    assert torch.allclose(large[:, 20:40, 20:40, 20:40], small)
    assert float(torch.quantile(small.flatten(), 0.99)) == pytest.approx(1.0, abs=1e-4)
    assert float(large[:, :20].abs().max()) == 0.0


def test_validation_volumes_are_a_dataset_with_an_all_validation_split(source, tmp_path) -> None:
    from medseg.data.decathlon import read_datalist
    from medseg.data.splits import load_split
    from medseg.data.synth.validation import write_validation_volumes
    from medseg.io.read import read_labels, read_scan

    synth = dataclasses.replace(SynthConfig(), grid_shape=SHAPE, validation_volumes=2)
    items = write_validation_volumes(synth, SPACING, tmp_path)
    datalist = read_datalist(tmp_path / "dataset.json")
    split = load_split(tmp_path / "split.json")
    assert [c.patient_id for c in datalist.training] == list(split.val) == [i["patient"] for i in items]
    assert split.train == () and split.test == ()
    assert items[0]["patient"] == "synth_00_t1-head-rotated" and items[1]["patient"] == "synth_01_t1-head-axial5mm"
    image = read_scan(items[0]["image"][0])
    labels = read_labels(items[0]["label"], reference=image)
    assert image.array.shape == (1, *SHAPE) and set(np.unique(labels.array)) == {0, 1, 2, 3}
    # Written once: a resumed run validates on the same bytes.
    before = (tmp_path / "imagesTr" / "synth_00_t1-head-rotated.nii.gz").stat().st_mtime_ns
    write_validation_volumes(synth, SPACING, tmp_path)
    assert (tmp_path / "imagesTr" / "synth_00_t1-head-rotated.nii.gz").stat().st_mtime_ns == before


@pytest.mark.parametrize("percentile", [50.0, 99.0, 99.9])
def test_percentile_of_nonzero_equals_torch_quantile(percentile) -> None:
    """The O(n) selection gives torch.quantile's value (the scale the shipped models were trained with).

    To 1e-4: torch computes the interpolation position in float32, numpy in float64 (2e-5 apart at 99.9 %).
    """
    from medseg.transforms import percentile_of_nonzero

    rng = np.random.default_rng(1)
    values = np.round(rng.gamma(2.0, 100.0, 30_001)).astype(np.float32)  # ties, as integer MR intensities have
    values[::7] = 0.0
    image = torch.as_tensor(values.reshape(1, 30_001))[0]
    expected = float(torch.quantile(image[image != 0], percentile / 100.0))
    assert percentile_of_nonzero(image, percentile) == pytest.approx(expected, rel=1e-4)
    assert percentile_of_nonzero(values, percentile) == pytest.approx(expected, rel=1e-4)
    assert percentile_of_nonzero(np.zeros(5, dtype=np.float32), percentile) == 0.0


def test_the_face_puts_mucosa_a_few_mm_under_the_frontal_lobes(source) -> None:
    """Real heads show gray-matter-like mucosa (ethmoid cells, conchae) 1-3 mm below the frontal lobes, across
    a thin cribriform plate; the generated heads must too (a skull shell alone keeps it >= 3.3 mm away)."""
    params = draw_params(SynthConfig(), (11, 0), rotation=(0.0, 0.0, 0.0), scale=(1.0, 1.0, 1.0),
                         translation_mm=(0.0, 0.0, 0.0), elastic_mm=0.0, flip=False)
    coords = template_coordinates(source, params, (96, 112, 96), (2.0, 2.0, 2.0), torch.Generator().manual_seed(0))
    dist_out = sample_source(source, coords)[4]
    x, y, z = coords
    under_frontal = (x.abs() < 15) & (y > 15) & (y < 60) & (z < -20) & (dist_out > 1.0) & (dist_out <= 3.0)
    mixed = torch.tensor([LABEL[name] for name in MIXED_TISSUES])
    with_mucosa = 0
    for seed in range(6):
        labels = head_labels(dist_out, coords, np.random.default_rng(seed), torch.Generator().manual_seed(seed))
        assert not torch.isin(labels[dist_out <= 1.0], mixed).any()  # never on or right at the brain
        close = torch.isin(labels[under_frontal], mixed).float().mean()
        with_mucosa += int(close > 0.02)
    assert with_mucosa >= 4, with_mucosa  # the cavities are drawn in 85 % of heads


def test_moving_the_gm_wm_boundary_reshares_tissue_and_keeps_its_sum() -> None:
    share = np.array([0.0, 0.2, 0.35, 0.5, 0.8, 1.0], dtype=np.float32)
    tissue = np.array([1.0, 0.9, 1.0, 0.6, 1.0, 0.3], dtype=np.float32)
    gm, wm = tissue * (1 - share), tissue * share
    moved_gm, moved_wm = move_gm_wm_boundary(gm, wm, 0.35)
    np.testing.assert_allclose(moved_gm + moved_wm, tissue, rtol=1e-6)
    np.testing.assert_allclose(moved_wm / tissue, [0.0, 0.2 / 0.7, 0.5, 0.5 + 0.15 / 1.3, 0.5 + 0.45 / 1.3, 1.0],
                               rtol=1e-6)
    same_gm, same_wm = move_gm_wm_boundary(gm, wm, 0.5)
    assert same_gm is gm and same_wm is wm


def test_boundary_outside_its_range_is_a_config_error() -> None:
    for bad in (0.0, 0.99, 1.5):
        with pytest.raises(ConfigError, match="gm_wm_boundary"):
            load_config(SynthConfig, {"gm_wm_boundary": bad}, "data.synth")
    assert load_config(SynthConfig, {"gm_wm_boundary": 0.35}, "data.synth").gm_wm_boundary == 0.35


def test_thinner_gray_matter_moves_image_and_labels_together(source) -> None:
    thin = source_for_contrast("t1", 0.35)
    assert source_for_contrast("template", 0.35) is source  # the template T1's own boundary stays
    params = draw_params(SynthConfig(), (11, 3), contrast="t1", whole_head=False, **CLEAN)
    volumes = {}
    for name, from_source in (("template", source), ("thin", thin)):
        image, labels, _ = synthesize(from_source, params, SHAPE, SPACING)
        volumes[name] = image[0].numpy(), labels.numpy()
    counts = {name: np.bincount(labels.ravel(), minlength=4) for name, (_, labels) in volumes.items()}
    assert counts["template"][2] / counts["template"][3] > 1.5 > 1.35 > counts["thin"][2] / counts["thin"][3]
    assert counts["thin"][1:].sum() == counts["template"][1:].sum()  # the brain itself is unchanged

    thin_image, thin_labels = volumes["thin"]
    thick_image, thick_labels = volumes["template"]
    changed = (thick_labels == 2) & (thin_labels == 3)
    assert changed.sum() > 0.1 * (thick_labels == 2).sum()
    # The voxels that became white matter became brighter (T1: WM above GM), the same seed drawing the
    # same intensities: the image followed the labels. Elsewhere in the brain little changed.
    gap = float(thick_image[thick_labels == 3].mean() - thick_image[thick_labels == 2].mean())
    assert float((thin_image - thick_image)[changed].mean()) > 0.05 * gap
    kept_wm = (thick_labels == 3) & (thin_labels == 3)
    assert abs(float((thin_image - thick_image)[kept_wm].mean())) < 0.5 * float((thin_image - thick_image)[changed].mean())


def test_rim_and_dura_settings_are_validated() -> None:
    for bad in ({"rim_csf_tied_prob": 1.5}, {"dura_prob": -0.1}, {"dura_mm": [2.0, 1.0]}, {"dura_mm": [0.0, 1.0]}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            load_config(SynthConfig, bad, "data.synth")
    config = load_config(SynthConfig, {"rim_csf_tied_prob": 0.7, "dura_prob": 0.7, "dura_mm": [0.5, 1.5]}, "data.synth")
    assert config.dura_mm == (0.5, 1.5)


def test_rim_and_dura_draws_leave_every_earlier_draw_alone() -> None:
    """Their own generator: a stream without them is the earlier stream; with them, only the new fields change."""
    plain = draw_params(SynthConfig(), (11, 5))
    assert plain.rim_csf_ratio == 0.0 and plain.dura_mm == 0.0
    always = draw_params(SynthConfig(rim_csf_tied_prob=1.0, dura_prob=1.0, dura_mm=(0.5, 1.5)), (11, 5))
    assert 0.85 <= always.rim_csf_ratio <= 1.15 and 0.5 <= always.dura_mm <= 1.5
    assert dataclasses.replace(always, rim_csf_ratio=0.0, dura_mm=0.0) == plain
    shares = [draw_params(SynthConfig(rim_csf_tied_prob=0.7, dura_prob=0.3), (11, seed)) for seed in range(200)]
    assert 0.6 < np.mean([p.rim_csf_ratio > 0 for p in shares]) < 0.8
    assert 0.2 < np.mean([p.dura_mm > 0 for p in shares]) < 0.4

    from medseg.data.synth.contrast import draw_intensities

    for contrast in ("t1", "random"):
        early, _ = draw_intensities(contrast, np.random.default_rng(3))
        late, _ = draw_intensities(contrast, np.random.default_rng(3), np.random.default_rng(4))
        dura = LABEL["dura"]
        assert np.array_equal(np.delete(early, dura), np.delete(late, dura))  # only the dura's own value differs
        assert early[dura] == early[LABEL["csf_rim"]] and late[dura] != early[dura]


def test_a_tied_rim_takes_the_sulcal_csf_intensity(source) -> None:
    """The CSF a skull-stripping tool leaves (the rim) follows the sulcal CSF's mean times the ratio."""
    from scipy import ndimage

    from medseg.data.synth.contrast import draw_intensities
    from medseg.data.synth.generator import tie_rim_to_csf

    means, stds = draw_intensities("t1", np.random.default_rng(0))
    tie_rim_to_csf(means, stds, 1.1)
    assert means[LABEL["csf_rim"]] == pytest.approx(1.1 * means[LABEL["csf_sulcal"]])
    assert stds[LABEL["csf_rim"]] == stds[LABEL["csf_sulcal"]]

    rim_medians = {}
    for ratio in (0.85, 1.15):
        params = draw_params(SynthConfig(), (11, 3), contrast="t1", whole_head=False, strip_margin_mm=3.0,
                             rim_csf_ratio=ratio, **CLEAN)
        image, labels, _ = synthesize(source, params, (112, 128, 112), (2.0, 2.0, 2.0))
        image, labels = image[0].numpy(), labels.numpy()
        rim = (ndimage.distance_transform_edt(labels == 0) >= 1) & (image > 0)
        rim_medians[ratio] = float(np.median(image[rim]))
    # Partial volume with the brain's edge dilutes the ratio (1.17 measured for 1.35); untied, 1.0.
    assert rim_medians[1.15] / rim_medians[0.85] > 1.1, rim_medians


def test_dura_lines_the_skull_as_background(source) -> None:
    """The dura takes the rim's outer part (against the bone), nothing else; the tissue labels never change."""
    params = draw_params(SynthConfig(), (11, 0), rotation=(0.0, 0.0, 0.0), elastic_mm=0.0, flip=False)
    coords = template_coordinates(source, params, SHAPE, SPACING, torch.Generator().manual_seed(0))
    dist_out = sample_source(source, coords)[4]
    plain = head_labels(dist_out, coords, np.random.default_rng(1), torch.Generator().manual_seed(1))
    lined = head_labels(dist_out, coords, np.random.default_rng(1), torch.Generator().manual_seed(1), dura_mm=1.5)
    dura = lined == LABEL["dura"]
    assert int(dura.sum()) > 0 and not (plain == LABEL["dura"]).any()
    assert (plain[dura] == LABEL["csf_rim"]).all()  # taken from the rim only
    assert torch.equal(lined[~dura], plain[~dura])
    # Against the skull: deeper (further from the brain) than the rim that is left, on average.
    rim_left = lined == LABEL["csf_rim"]
    assert float(dist_out[dura].mean()) > float(dist_out[rim_left & (dist_out <= 6.0)].mean())

    head, head_tissue, _, _ = _volume(source, 6, contrast="t1", whole_head=True, **CLEAN)
    with_dura, dura_tissue, _, _ = _volume(source, 6, contrast="t1", whole_head=True, dura_mm=1.5, **CLEAN)
    assert np.array_equal(head_tissue, dura_tissue) and not np.array_equal(head, with_dura)


def test_temporalis_thickens_the_muscle_beside_the_temporal_lobes_only(source) -> None:
    """Gray muscle over each temporal lobe under a thinner bone; the vertex and the rest of the head unchanged."""
    params = draw_params(SynthConfig(), (11, 0), rotation=(0.0, 0.0, 0.0), elastic_mm=0.0, flip=False,
                         scale=(1.0, 1.0, 1.0), translation_mm=(0.0, 0.0, 0.0))
    coords = template_coordinates(source, params, (96, 112, 96), (2.0, 2.0, 2.0), torch.Generator().manual_seed(0))
    dist_out = sample_source(source, coords)[4]
    plain = head_labels(dist_out, coords, np.random.default_rng(1), torch.Generator().manual_seed(1))
    with_muscle = head_labels(dist_out, coords, np.random.default_rng(1), torch.Generator().manual_seed(1),
                              temporalis_mm=15.0, late=np.random.default_rng(2))
    x, y, z = coords
    temporal = (x.abs() > 50) & (z > -30) & (z < 15) & (y > -30) & (y < 10) & (dist_out > 0) & (dist_out < 25)
    vertex = (z > 60) & (dist_out > 0)
    muscle, bone = LABEL["muscle"], LABEL["bone"]
    assert int((with_muscle[temporal] == muscle).sum()) > 2 * int((plain[temporal] == muscle).sum())
    assert int((with_muscle[temporal] == bone).sum()) < int((plain[temporal] == bone).sum())
    assert torch.equal(with_muscle[vertex], plain[vertex])
    with pytest.raises(ValueError, match="late"):
        head_labels(dist_out, coords, np.random.default_rng(1), torch.Generator().manual_seed(1), temporalis_mm=15.0)

    rim_dura = SynthConfig(rim_csf_tied_prob=0.7, dura_prob=0.7)
    for seed in range(5):  # a later setting's draws leave the earlier settings' draws alone
        earlier = draw_params(rim_dura, (11, seed))
        later = draw_params(dataclasses.replace(rim_dura, temporalis_prob=1.0), (11, seed))
        assert dataclasses.replace(later, temporalis_mm=0.0) == earlier and 8.0 <= later.temporalis_mm <= 18.0
