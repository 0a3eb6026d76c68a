"""Reader, writer and manifest: masks overlay their scans in world space, saved labels equal the layer."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from medseg_napari._reader import get_reader, is_label_file

from medseg.io import read_labels, read_scan, write_labels
from medseg.review.display import world_from_ras


def _open(viewer, path):
    reader = get_reader(str(path))
    assert reader is not None
    return [getattr(viewer, f"add_{kind}")(data, **kwargs) for data, kwargs, kind in reader(str(path))]


@pytest.mark.parametrize("scan_fixture", ["oblique_nifti", "sagittal_dicom"])
def test_mask_overlays_scan_voxel_for_voxel_in_world(make_napari_viewer, request, tmp_path, scan_fixture):
    path, mask = request.getfixturevalue(scan_fixture)
    volume = read_scan(path)
    seg_path = write_labels(mask, tmp_path / "case" / "seg.nii.gz", volume)  # as `medseg predict` writes it
    viewer = make_napari_viewer()
    (scan_layer,) = _open(viewer, path)
    (mask_layer,) = _open(viewer, seg_path)
    assert mask_layer._type_string == "labels" and scan_layer._type_string == "image"
    assert mask_layer.data.shape == scan_layer.data.shape
    grid = scan_layer.metadata["medseg_grid"]
    rng = np.random.default_rng(0)
    for ijk in [(0, 0, 0), tuple(s - 1 for s in volume.spatial_shape), *map(tuple, rng.integers(0, 9, (5, 3)))]:
        display = grid.display_index(ijk)
        world_scan = np.asarray(scan_layer.data_to_world(display))
        world_mask = np.asarray(mask_layer.data_to_world(display))
        np.testing.assert_allclose(world_mask, world_scan, atol=1e-3)
        np.testing.assert_allclose(world_scan, (world_from_ras(volume.affine) @ [*ijk, 1])[:3], atol=1e-3)
        assert scan_layer.data[display] == volume.array[(0, *ijk)]
        assert mask_layer.data[display] == mask[ijk]


def test_reader_returns_none_on_bad_input(tmp_path):
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(b"not a nifti at all")
    empty = tmp_path / "empty_folder"
    empty.mkdir()
    assert get_reader(str(broken)) is None
    assert get_reader(str(empty)) is None
    assert get_reader(str(tmp_path / "missing.nii")) is None
    assert get_reader(str(tmp_path / "picture.png")) is None
    assert get_reader([str(broken), str(broken)]) is None
    assert is_label_file(tmp_path / "seg.nii.gz") and is_label_file(tmp_path / "case_labels.nrrd")
    assert not is_label_file(tmp_path / "segment_t1.nii.gz") and not is_label_file(tmp_path / "brain.nii.gz")


def test_writer_output_equals_edited_layer(make_napari_viewer, oblique_nifti, sagittal_dicom, tmp_path):
    viewer = make_napari_viewer()
    path, mask = oblique_nifti
    volume = read_scan(path)
    seg = write_labels(mask, tmp_path / "seg.nii.gz", volume)
    (layer,) = _open(viewer, seg)
    layer.data[2:5, 1:4, 3:6] = 2  # an edit in display space
    saved = layer.save(str(tmp_path / "edited.nii.gz"), plugin="medseg")
    back = read_labels(saved[0], reference=volume)
    np.testing.assert_array_equal(back.array, layer.metadata["medseg_grid"].to_source(layer.data))
    assert not np.array_equal(back.array, mask)  # the edit is in the file ...
    np.testing.assert_array_equal(read_labels(seg).array, mask)  # ... and the opened file is untouched

    folder, dicom_mask = sagittal_dicom
    dicom_volume = read_scan(folder)
    from medseg_napari._layers import labels_layer

    data, kwargs, _ = labels_layer(dicom_mask, dicom_volume, name="seg", class_names=("bg", "ball", "block"))
    dicom_layer = viewer.add_labels(data, **kwargs)
    out = dicom_layer.save(str(tmp_path / "seg.dcm"), plugin="medseg")
    seg_dataset = pydicom.dcmread(out[0])
    assert seg_dataset.Modality == "SEG"
    assert [s.SegmentLabel for s in seg_dataset.SegmentSequence] == ["ball", "block"]
    series_uid = dicom_volume.source.dicom["SeriesInstanceUID"]
    assert seg_dataset.ReferencedSeriesSequence[0].SeriesInstanceUID == series_uid


def test_manifest_is_discovered():
    import npe2

    manager = npe2.PluginManager.instance()
    manager.discover()
    manifest = manager.get_manifest("medseg")
    assert {w.display_name for w in manifest.contributions.widgets} == {
        "Review (worklist + segment)", "Segment", "Activations"}
    assert [s.key for s in manifest.contributions.sample_data] == ["brain", "brain-dicom"]
    assert manifest.contributions.readers[0].accepts_directories
