"""DICOMweb, the client side: a study URL in, a local study folder out; DICOM files back (STOW-RS).

* ``parse_study_url``: ``http(s)://HOST[:PORT]/PREFIX/studies/<StudyInstanceUID>`` -> the DICOMweb
  root (``http(s)://HOST[:PORT]/PREFIX``) and the StudyInstanceUID. URLs carrying a user name or
  password are refused: credentials come from a file (``medseg.pacs.credentials``), so they never
  reach a shell history, a log or ``report.json``.
* ``retrieve_study``: WADO-RS retrieval of every instance of the study (``dicomweb-client``'s
  ``iter_study``, streamed, in the transfer syntax the PACS stored), written as
  ``FOLDER/series_<hash>/<SOPInstanceUID>.dcm``. Folder names come from hashes of the UIDs, never from
  patient data; the study is written into a hidden temporary folder first and moved into place when
  complete, so a half-retrieved study never looks like a study. ``retrieved.json`` (UIDs and counts, no
  patient data) marks a complete retrieval; a later run reuses the folder (delete it to fetch again).
* ``store_files``: STOW-RS of DICOM files into one study (``POST ROOT/studies/<UID>``); the PACS's
  answer is checked for failed instances.

Every failure is a ``PacsError`` naming the URL (never the credentials) and the reason (HTTP status
with what it usually means, no connection, an empty study, an answer that is not DICOM).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pydicom
import requests
from pydicom.errors import InvalidDicomError

from medseg.errors import MedsegError
from medseg.io.atomic import atomic_write_text
from medseg.pacs.credentials import Credentials

RETRIEVED_RECORD = "retrieved.json"
STUDIES_FOLDER = "studies"  # where retrieved studies go inside a prediction output folder (OUT/studies/)
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_HTTP_MEANING = {
    400: "the server refused the request as malformed",
    401: "the server wants credentials, or refused them (check --credentials)",
    403: "the credentials may not do this (forbidden)",
    404: "no such study or DICOMweb root",
    409: "the server refused the objects (conflict)",
    413: "the objects are too large for the server",
    415: "the server does not accept this media type",
}


class PacsError(MedsegError):
    """A PACS could not be reached, refused a request or answered something unusable.

    Args:
        url: the URL at fault (never with credentials).
        reason: what went wrong, in one sentence.
    """

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"{url}: {reason}")


@dataclass(frozen=True)
class StudyURL:
    """A study on a DICOMweb server.

    Attributes:
        root: the DICOMweb root (``http://host:8042/dicom-web``), no trailing slash.
        study_uid: the StudyInstanceUID.
    """

    root: str
    study_uid: str

    @property
    def url(self) -> str:
        """``ROOT/studies/<UID>``."""
        return f"{self.root}/studies/{self.study_uid}"


@dataclass(frozen=True)
class RetrievedStudy:
    """A study retrieved into a local folder.

    Attributes:
        study: where it came from.
        folder: the local study folder (one subfolder per series).
        series_uids: the SeriesInstanceUIDs retrieved, sorted.
        instances: how many instances were written.
        reused: True when an earlier complete retrieval was reused.
    """

    study: StudyURL
    folder: Path
    series_uids: tuple[str, ...]
    instances: int
    reused: bool = False


def is_dicomweb_url(text: str | Path) -> bool:
    """True for text that starts like an http(s) URL (a path never does)."""
    return str(text).lower().startswith(("http://", "https://"))


def check_root_url(text: str) -> str:
    """A DICOMweb root URL (``--send-to``) without trailing slash.

    Raises:
        PacsError: not http(s), with a user name or password, a query or a fragment.
    """
    parts = urlsplit(str(text))
    try:
        shown = _shown(parts)
    except ValueError:  # a port that is not a number
        raise PacsError(f"{parts.scheme}://{parts.hostname or ''}", "not a valid URL (the port?)") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PacsError(shown, "not an http(s) URL of a DICOMweb server")
    if parts.username is not None or parts.password is not None:
        raise PacsError(shown, "the URL carries credentials; put them in a file and give --credentials FILE")
    if parts.query or parts.fragment:
        raise PacsError(shown, "a DICOMweb root URL takes no query (?) or fragment (#)")
    return str(text).rstrip("/")


def parse_study_url(text: str) -> StudyURL:
    """Split ``http(s)://HOST/PREFIX/studies/<StudyInstanceUID>`` into root and UID.

    Raises:
        PacsError: not such a URL (the message says what a study URL looks like).
    """
    root = check_root_url(text)
    head, separator, uid = root.rpartition("/studies/")
    if not separator or not _UID.match(uid) or len(uid) > 64:
        raise PacsError(_shown(urlsplit(root)), "not a study URL: expected http(s)://HOST/.../studies/<StudyInstanceUID>")
    return StudyURL(root=head, study_uid=uid)


def make_session(credentials: Credentials | None) -> requests.Session:
    """A requests session that authenticates with ``credentials`` (basic or bearer), or anonymously."""
    session = requests.Session()
    if credentials is not None and credentials.token:
        session.headers["Authorization"] = f"Bearer {credentials.token}"
    elif credentials is not None and credentials.username:
        session.auth = (credentials.username, credentials.password)
    return session


def study_folder_name(study_uid: str) -> str:
    """The local folder name of a study: a hash of its UID (``study_<12 hex>``)."""
    return f"study_{_short_hash(study_uid)}"


def retrieve_study(study: StudyURL, folder: str | Path, session: requests.Session, *,
                   timeout_s: float = 60.0) -> RetrievedStudy:
    """Retrieve every instance of ``study`` into ``folder`` (WADO-RS), or reuse a complete earlier retrieval.

    Args:
        study: the study URL.
        folder: the local study folder to create (its parent must be writable).
        session: from ``make_session``.
        timeout_s: seconds to wait for the server's answers (connect and each read).

    Returns:
        What was retrieved.

    Raises:
        PacsError: the server cannot be reached, refuses (401, 404, ...), the study is empty or the
            answer is not DICOM. Nothing is left at ``folder`` then.
    """
    folder = Path(folder)
    reused = _read_record(folder, study)
    if reused is not None:
        return reused
    folder.parent.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
    try:
        series: set[str] = set()
        count = 0
        client = _client(study.root, session, timeout_s)
        with _calling(study.url, "retrieve"):
            for dataset in client.iter_study(study.study_uid, media_types=(("application/dicom", "*"),)):
                series_uid = str(dataset.get("SeriesInstanceUID", "")) or "unknown"
                sop_uid = str(dataset.get("SOPInstanceUID", "")) or f"instance-{count}"
                target = temp / f"series_{_short_hash(series_uid)}" / f"{_safe_uid(sop_uid)}.dcm"
                target.parent.mkdir(exist_ok=True)
                dataset.save_as(target, enforce_file_format=True)
                series.add(series_uid)
                count += 1
        if count == 0:
            raise PacsError(study.url, "the study holds no instances")
        record = {"study_uid": study.study_uid, "root": study.root, "series_uids": sorted(series), "instances": count}
        atomic_write_text(temp / RETRIEVED_RECORD, json.dumps(record, indent=2) + "\n")
        if folder.exists():
            shutil.rmtree(folder)  # an incomplete folder from elsewhere: the record was missing
        temp.replace(folder)
    finally:
        if temp.exists():
            shutil.rmtree(temp, ignore_errors=True)
    return RetrievedStudy(study, folder, tuple(sorted(series)), count)


def store_files(paths: Sequence[str | Path], root: str, study_uid: str, session: requests.Session, *,
                timeout_s: float = 60.0) -> int:
    """STOW-RS the DICOM files into study ``study_uid`` at the DICOMweb ``root``.

    Returns:
        The number of instances stored.

    Raises:
        PacsError: a file belongs to another study, the server cannot be reached or refuses,
            or its answer lists failed instances (with their failure reasons).
    """
    url = f"{check_root_url(root)}/studies/{study_uid}"
    datasets = []
    for path in paths:
        try:
            dataset = pydicom.dcmread(path)
        except (OSError, InvalidDicomError) as error:
            reason = f"{Path(path).name} cannot be read as DICOM ({type(error).__name__}); not sent"
            raise PacsError(url, reason) from None
        if str(dataset.get("StudyInstanceUID", "")) != study_uid:
            raise PacsError(url, f"{Path(path).name} belongs to another study; not sent")
        datasets.append(dataset)
    if not datasets:
        return 0
    client = _client(check_root_url(root), session, timeout_s)
    with _calling(url, "store"):
        answer = client.store_instances(datasets, study_instance_uid=study_uid)
    failed = answer.get("FailedSOPSequence") if answer is not None else None
    if failed:
        reasons = sorted({f"0x{int(item.get('FailureReason', 0)):04X}" for item in failed})
        raise PacsError(url, f"the server refused {len(failed)} of {len(datasets)} instance(s) "
                        f"(failure reason {', '.join(reasons)})")
    return len(datasets)


def _client(root: str, session: requests.Session, timeout_s: float):  # -> DICOMwebClient (lazy import)
    from dicomweb_client import DICOMwebClient

    return DICOMwebClient(url=root, session=session, timeout=timeout_s)


@contextmanager
def _calling(url: str, action: str) -> Iterator[None]:
    """Turn what requests and dicomweb-client raise into a PacsError naming ``url`` and the reason."""
    try:
        yield
    except PacsError:
        raise
    except requests.HTTPError as error:
        status = error.response.status_code if error.response is not None else 0
        meaning = _HTTP_MEANING.get(status, "the server could not " + action)
        raise PacsError(url, f"HTTP {status}: {meaning}") from None
    except requests.Timeout:
        raise PacsError(url, f"no answer in time ({action})") from None
    except requests.ConnectionError:
        raise PacsError(url, "cannot connect (is the server running and the host/port right?)") from None
    except requests.RequestException as error:
        raise PacsError(url, f"the {action} request failed ({type(error).__name__})") from None
    except (ValueError, InvalidDicomError) as error:
        # dicomweb-client's and pydicom's messages may quote what the server sent: the type only.
        raise PacsError(url, f"the server's answer is not valid DICOMweb ({type(error).__name__})") from None


def _read_record(folder: Path, study: StudyURL) -> RetrievedStudy | None:
    """An earlier complete retrieval of the same study in ``folder``, or None."""
    try:
        record = json.loads((folder / RETRIEVED_RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("study_uid") != study.study_uid:
        return None
    return RetrievedStudy(study, folder, tuple(record.get("series_uids", ())), int(record.get("instances", 0)),
                          reused=True)


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _shown(parts) -> str:  # noqa: ANN001 - a urllib SplitResult
    """A URL as it may be printed: no user name, password, query or fragment."""
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def _safe_uid(uid: str) -> str:
    """A UID as a file name (anything but digits and dots becomes ``_``)."""
    return re.sub(r"[^0-9.]", "_", uid)[:64] or "instance"
