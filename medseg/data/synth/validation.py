"""Fixed shifted validation volumes from the generator, written once into a run folder.

Early stopping and calibration should see shift, not only the training distribution: these
volumes force the kinds a real reading room sends (other contrasts, thick slices, whole heads,
rotated heads) with seeds of their own, so every run validates on the same volumes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from medseg.config import SynthConfig
from medseg.data.synth.generator import synthesize
from medseg.data.synth.params import draw_params
from medseg.data.synth.source import source_for_contrast

# (name, forced parameters); cycled when more volumes are asked for.
VALIDATION_KINDS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("t1-head-rotated", {"contrast": "t1", "whole_head": True, "rotation": (0.19, -0.14, 0.24), "thick_axis": -1}),
    ("t1-head-axial5mm", {"contrast": "t1", "whole_head": True, "thick_axis": 2, "slice_spacing_mm": 5.0}),
    ("t2-head", {"contrast": "t2", "whole_head": True, "thick_axis": -1}),
    ("pd-stripped", {"contrast": "pd", "whole_head": False, "thick_axis": -1}),
    ("t1-stripped-coronal6mm", {"contrast": "t1", "whole_head": False, "thick_axis": 1, "slice_spacing_mm": 6.0}),
    ("random-head", {"contrast": "random", "whole_head": True}),
    ("template-head-rotated", {"contrast": "template", "whole_head": True, "rotation": (-0.2, 0.1, -0.25)}),
    ("t1-stripped", {"contrast": "t1", "whole_head": False, "thick_axis": -1}),
)
VALIDATION_SEED = 7_919


def write_validation_volumes(synth: SynthConfig, spacing: tuple[float, ...], folder: Path) -> list[dict[str, Any]]:
    """Write ``synth.validation_volumes`` volumes (NIfTI image + labels) and return their data items.

    Existing files are kept (a resumed run validates on the same volumes). The folder also gets a
    ``dataset.json`` and a ``split.json`` naming every volume a validation case, so that
    ``medseg calibrate --data FOLDER/dataset.json --split FOLDER/split.json`` fits the temperature
    on shifted data too.

    Returns:
        Items ``{"image": [path], "label": path, "patient": name}`` for the validation chain.
    """
    import nibabel

    from medseg.io.atomic import atomic_path

    for part in ("imagesTr", "labelsTr"):
        (folder / part).mkdir(parents=True, exist_ok=True)
    items = []
    for index in range(synth.validation_volumes):
        kind, forced = VALIDATION_KINDS[index % len(VALIDATION_KINDS)]
        name = f"synth_{index:02d}_{kind}"
        image_path, label_path = folder / "imagesTr" / f"{name}.nii.gz", folder / "labelsTr" / f"{name}.nii.gz"
        if not (image_path.is_file() and label_path.is_file()):
            params = draw_params(synth, (VALIDATION_SEED, index), **forced)
            source = source_for_contrast(params.contrast, synth.gm_wm_boundary)
            image, labels, affine = synthesize(source, params, synth.grid_shape, spacing)
            for array, path, dtype in ((image[0].numpy(), image_path, np.float32),
                                       (labels.numpy(), label_path, np.uint8)):
                with atomic_path(path) as temporary:
                    nibabel.save(nibabel.Nifti1Image(array.astype(dtype), affine), str(temporary))
        items.append({"image": [str(image_path)], "label": str(label_path), "patient": name})
    _write_datalist(folder, items)
    return items


def _write_datalist(folder: Path, items: list[dict[str, Any]]) -> None:
    """dataset.json (Decathlon) and split.json (all validation) of the written volumes."""
    from medseg.data.decathlon import Case, write_dataset_json
    from medseg.data.splits import Split, save_split
    from medseg.data.template import TISSUE_CLASSES

    cases = [Case(patient_id=item["patient"], images=(Path(item["image"][0]),), label=Path(item["label"]))
             for item in items]
    write_dataset_json(folder / "dataset.json", name="synth-validation",
                       description="Fixed shifted volumes of the generative stream (medseg.data.synth.validation)",
                       modalities=("T1",), labels=TISSUE_CLASSES, training=cases, test=())
    save_split(Split(train=(), val=tuple(sorted(c.patient_id for c in cases)), test=()), folder / "split.json")
