"""Run `medseg` commands in child processes that can be killed with SIGKILL at chosen moments.

The children come from a multiprocessing fork server that has imported torch, MONAI and the
medseg CLI once, so each `medseg train` / `medseg predict` starts in milliseconds instead of
the ~10 s a fresh interpreter needs on a shared two-core machine. The child runs the real
entry point, ``medseg_cli.main.main(argv)``, with its output sent to a log file.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from multiprocessing.context import ForkServerContext
from multiprocessing.process import BaseProcess
from pathlib import Path

PRELOAD = ["torch", "monai", "medseg_cli.main", "medseg.training.loop", "medseg.inference.batch",
           "medseg.inference.predictor"]
_CONTEXT: list[ForkServerContext] = []


def context() -> ForkServerContext:
    """The shared fork-server context (started on first use)."""
    if not _CONTEXT:
        forkserver = multiprocessing.get_context("forkserver")
        forkserver.set_forkserver_preload(PRELOAD)
        _CONTEXT.append(forkserver)
    return _CONTEXT[0]


def _cli_child(argv: Sequence[str], log: str) -> None:
    """Child body: one torch thread, output to ``log``, then the CLI's own exit status."""
    import torch

    handle = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(handle, 1)
    os.dup2(handle, 2)
    sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
    sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)
    torch.set_num_threads(1)
    from medseg_cli.main import main

    status = main(list(argv))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def start_cli(argv: Sequence[str], log: Path) -> BaseProcess:
    """Start ``medseg ARGV`` in a child process (output appended to ``log``)."""
    # Not daemonic: `predict --workers N` starts worker processes of its own.
    process = context().Process(target=_cli_child, args=(list(argv), str(log)))
    process.start()
    return process


def kill(process: BaseProcess) -> None:
    """SIGKILL the child and reap it."""
    if process.is_alive():
        os.kill(process.pid, signal.SIGKILL)
    process.join(30)


def kill_when(process: BaseProcess, condition: Callable[[], bool], timeout_s: float, poll_s: float = 0.0) -> bool:
    """SIGKILL ``process`` as soon as ``condition()`` holds; False when the process ended or time ran out first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            os.kill(process.pid, signal.SIGKILL)
            process.join(30)
            return True
        if not process.is_alive():
            return False
        if poll_s:
            time.sleep(poll_s)
    kill(process)
    return False


def kill_after(process: BaseProcess, seconds: float) -> bool:
    """SIGKILL ``process`` after ``seconds``; False when it had already ended."""
    process.join(seconds)
    if not process.is_alive():
        return False
    kill(process)
    return True


def finish(process: BaseProcess, timeout_s: float) -> int:
    """Wait for the child; its exit status."""
    process.join(timeout_s)
    if process.is_alive():
        kill(process)
        raise AssertionError(f"the child ran past {timeout_s} s")
    return int(process.exitcode)
