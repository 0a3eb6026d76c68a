"""Fixtures for the PACS tests: a real Orthanc on loopback (``orthanc_server.OrthancServer``).

``orthanc`` is one started Orthanc per test (empty storage, free ports, the DICOMweb plugin, basic
auth with ``orthanc_server.USERNAME``); ``orthanc_factory(**options)`` starts more, with options such as
``modalities={"MEDSEG": ("MEDSEG", "127.0.0.1", port)}``, and stops them at teardown.
On a Debian machine without Orthanc the tests fail with the fix (``make setup``); elsewhere they skip.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from orthanc_server import OrthancServer, orthanc_available  # noqa: E402


def _require_orthanc() -> None:
    if orthanc_available():
        return
    if Path("/etc/debian_version").is_file():
        pytest.fail("Orthanc is not installed: run `make setup` (scripts/install_system_deps.sh installs "
                    "Debian's orthanc and orthanc-dicomweb)", pytrace=False)
    pytest.skip("Orthanc from Debian's packages is needed (not a Debian system)")


@pytest.fixture
def orthanc_factory(tmp_path: Path) -> Iterator[Callable[..., OrthancServer]]:
    """``orthanc_factory(**OrthancServer options)`` -> a started Orthanc in ``tmp_path``; all stopped at teardown."""
    _require_orthanc()
    servers: list[OrthancServer] = []

    def start(**options) -> OrthancServer:
        server = OrthancServer(tmp_path / f"orthanc-{len(servers)}", **options)
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def orthanc(orthanc_factory: Callable[..., OrthancServer]) -> OrthancServer:
    """A started Orthanc with empty storage (stopped at teardown)."""
    return orthanc_factory()
