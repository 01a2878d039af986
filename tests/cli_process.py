"""The ``ocr-dagster`` command line in a fresh process, for tests of what it prints and refuses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from processes import PROJECT


def run_cli(
    cwd: Path, *args: str, strip: tuple[str, ...] | str = ("OCR_",), **env: str
) -> subprocess.CompletedProcess:
    """``python -m ocr_assets.cli args`` in ``cwd``, with this environment less the variables
    starting with ``strip``, plus ``env``."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(strip)}
    base["PYTHONPATH"] = str(PROJECT)
    return subprocess.run(
        [sys.executable, "-m", "ocr_assets.cli", *args],
        cwd=cwd,
        env=base | env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    """The one ``error:`` line of a refusal (exit status 2, no traceback)."""
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]
