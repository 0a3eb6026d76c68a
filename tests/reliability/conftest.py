"""Reliability suite fixtures: a per-test time limit (no test may hang), one torch thread, helper imports."""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

TESTS = Path(__file__).resolve().parents[1]
# The tiny model and data-set builders of the inference and training tests are reused here.
for folder in (TESTS / "inference", TESTS / "training"):
    if str(folder) not in sys.path:
        sys.path.append(str(folder))

DEFAULT_LIMIT_S = 120  # pytest-timeout is not installed: SIGALRM turns a hang into a failure


class HangError(Exception):
    """A test ran past its time limit."""


@pytest.fixture(autouse=True)
def _time_limit(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test that runs longer than its ``@pytest.mark.limit(seconds)`` (default 120 s)."""
    marker = request.node.get_closest_marker("limit")
    seconds = int(marker.args[0]) if marker else DEFAULT_LIMIT_S

    def _expired(signum: int, frame: object) -> None:
        raise HangError(f"{request.node.nodeid} ran past its {seconds} s limit (a hang?)")

    previous = signal.signal(signal.SIGALRM, _expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    """Two shared cores: one torch thread per process."""
    torch.set_num_threads(1)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "limit(seconds): per-test time limit of the reliability suite")
    config.addinivalue_line("markers", "soak: long load test (minutes); run with -m soak")
