"""What the command line decides before any work: the regions it was given (canonical, once
each, with a note) and what it refuses in one line with exit status 2 (roots that cannot work,
region ids that are not valid). No daemon: every command here stops before submitting."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_process import one_error_line, run_cli

from ocr_assets.cli import requested_regions
from ocr_assets.cli_parser import build_parser
from ocr_core.grid import CONUS, DEMO, RegionIdError


def _cli(tmp_path: Path, *args: str, **env: str):
    """The CLI in a fresh process, started in an empty folder (a root taken for a relative
    path would appear there)."""
    cwd = tmp_path / "cwd"
    cwd.mkdir(exist_ok=True)
    return run_cli(cwd, *args, DAGSTER_HOME=str(tmp_path / "home"), **env)


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
    line = one_error_line(_cli(tmp_path, "region", "y2_x1", **{variable: value}))
    assert line.startswith(f"error: {variable}={value!r}") and problem in line
    assert list((tmp_path / "cwd").iterdir()) == []  # no folder named "s3:" or alike
    assert not (tmp_path / "home").exists()  # no instance, no daemon


def test_root_that_is_a_file(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    line = one_error_line(_cli(tmp_path, "demo", OCR_STORAGE_ROOT=str(blocker)))
    assert line == (
        f"error: OCR_STORAGE_ROOT={str(blocker)!r} is a file, not a folder: point "
        "OCR_STORAGE_ROOT at a folder or an s3:// URL"
    )
    line = one_error_line(
        _cli(
            tmp_path,
            "check-inputs",
            OCR_STORAGE_ROOT=str(tmp_path / "out"),
            OCR_INPUT_ROOT=str(blocker),
        )
    )
    assert line.startswith(f"error: OCR_INPUT_ROOT={str(blocker)!r} is a file")


def test_unwritable_roots(tmp_path):
    line = one_error_line(_cli(tmp_path, "run", "--regions", "y2_x1", OCR_STORAGE_ROOT="/sys"))
    assert line.startswith("error: OCR_STORAGE_ROOT='/sys' cannot be written (")
    assert line.endswith("point OCR_STORAGE_ROOT at a writable folder or an s3:// URL")
    # the demo writes its inputs, so an input root it cannot write is refused too
    out = str(tmp_path / "out")
    line = one_error_line(_cli(tmp_path, "demo", OCR_STORAGE_ROOT=out, OCR_INPUT_ROOT="/sys"))
    assert line.startswith("error: OCR_INPUT_ROOT='/sys' cannot be written (")
    assert not (tmp_path / "home").exists()


@pytest.mark.parametrize(
    ("grid", "argv", "regions", "notes"),
    [
        (
            CONUS,
            ["run", "--regions", "y5_x14", "y05_x14", "y14_x5"],
            ["y5_x14", "y14_x5"],
            ["note: y05_x14 is y5_x14", "note: y5_x14 given twice; running it once"],
        ),
        (CONUS, ["region", "y05_x14"], ["y5_x14"], ["note: y05_x14 is y5_x14"]),
        (
            DEMO,
            ["demo", "--regions", "y2_x1", "y2_x1", "y3_x3"],
            ["y2_x1", "y3_x3"],
            ["note: y2_x1 given twice; running it once"],
        ),
        (DEMO, ["region", "y2_x1"], ["y2_x1"], []),
        (DEMO, ["demo"], list(DEMO.valid_region_ids), []),
        (DEMO, ["demo", "--regions"], list(DEMO.valid_region_ids), []),
        (CONUS, ["run", "--all-regions"], list(CONUS.valid_region_ids), []),
    ],
)
def test_requested_regions(grid, argv, regions, notes, capsys):
    assert requested_regions(build_parser().parse_args(argv), grid) == regions
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.splitlines() == notes


def test_requested_regions_refuses_a_region_without_data():
    with pytest.raises(RegionIdError, match=r"region 'y00_x1' \(y0_x1\) holds no data"):
        requested_regions(build_parser().parse_args(["run", "--regions", "y00_x1"]), DEMO)


def test_notes_come_before_any_work(tmp_path):
    """The command prints its notes, then stops at the first problem (here the root)."""
    proc = _cli(tmp_path, "run", "--regions", "y02_x1", "y2_x1", OCR_STORAGE_ROOT="/sys")
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[:2] == [
        "note: y02_x1 is y2_x1",
        "note: y2_x1 given twice; running it once",
    ]
    assert proc.stderr.splitlines()[2].startswith(
        "error: OCR_STORAGE_ROOT='/sys' cannot be written"
    )
