"""What the command line refuses before any work, in one line and with exit status 2: storage
and input roots that cannot work. No daemon: every command here stops before submitting."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]


def _cli(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """The CLI in a fresh process, started in an empty folder (a root taken for a relative
    path would appear there)."""
    cwd = tmp_path / "cwd"
    cwd.mkdir(exist_ok=True)
    base = {k: v for k, v in os.environ.items() if not k.startswith("OCR_")}
    base |= {"PYTHONPATH": str(PROJECT), "DAGSTER_HOME": str(tmp_path / "home")}
    return subprocess.run(
        [sys.executable, "-m", "ocr_assets.cli", *args],
        cwd=cwd,
        env=base | env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _one_error_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


@pytest.mark.parametrize("variable", ["OCR_STORAGE_ROOT", "OCR_INPUT_ROOT"])
@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("s3://", "names no bucket"),
        ("s3:/b", "is a malformed S3 URL"),
        ("S3://bucket", "lower-case s3://"),
        ("gs://bucket", "gs:// is not supported"),
        ("s3://My_Bucket", "is not an S3 bucket name"),
    ],
)
def test_malformed_root_is_one_line_and_nothing_is_written(tmp_path, variable, value, problem):
    line = _one_error_line(_cli(tmp_path, "region", "y2_x1", **{variable: value}))
    assert line.startswith(f"error: {variable}={value!r}") and problem in line
    assert list((tmp_path / "cwd").iterdir()) == []  # no folder named "s3:" or alike
    assert not (tmp_path / "home").exists()  # no instance, no daemon


def test_root_that_is_a_file(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    line = _one_error_line(_cli(tmp_path, "demo", OCR_STORAGE_ROOT=str(blocker)))
    assert line == (
        f"error: OCR_STORAGE_ROOT={str(blocker)!r} is a file, not a folder: point "
        "OCR_STORAGE_ROOT at a folder or an s3:// URL"
    )
    line = _one_error_line(
        _cli(
            tmp_path,
            "check-inputs",
            OCR_STORAGE_ROOT=str(tmp_path / "out"),
            OCR_INPUT_ROOT=str(blocker),
        )
    )
    assert line.startswith(f"error: OCR_INPUT_ROOT={str(blocker)!r} is a file")


def test_unwritable_roots(tmp_path):
    line = _one_error_line(_cli(tmp_path, "run", "--regions", "y2_x1", OCR_STORAGE_ROOT="/sys"))
    assert line.startswith("error: OCR_STORAGE_ROOT='/sys' cannot be written (")
    assert line.endswith("point OCR_STORAGE_ROOT at a writable folder or an s3:// URL")
    # the demo writes its inputs, so an input root it cannot write is refused too
    out = str(tmp_path / "out")
    line = _one_error_line(_cli(tmp_path, "demo", OCR_STORAGE_ROOT=out, OCR_INPUT_ROOT="/sys"))
    assert line.startswith("error: OCR_INPUT_ROOT='/sys' cannot be written (")
    assert not (tmp_path / "home").exists()
