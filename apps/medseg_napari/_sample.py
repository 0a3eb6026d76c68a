"""npe2 sample data: the bundled brain subject (T1 and its tissue labels), built on first use.

napari calls sample functions without arguments, so the data are built into the user cache
folder ``platformdirs.user_cache_dir("medseg")/brain-tissue`` (about 10 s the first time,
then only checked); see ``medseg.review.sample``.
"""

from __future__ import annotations

from pathlib import Path

import platformdirs

from medseg.io import read_labels, read_scan
from medseg.review.sample import SampleSubject, sample_subject
from medseg_napari._layers import LayerData, image_layers, labels_layer


def cache_dir() -> Path:
    """The user cache folder the sample is built into."""
    return Path(platformdirs.user_cache_dir("medseg"))


def sample_layers(subject: SampleSubject, *, dicom: bool = False) -> list[LayerData]:
    """The subject's T1 (NIfTI, or the DICOM series) and its ground-truth tissue labels on its grid."""
    volume = read_scan(subject.dicom if dicom else subject.image)
    truth = read_labels(subject.labels)
    layers = image_layers(volume, name="brain_000 T1" + (" (DICOM)" if dicom else ""))
    # The DICOM copy of the T1 has the NIfTI's grid, so the NIfTI labels lie on it as well.
    layers.append(labels_layer(truth.array, volume, name="brain_000 tissue (ground truth)",
                               class_names=subject.class_names))
    return layers


def brain_sample() -> list[LayerData]:
    """File > Open Sample > medseg > Brain T1 with tissue labels."""
    return sample_layers(sample_subject(cache_dir()))


def brain_sample_dicom() -> list[LayerData]:
    """The same subject read from its DICOM series (so it can be saved as DICOM-SEG)."""
    return sample_layers(sample_subject(cache_dir()), dicom=True)
