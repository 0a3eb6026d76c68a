"""The bundled brain sample subject, built on demand (no download) into a cache folder.

napari calls sample-data functions without arguments, so the napari plugin passes the
user cache folder (platformdirs' ``user_cache_dir("medseg")``); everything here takes the
folder as an argument. Only subject ``brain_000`` is built (``n_train=1, n_test=0``): with the
same seed it is the same subject, byte for byte, as ``brain_000`` of the full data set, and it
is also written as a DICOM series. The definition is the bundled ``brain-tissue`` one
(``medseg.resources``: the source tree's ``datasets/brain-tissue.yaml``, or its copy in the wheel).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path


DEFINITION = "brain-tissue"  # a bundled name (medseg.resources) or a path
SUBJECT = "brain_000"


@dataclass(frozen=True)
class SampleSubject:
    """Paths of the sample subject: T1 image, tissue labels, the same T1 as a DICOM series folder."""

    image: Path
    labels: Path
    dicom: Path
    class_names: tuple[str, ...]


def sample_subject(cache_dir: str | Path, definition: str | Path = DEFINITION) -> SampleSubject:
    """Build (once; later calls only check the files) the sample subject under ``cache_dir / "brain-tissue"``.

    Args:
        cache_dir: a writable folder (napari passes the user cache folder).
        definition: the brain-tissue sample definition YAML, or a bundled definition's name.

    Raises:
        InputError: the definition is missing (a broken installation) or the MNI template is not
            installed. OutputError: the cache cannot be written.
    """
    from medseg.data.build import build_sample_from_config
    from medseg.data.sample_config import load_sample_definition
    from medseg.data.template import TISSUE_CLASSES
    from medseg.resources import resolve

    definition = resolve("dataset", definition)
    config = dataclasses.replace(load_sample_definition(definition), n_train=1, n_test=0, dicom_cases=(0,))
    out = Path(cache_dir) / config.name
    build_sample_from_config(config, out)
    return SampleSubject(
        image=out / "imagesTr" / f"{SUBJECT}.nii.gz", labels=out / "labelsTr" / f"{SUBJECT}.nii.gz",
        dicom=out / "dicom" / SUBJECT, class_names=TISSUE_CLASSES,
    )
