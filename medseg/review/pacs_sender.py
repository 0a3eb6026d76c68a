"""Sending a corrected DICOM-SEG back to the PACS study its case came from (the Review dock's ``sender``).

A ``medseg predict`` of study URLs records, in ``OUT/report.json``'s ``pacs`` section, the study of
every case (``pacs.cases``: case id -> StudyInstanceUID; ``medseg.inference.pacs_batch``).
``PacsReviewSender(out_dir, target, credentials)`` is a ``medseg.review.corrected_seg.Sender``: called
with ``OUT/<case_id>/seg_reviewed.dcm``, it looks the case up there and stores the file into that study
through the target's sender (``medseg.pacs.senders``: STOW-RS for a DICOMweb root). A case that did
not come from a PACS is not sent (a ``PacsError`` says so; the file stays in its case folder).
"""

from __future__ import annotations

import json
from pathlib import Path

from medseg.inference.batch_report import REPORT_NAME
from medseg.pacs.credentials import Credentials
from medseg.pacs.dicomweb import PacsError
from medseg.pacs.senders import Sender, build_sender


def case_studies(out_dir: str | Path) -> dict[str, str]:
    """case id -> StudyInstanceUID of the cases of ``out_dir`` that came from a PACS ({} when none did)."""
    try:
        report = json.loads((Path(out_dir) / REPORT_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    cases = (report.get("pacs") or {}).get("cases") if isinstance(report, dict) else None
    return {str(k): str(v) for k, v in cases.items()} if isinstance(cases, dict) else {}


class PacsReviewSender:
    """Stores corrected DICOM-SEGs of a prediction folder into their PACS studies.

    Args:
        out_dir: the ``medseg predict`` output folder under review.
        target: where to send (``--send-to``: a DICOMweb root).
        credentials: for that server, or None.
    """

    def __init__(self, out_dir: str | Path, target: str, credentials: Credentials | None = None) -> None:
        self.out_dir = Path(out_dir)
        self.sender: Sender = build_sender(target, credentials)
        self.target = self.sender.target
        self.sent: list[tuple[str, str]] = []  # (case id, StudyInstanceUID), in order

    def __call__(self, path: Path) -> None:
        """Send ``OUT/<case_id>/<file>.dcm`` into its case's study.

        Raises:
            PacsError: the case did not come from a PACS, or the server refused or cannot be reached.
        """
        case_id = Path(path).parent.name
        study_uid = case_studies(self.out_dir).get(case_id)
        if study_uid is None:
            raise PacsError(self.target, f"case {case_id} did not come from a PACS study; not sent "
                            "(the file stays in its case folder)")
        self.sender.send([Path(path)], study_uid)
        self.sent.append((case_id, study_uid))
