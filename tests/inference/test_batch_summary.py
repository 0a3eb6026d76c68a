"""``OUT/report.md``: counts, failures, the review order (the worklist's), every case, left-out files, PACS."""

from __future__ import annotations

from pathlib import Path

from medseg.inference.batch_report import build_report, write_report
from medseg.inference.batch_summary import report_markdown
from medseg.review.worklist import load_worklist

CLASSES = ("background", "CSF", "gray matter", "white matter")


def _case(case_id: str, status: str = "ok", flags: tuple[str, ...] = (), uncertainty: float = 0.2,
          **extra: object) -> dict:
    return {"case_id": case_id, "input": f"in/{case_id}.nii.gz", "status": status, "qc_flags": list(flags),
            "class_volumes_ml": {} if status == "failed" else {"CSF": 250.04, "gray matter": 801.26,
                                                                 "white matter": 702.0},
            "timings_s": {"read": 0.5, "predict": 2.25, "write": 0.25},
            "mean_uncertainty_in_structures": uncertainty, **extra}


def _report(cases: list[dict], **extra: object) -> dict:
    report = build_report(input_path="/studies/today", model_dir="/models/brain-tissue-unet", model_sha256="ab" * 32,
                          options={"tta": True, "workers": 1}, entries=cases,
                          ignored=[{"reason": "not a DICOM file or a known image format", "count": 3}],
                          class_names=CLASSES, wall_seconds=12.34)
    return {**report, **extra}


CASES = [
    _case("case_a", flags=("high uncertainty",), uncertainty=0.31),
    _case("case_b"),
    _case("case_c", flags=("volume out of range", "passes disagree"), uncertainty=0.12),
    _case("case_d", status="failed", stage="read",
          reason="not a readable NIfTI file | truncated\n(hint: copy it again)"),
    _case("case_e", status="skipped-complete", flags=("high uncertainty",), uncertainty=0.44),
    _case("case_f", flags=("high uncertainty",), uncertainty=0.31),
]


def _section(page: str, title: str) -> str:
    return page.split(f"## {title}")[1].split("\n## ")[0]


def test_headline_settings_and_failures() -> None:
    page = report_markdown(_report(CASES))
    assert page.splitlines()[0] == ("# medseg predict: 6 cases: 4 predicted, 1 already complete, 1 failed; "
                                    "4 flagged for review")
    assert "`brain-tissue-unet` (folder sha256 abababababab), classes: CSF, gray matter, white matter" in page
    assert "- settings: tta on, workers 1" in page and "- input: `/studies/today`" in page
    assert "3.00 s per predicted scan (predicting 2.25 s)" in page
    failed = _section(page, "Failed (1)")
    # The reason's pipe and line break would break the table: escaped and joined.
    assert ("| case_d | in/case_d.nii.gz | read | not a readable NIfTI file \\| truncated (hint: copy it again) |"
            in failed)
    assert "case_a" not in failed


def test_review_first_lists_flagged_cases_in_the_worklist_order(tmp_path: Path) -> None:
    report = _report(CASES)
    for case in CASES:
        (tmp_path / case["case_id"]).mkdir()
    write_report(tmp_path, report)
    review = _section((tmp_path / "report.md").read_text(), "Review first (4 flagged)")
    rows = [line.split(" | ")[0].lstrip("| ") for line in review.splitlines() if line.startswith("| case_")]
    # Two flags first; then the higher uncertainty; equal ones by case id.
    assert rows == ["case_c", "case_e", "case_a", "case_f"]
    worklist = [item.case_id for item in load_worklist(tmp_path) if item.qc_flags and item.status != "failed"]
    assert rows == worklist
    assert "| case_c | in/case_c.nii.gz | 0.120 | volume out of range; passes disagree |" in review


def test_every_case_with_its_volumes_and_the_left_out_files() -> None:
    page = report_markdown(_report(CASES))
    table = _section(page, "All cases")
    assert ("| case | input | status | CSF (mL) | gray matter (mL) | white matter (mL) | mean uncertainty | QC flags "
            "| seconds |") in table
    assert "| case_b | in/case_b.nii.gz | ok | 250.0 | 801.3 | 702.0 | 0.200 |  | 3.0 |" in table
    assert "| case_c | in/case_c.nii.gz | ok | 250.0 | 801.3 | 702.0 | 0.120 | 2 | 3.0 |" in table
    assert "| case_d | in/case_d.nii.gz | failed |  |  |  | 0.200 |  | 3.0 |" in table
    assert "| 3 | not a DICOM file or a known image format |" in _section(page, "Not scans (left out)")
    assert "## PACS studies" not in page and "## Queue" not in page


def test_no_cases_pacs_studies_and_a_node_queue() -> None:
    pacs = {"studies": [{"url": "http://127.0.0.1:8042/dicom-web/studies/1.2.3", "study_uid": "1.2.3", "status": "ok",
                         "case_ids": ["case_a"], "sent_instances": 1, "round_trip_s": 4.26},
                        {"url": "http://127.0.0.1:8042/dicom-web/studies/9.9", "status": "failed",
                         "case_ids": [], "reason": "HTTP 404 <html>"}]}
    page = report_markdown(_report([], pacs=pacs, queue={"received": 2, "sent": 5}))
    assert page.splitlines()[0] == ("# medseg predict: 0 cases: 0 predicted, 0 already complete, 0 failed; "
                                    "0 flagged for review")
    assert "No scans were found." in page
    studies = _section(page, "PACS studies")
    assert "| 1.2.3 | ok | 1 | 1 | 4.3 |  |" in studies
    assert "| http://127.0.0.1:8042/dicom-web/studies/9.9 | failed | 0 |  |  | HTTP 404 &lt;html&gt; |" in studies
    assert "| received | 2 |" in _section(page, "Queue") and "| sent | 5 |" in _section(page, "Queue")
