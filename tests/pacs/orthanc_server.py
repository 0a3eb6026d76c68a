"""A real Orthanc PACS for the tests: started on 127.0.0.1 with a temporary config and free ports.

``OrthancServer`` writes a JSON config into its folder (storage and index there, HTTP and DICOM
ports picked free, remote access off, the DICOMweb plugin at ``/dicom-web/``, HTTP basic
authentication with one registered user, optional DICOM modalities Orthanc may C-STORE to), starts
``Orthanc CONFIG.json`` as a subprocess, waits until ``/system`` answers and stops it on ``stop()``.
Studies are uploaded through the REST API (``POST /instances``), and what Orthanc holds is read back
through it too (studies, series, instances, files). Nothing here is mocked: these are Orthanc's own
HTTP and DICOM servers. Only the standard library is used, so the fixture does not depend on the
client code under test.

Example::

    with OrthancServer(tmp_path / "orthanc", modalities={"MEDSEG": ("MEDSEG", "127.0.0.1", 11112)}) as pacs:
        pacs.upload(files)
        pacs.store_to_modality("MEDSEG", pacs.study_id(study_uid))   # Orthanc -> C-STORE -> the listener
        pacs.series_of_study(study_uid)                              # [{"Modality": "SEG", ...}, ...]
"""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

ORTHANC_BINARY = Path("/usr/sbin/Orthanc")
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
USERNAME = "medseg"
PASSWORD = "orthanc-test-secret"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def orthanc_available() -> bool:
    """True when Debian's ``orthanc`` and ``orthanc-dicomweb`` packages are installed."""
    return ORTHANC_BINARY.is_file() and DICOMWEB_PLUGIN.is_file()


class OrthancError(RuntimeError):
    """Orthanc did not start, or a REST call failed."""


class OrthancServer:
    """One Orthanc process on loopback.

    Args:
        folder: where the config, the storage and Orthanc's log go (created).
        modalities: DICOM peers Orthanc knows, ``{name: (AE title, host, port)}``; more can be added
            while it runs with ``add_modality``.
        aet: Orthanc's own AE title.
        users: HTTP basic-auth users ``{name: password}`` (default: ``USERNAME``/``PASSWORD``);
            an empty mapping turns authentication off.
        binary: the Orthanc executable. plugin: the DICOMweb plugin.
        start_timeout_s: how long to wait for ``/system`` to answer.

    Attributes:
        http_port, dicom_port: the ports picked. url: ``http://127.0.0.1:PORT``.
        dicomweb_url: ``url + "/dicom-web"`` (the DICOMweb root). aet: Orthanc's AE title.
    """

    def __init__(self, folder: Path, *, modalities: Mapping[str, tuple[str, str, int]] | None = None,
                 aet: str = "ORTHANC", users: Mapping[str, str] | None = None, binary: Path = ORTHANC_BINARY,
                 plugin: Path = DICOMWEB_PLUGIN, start_timeout_s: float = 30.0) -> None:
        self.folder = Path(folder)
        self.modalities = dict(modalities or {})
        self.aet = aet
        self.users = dict({USERNAME: PASSWORD} if users is None else users)
        self.binary = Path(binary)
        self.plugin = Path(plugin)
        self.start_timeout_s = start_timeout_s
        self.http_port = free_port()
        self.dicom_port = free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.dicomweb_url = f"{self.url}/dicom-web"
        self.config_path = self.folder / "orthanc.json"
        self.log_path = self.folder / "orthanc.log"
        self._process: subprocess.Popen[bytes] | None = None

    # --- lifetime ------------------------------------------------------------------------

    def config(self) -> dict[str, Any]:
        """The Orthanc configuration this server runs with."""
        storage = str(self.folder / "storage")
        return {
            "Name": "medseg-test",
            "StorageDirectory": storage,
            "IndexDirectory": storage,
            "HttpPort": self.http_port,
            "DicomPort": self.dicom_port,
            "DicomAet": self.aet,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": bool(self.users),
            "RegisteredUsers": self.users,
            "Plugins": [str(self.plugin)],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
            "DicomModalities": {name: list(peer) for name, peer in self.modalities.items()},
            "DicomCheckCalledAet": False,
            "UnknownSopClassAccepted": True,
            "StableAge": 1,
            "HttpTimeout": 30,
            "DicomScuTimeout": 30,
        }

    def start(self) -> OrthancServer:
        """Write the config, start Orthanc and wait until its REST API answers.

        Raises:
            OrthancError: the binary is missing, the process exits, or ``/system`` never answers
                (the message ends with the tail of Orthanc's log).
        """
        if not self.binary.is_file():
            raise OrthancError(f"{self.binary} not found: install Debian's orthanc and orthanc-dicomweb (make setup)")
        self.folder.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(json.dumps(self.config(), indent=2), encoding="utf-8")
        log = self.log_path.open("wb")
        self._process = subprocess.Popen([str(self.binary), str(self.config_path)], stdout=log,
                                         stderr=subprocess.STDOUT, cwd=self.folder)
        log.close()
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise OrthancError(f"Orthanc exited with status {self._process.returncode}:\n{self.log_tail()}")
            try:
                self.get_json("/system")
                return self
            except (OSError, OrthancError):
                time.sleep(0.1)
        self.stop()
        raise OrthancError(f"Orthanc did not answer on {self.url} within {self.start_timeout_s} s:\n{self.log_tail()}")

    def stop(self) -> None:
        """Stop Orthanc (SIGTERM, then SIGKILL after 10 s)."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def __enter__(self) -> OrthancServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of Orthanc's log."""
        try:
            return "\n".join(self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    # --- credentials ---------------------------------------------------------------------

    @property
    def auth(self) -> tuple[str, str] | None:
        """(username, password) of the first registered user, None without authentication."""
        return next(iter(self.users.items()), None)

    def write_credentials(self, path: Path) -> Path:
        """A medseg credentials file (JSON ``{"username", "password"}``, mode 0600) for this server."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        user, password = self.auth or ("", "")
        path.write_text(json.dumps({"username": user, "password": password}), encoding="utf-8")
        path.chmod(0o600)
        return path

    # --- REST ----------------------------------------------------------------------------

    def request(self, method: str, path: str, body: bytes | None = None,
                content_type: str = "application/json") -> bytes:
        """One REST call to ``url + path`` as the registered user; the response body.

        Raises:
            OrthancError: an HTTP error status (with Orthanc's answer).
        """
        request = urllib.request.Request(self.url + path, data=body, method=method)
        if body is not None:
            request.add_header("Content-Type", content_type)
        if self.auth is not None:
            token = base64.b64encode(":".join(self.auth).encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.read()
        except urllib.error.HTTPError as error:
            raise OrthancError(f"{method} {path}: HTTP {error.code} {error.read()[:500]!r}") from error

    def get_json(self, path: str) -> Any:
        """``GET url + path`` parsed as JSON."""
        return json.loads(self.request("GET", path))

    def upload(self, files: Iterable[Path]) -> list[dict[str, Any]]:
        """Store DICOM files through ``POST /instances``; Orthanc's answer per file (``ID``, ``ParentStudy``...)."""
        return [json.loads(self.request("POST", "/instances", Path(file).read_bytes(), "application/dicom"))
                for file in files]

    def add_modality(self, name: str, aet: str, host: str, port: int) -> None:
        """Register (or replace) a DICOM peer Orthanc can C-STORE to, while it runs."""
        self.request("PUT", f"/modalities/{name}", json.dumps({"AET": aet, "Host": host, "Port": port}).encode())
        self.modalities[name] = (aet, host, port)

    def store_to_modality(self, name: str, resources: str | Iterable[str]) -> dict[str, Any]:
        """C-STORE Orthanc resources (ids of studies, series or instances) to a registered modality."""
        ids = [resources] if isinstance(resources, str) else list(resources)
        body = json.dumps({"Resources": ids, "Synchronous": True}).encode()
        return json.loads(self.request("POST", f"/modalities/{name}/store", body))

    # --- what Orthanc holds --------------------------------------------------------------

    def study_id(self, study_uid: str) -> str:
        """Orthanc's id of the study with this StudyInstanceUID.

        Raises:
            OrthancError: Orthanc holds no such study.
        """
        body = json.dumps({"Level": "Study", "Query": {"StudyInstanceUID": study_uid}}).encode()
        found = json.loads(self.request("POST", "/tools/find", body))
        if not found:
            raise OrthancError(f"Orthanc holds no study {study_uid}")
        return str(found[0])

    def study_uids(self) -> list[str]:
        """StudyInstanceUIDs of every study Orthanc holds."""
        return [study["MainDicomTags"]["StudyInstanceUID"] for study in self.get_json("/studies?expand")]

    def series_of_study(self, study_uid: str) -> list[dict[str, Any]]:
        """The study's series: each ``MainDicomTags`` (Modality, SeriesInstanceUID, ...) plus ``ID``
        and ``Instances`` (Orthanc instance ids)."""
        series = self.get_json(f"/studies/{self.study_id(study_uid)}/series")
        return [{**item["MainDicomTags"], "ID": item["ID"], "Instances": item["Instances"]} for item in series]

    def instances(self) -> list[dict[str, Any]]:
        """Every instance Orthanc holds: ``MainDicomTags`` plus ``ID`` and ``ParentSeries``."""
        return [{**item["MainDicomTags"], "ID": item["ID"], "ParentSeries": item["ParentSeries"]}
                for item in self.get_json("/instances?expand")]

    def instance_file(self, instance_id: str) -> bytes:
        """The stored DICOM file of an instance (``GET /instances/ID/file``)."""
        return self.request("GET", f"/instances/{instance_id}/file")

    def download_series(self, series: Mapping[str, Any], folder: Path) -> list[Path]:
        """Write every instance of a ``series_of_study`` entry to ``folder/<n>.dcm``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for number, instance_id in enumerate(series["Instances"]):
            path = folder / f"{number:04d}.dcm"
            path.write_bytes(self.instance_file(instance_id))
            paths.append(path)
        return paths
