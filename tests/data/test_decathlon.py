"""dataset.json: written and read back; every invalid entry is an InputError naming file and key."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel
import numpy as np
import pytest

from medseg.data.decathlon import Case, read_datalist, write_dataset_json
from medseg.errors import InputError

LABELS = ("background", "liver", "tumour")


def _nifti(path: Path, value: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nibabel.save(nibabel.Nifti1Image(np.full((4, 4, 3), value, dtype=np.uint8), np.eye(4)), path)
    return path


@pytest.fixture
def root(tmp_path: Path) -> Path:
    for name in ("a", "b"):
        _nifti(tmp_path / "imagesTr" / f"{name}.nii.gz")
        _nifti(tmp_path / "labelsTr" / f"{name}.nii.gz")
    _nifti(tmp_path / "imagesTs" / "c.nii.gz")
    return tmp_path


def _content(**changes: object) -> dict:
    content = {
        "name": "tiny",
        "description": "d",
        "modality": {"0": "CT"},
        "labels": {"0": "background", "1": "liver", "2": "tumour"},
        "numTraining": 2,
        "numTest": 1,
        "training": [
            {"image": "./imagesTr/a.nii.gz", "label": "./labelsTr/a.nii.gz"},
            {"image": "./imagesTr/b.nii.gz", "label": "./labelsTr/b.nii.gz"},
        ],
        "test": ["./imagesTs/c.nii.gz"],
    }
    content.update(changes)
    return content


def _write_json(root: Path, content: dict) -> Path:
    path = root / "dataset.json"
    path.write_text(json.dumps(content), encoding="utf-8")
    return path


def test_write_then_read_round_trip(root: Path) -> None:
    training = [Case(n, (root / "imagesTr" / f"{n}.nii.gz",), root / "labelsTr" / f"{n}.nii.gz") for n in "ab"]
    test = [Case("c", (root / "imagesTs" / "c.nii.gz",))]
    path = write_dataset_json(root / "dataset.json", name="tiny", description="two cases",
                              modalities=("CT",), labels=LABELS, training=training, test=test,
                              extra={"seed": 3})
    content = json.loads(path.read_text())
    assert content["training"][1] == {"image": "./imagesTr/b.nii.gz", "label": "./labelsTr/b.nii.gz"}
    assert content["test"] == [{"image": "./imagesTs/c.nii.gz"}]
    assert (content["numTraining"], content["numTest"], content["seed"]) == (2, 1, 3)
    assert content["modality"] == {"0": "CT"}
    datalist = read_datalist(path)
    assert datalist.labels == LABELS
    assert datalist.modalities == ("CT",)
    assert [c.patient_id for c in datalist.training] == ["a", "b"]
    assert datalist.training[0].images == ((root / "imagesTr" / "a.nii.gz").resolve(),)
    assert datalist.test[0].label is None
    assert datalist.case("b").label == (root / "labelsTr" / "b.nii.gz").resolve()
    assert datalist.root == root


def test_monai_reads_our_json(root: Path) -> None:
    from monai.data import load_decathlon_datalist

    training = [Case(n, (root / "imagesTr" / f"{n}.nii.gz",), root / "labelsTr" / f"{n}.nii.gz") for n in "ab"]
    path = write_dataset_json(root / "dataset.json", name="tiny", description="", modalities=("CT",),
                              labels=LABELS, training=training, test=[])
    items = load_decathlon_datalist(path, is_segmentation=True, data_list_key="training")
    assert [Path(i["label"]).name for i in items] == ["a.nii.gz", "b.nii.gz"]
    assert Path(items[0]["image"]) == root / "imagesTr" / "a.nii.gz"


def test_multi_modality_lists_and_channel_suffix(root: Path) -> None:
    _nifti(root / "imagesTr" / "a_0001.nii.gz")
    content = _content(
        modality={"0": "T1", "1": "FLAIR"},
        training=[{"image": ["./imagesTr/a.nii.gz", "./imagesTr/a_0001.nii.gz"], "label": "./labelsTr/a.nii.gz"}],
        test=[{"image": "./imagesTs/c.nii.gz", "patient_id": "P-17"}],
    )
    datalist = read_datalist(_write_json(root, content))
    assert len(datalist.training[0].images) == 2
    assert datalist.test[0].patient_id == "P-17"
    content["training"][0]["image"] = ["./imagesTr/a_0001.nii.gz"]
    assert read_datalist(_write_json(root, content)).training[0].patient_id == "a"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"training": None}, "key 'training': is missing"),
        ({"training": {"a": 1}}, "key 'training': must be a list"),
        ({"labels": {"0": "background", "2": "x"}}, r"key 'labels': keys must be 0\.\.1 without gaps"),
        ({"labels": {"zero": "background"}}, "key 'labels': keys must be integers"),
        ({"training": [{"image": "./imagesTr/a.nii.gz"}]}, r"key 'training\[0\]\.label': is missing"),
        ({"training": [{"label": "./labelsTr/a.nii.gz"}]}, r"key 'training\[0\]\.image': is missing"),
        ({"training": [{"image": "./imagesTr/zz.nii.gz", "label": "./labelsTr/a.nii.gz"}]},
         r"key 'training\[0\]\.image': './imagesTr/zz.nii.gz' does not exist"),
        ({"training": [{"image": 5, "label": "./labelsTr/a.nii.gz"}]}, "must be a file path"),
        ({"test": ["./imagesTr/a.nii.gz"]}, r"key 'test\[0\]': case id 'a' is also used by training\[0\]"),
        ({"modality": {"0": "T1", "1": "T2", "2": "FLAIR"},
          "training": [{"image": ["./imagesTr/a.nii.gz", "./imagesTr/b.nii.gz"], "label": "./labelsTr/a.nii.gz"}]},
         r"key 'training\[0\]': 2 image files for 3 modalities"),
    ],
)
def test_invalid_entries_name_file_and_key(root: Path, changes: dict, message: str) -> None:
    content = _content(**changes)
    content = {k: v for k, v in content.items() if v is not None}
    with pytest.raises(InputError, match=message) as caught:
        read_datalist(_write_json(root, content))
    assert caught.value.path == str(root / "dataset.json")
    assert "Decathlon layout" in str(caught.value)


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read the file"):
        read_datalist(tmp_path / "dataset.json")
    (tmp_path / "dataset.json").write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        read_datalist(tmp_path / "dataset.json")
    (tmp_path / "dataset.json").write_text("[1, 2]")
    with pytest.raises(InputError, match="must be a JSON object"):
        read_datalist(tmp_path / "dataset.json")


def test_check_files_false_skips_existence(tmp_path: Path) -> None:
    content = _content(training=[{"image": "./imagesTr/x.nii.gz", "label": "./labelsTr/x.nii.gz"}], test=[])
    datalist = read_datalist(_write_json(tmp_path, content), check_files=False)
    assert datalist.training[0].patient_id == "x"
