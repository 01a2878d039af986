"""Processes the tests start: the project folder they run in, a free loopback port for a
server, and stopping a process that runs in its own session with everything it started."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
from pathlib import Path

LOOPBACK = "127.0.0.1"
PROJECT = Path(__file__).resolve().parents[1]  # the repository root


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def stop_group(proc: subprocess.Popen, timeout: float = 60) -> None:
    """SIGTERM to the process's group, SIGKILL after ``timeout``; then SIGKILL to whatever of
    the group is left (run workers, code servers), so nothing outlives the test."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
