"""A reader's corrected mask as a DICOM-SEG for the PACS, and the hook that will send it there.

For a case read from DICOM, "Corrected" writes ``<case>/seg_reviewed.dcm`` beside the NIfTI
(``medseg.io.dicomseg``): a BINARY Segmentation in the source's study, referencing the source
series, every segment SEMIAUTOMATIC with the model the reader started from as its algorithm,
SeriesDescription "medseg corrected" and ContentDescription "manually corrected from <model>".
No name from the DICOM folder goes into it or into its path (the case id names the folder).

Sending: the PACS issue (DICOMweb/DIMSE ``--send-to``) is not built yet. ``Sender`` is the
hook it fills: a callable taking the written file; the Review dock calls its ``sender``
after writing, when one is set, and otherwise leaves the file in the case folder, where a
later ``medseg`` PACS command (or a person) can pick it up.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from medseg.types import Volume

CORRECTED_SEG_NAME = "seg_reviewed.dcm"
SERIES_DESCRIPTION = "medseg corrected"
Sender = Callable[[Path], None]  # the PACS hook: send one written DICOM file (see the module docstring)


def is_dicom(volume: Volume) -> bool:
    """True when the scan was read from a DICOM series or an enhanced DICOM file."""
    from medseg.io.dicomseg import DICOM_FORMATS

    return volume.source.format in DICOM_FORMATS and bool(volume.source.files)


def write_corrected_seg(labels: np.ndarray, reference: Volume, class_names: Sequence[str], case_dir: str | Path,
                        model_name: str = "") -> Path:
    """Write (I, J, K) corrected labels as ``case_dir / seg_reviewed.dcm`` (see the module docstring).

    Raises:
        InputError: the reference is not DICOM, or the labels are off its grid or beyond the class names.
        OutputError: the file cannot be written.
    """
    from medseg.io.dicomseg import write_dicom_seg

    model = model_name or "medseg model"
    return write_dicom_seg(
        np.asarray(labels), Path(case_dir) / CORRECTED_SEG_NAME, reference, class_names,
        algorithm_name=model, series_description=SERIES_DESCRIPTION, algorithm_type="SEMIAUTOMATIC",
        content_description=f"manually corrected from {model}",
    )
