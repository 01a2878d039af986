"""The user-facing commands: the demo runner and a one-partition rerun with the dagster CLI."""

import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from ocr_core import raster_store
from ocr_core.storage import Storage

PROJECT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("cli")
    (base / "home").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCR_")}
    env |= {"OCR_STORAGE_ROOT": str(base / "root"), "DAGSTER_HOME": str(base / "home")}
    return env


@pytest.fixture(scope="module")
def demo_output(cli_env) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "ocr_assets.cli", "demo", "--regions", "y2_x1", "y2_x2"],
        cwd=PROJECT,
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_demo_command_reports_where_outputs_are(demo_output, cli_env):
    root = cli_env["OCR_STORAGE_ROOT"]
    assert f"risk raster (icechunk): {root}/output/fire-risk/tensor/qa/ocr.icechunk" in demo_output
    assert "wrote region_id (y2_x1)" in demo_output and "wrote region_id (y2_x2)" in demo_output
    assert "2 of 12 valid regions committed" in demo_output
    assert "y2_x1.parquet" in demo_output and "./dev ui" in demo_output
    vector = f"{root}/output/fire-risk/vector/qa"
    for line in (
        f"consolidated buildings: {vector}/geoparquet/consolidated-buildings.parquet",
        f"partitioned buildings: {vector}/geoparquet/buildings.parquet",
        "summary stats counties:",
        "summary stats nation:",
        f"analysis files: {vector}/region-analysis/ (15 files",
        f"PMTiles regions: {vector}/pmtiles/regions.pmtiles",
        f"PMTiles buildings: {vector}/pmtiles/buildings.pmtiles",
        f"PMTiles building_centroids: {vector}/pmtiles/building_centroids.pmtiles",
        f"raster pyramid (zarr v3): {root}/output/fire-risk/pyramid/qa/pyramid.zarr",
    ):
        assert line in demo_output, line


def test_rerun_one_partition_from_the_dagster_cli(demo_output, cli_env):
    storage = Storage(cli_env["OCR_STORAGE_ROOT"])
    before = raster_store.committed_regions(storage)
    table_before = pq.read_table(storage.region_geoparquet_uri("y2_x1"))
    proc = subprocess.run(
        [
            BIN / "dagster",
            "asset",
            "materialize",
            "-m",
            "ocr_assets.definitions",
            "--select",
            "region_risk,region_buildings",
            "--partition",
            "y2_x1",
        ],
        cwd=PROJECT,
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    after = raster_store.committed_regions(storage)
    assert after["y2_x1"] != before["y2_x1"] and after["y2_x2"] == before["y2_x2"]
    assert pq.read_table(storage.region_geoparquet_uri("y2_x1")).equals(table_before)
    folder = Path(storage.region_geoparquet_dir)
    assert sorted(p.name for p in folder.iterdir()) == ["y2_x1.parquet", "y2_x2.parquet"]


def test_unknown_region_is_refused_before_any_work(cli_env, tmp_path):
    env = cli_env | {"OCR_STORAGE_ROOT": str(tmp_path / "root")}
    proc = subprocess.run(
        [sys.executable, "-m", "ocr_assets.cli", "demo", "--regions", "y0_x1"],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "region 'y0_x1' holds no data on the demo grid" in proc.stderr
    assert not (tmp_path / "root").exists()
