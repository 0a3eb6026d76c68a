"""``medseg view URL``: a DICOMweb study opened like a study folder, and the sender for corrected SEGs.

``open_study_url`` retrieves the study (``medseg.pacs.dicomweb.retrieve_study``) into
``PRED_DIR/studies/study_<hash>/`` when a prediction folder is given (the folder ``medseg predict URL``
filled, so a predicted study is not fetched again), otherwise into a temporary folder that is removed
when the viewer closes (viewing alone keeps no copy of the study).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from medseg.pacs.credentials import read_optional_credentials
from medseg.pacs.dicomweb import STUDIES_FOLDER, make_session, parse_study_url, retrieve_study, study_folder_name
from medseg.review.pacs_sender import PacsReviewSender


@contextmanager
def open_study_url(url: str, pred_dir: str | Path | None, credentials_path: str | Path | None) -> Iterator[Path]:
    """The local study folder of ``url`` while the context lasts.

    Raises:
        PacsError: a malformed URL, or the study cannot be retrieved (the URL and the reason, no credentials).
        ConfigError: an unusable credentials file.
    """
    study = parse_study_url(url)
    credentials = read_optional_credentials(credentials_path)
    with make_session(credentials) as session:
        if pred_dir is not None:
            folder = Path(pred_dir) / STUDIES_FOLDER / study_folder_name(study.study_uid)
            yield retrieve_study(study, folder, session).folder
            return
        with tempfile.TemporaryDirectory(prefix="medseg-view-") as temp:
            yield retrieve_study(study, Path(temp) / study_folder_name(study.study_uid), session).folder


def review_sender(pred_dir: str | Path, target: str, credentials_path: str | Path | None) -> PacsReviewSender:
    """The Review dock's sender for ``medseg view --pred PRED_DIR --send-to TARGET``."""
    return PacsReviewSender(pred_dir, target, read_optional_credentials(credentials_path))
