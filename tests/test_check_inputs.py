"""`ocr-dagster check-inputs` and the input assets' checks, on the generated demo inputs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pytest
from input_edits import rewrite_dataset
from processes import PROJECT

from ocr_assets.inputs import INPUT_DATASETS, demo_inputs, input_checks
from ocr_core.catalog import DATASETS, InputCatalog
from ocr_core.grid import DEMO
from ocr_core.input_checks import check_inputs
from ocr_core.schema import RILEY_270M, WIND_DISTRIBUTION
from ocr_core.storage import Storage
from ocr_resources import InputCatalogResource

WIND = WIND_DISTRIBUTION
RILEY_270 = RILEY_270M["2011"]


def _check_inputs_cli(inputs_root: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCR_")}
    env |= {"OCR_INPUT_ROOT": str(inputs_root), "OCR_STORAGE_ROOT": str(tmp_path / "out")}
    return subprocess.run(
        [sys.executable, "-m", "ocr_assets.cli", "check-inputs"],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_demo_inputs_pass_with_one_row_per_dataset(demo_inputs_root, tmp_path):
    proc = _check_inputs_cli(demo_inputs_root, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = [line for line in proc.stdout.splitlines() if " | " in line]
    assert [row.split(" | ")[0] for row in rows] == [f"ok  {name}" for name in DATASETS]
    scott = rows[0].split(" | ")
    assert scott[1] == str(demo_inputs_root / DATASETS[scott[0][4:]].prefix)
    assert scott[2] == "CRS EPSG:4326 ('spatial_ref' variable attr 'crs_wkt')"
    assert "on the demo grid: first pixel at grid row -171, col -171" in scott[3]
    assert scott[4] == "variables BP,CRPS,RPS" and scott[5] == "dtype float32"
    assert scott[6] == "chunks 600×450" and "(y1_x0)" in scott[7]
    assert "CRPS [" in scott[8]
    riley = next(r for r in rows if RILEY_270 in r)
    assert "EPSG:5070, 270 m pixels, y ascending" in riley
    assert "grid_mapping -> 'spatial_ref'" in riley
    wind = next(r for r in rows if WIND in r)
    assert "wind_direction_sum [1, 1]" in wind and "chunks 600×450×8" in wind
    assert "12 datasets, 0 problem(s)" in proc.stdout


def test_a_store_without_crs_fails_naming_the_dataset_and_the_fix(inputs_copy, tmp_path):
    def strip_crs(ds):
        ds = ds.drop_vars(["spatial_ref", "crs"]).drop_attrs(deep=False)
        for axis in ("latitude", "longitude"):
            ds[axis].attrs.pop("crs")
        return ds

    rewrite_dataset(inputs_copy, WIND, strip_crs)
    proc = _check_inputs_cli(inputs_copy, tmp_path)
    assert proc.returncode == 1
    problems = [line for line in proc.stderr.splitlines() if line.startswith("problem: ")]
    assert len(problems) == 1, proc.stderr
    assert problems[0].startswith(f"problem: {WIND}: input dataset {WIND!r}")
    assert "has no CRS" in problems[0] and "Fix: write the CRS" in problems[0]
    assert f"BAD {WIND}" in proc.stdout
    assert "12 datasets, 1 problem(s)" in proc.stderr


def test_values_outside_the_schema_and_bad_wind_sums_are_problems(inputs_copy):
    def scale(ds):
        return ds.assign(BP=ds.BP * 20)  # a percentage written as a probability

    def unnormalised(ds):
        w = ds.wind_direction_distribution
        return ds.assign(wind_direction_distribution=w * 0.9)

    rewrite_dataset(inputs_copy, RILEY_270, scale)
    rewrite_dataset(inputs_copy, WIND, unnormalised)
    reports = {
        r.name: r
        for r in check_inputs(InputCatalog(Storage(str(inputs_copy))), DEMO, (RILEY_270, WIND))
    }
    (riley,) = reports[RILEY_270].problems
    assert "BP spans [" in riley.what and "outside the schema's [0, 1]" in riley.what
    (wind,) = reports[WIND].problems
    assert "summing to neither 0 nor 1 (± 1e-05)" in wind.what
    assert reports[WIND].ranges["wind_direction_sum"] == pytest.approx((0.9, 0.9), abs=1e-6)


def test_asset_checks_pass_after_demo_inputs_materialize(tmp_path):
    result = dg.materialize(
        [demo_inputs, input_checks],
        resources={"catalog": InputCatalogResource(root=str(tmp_path))},
        run_config={"ops": {"demo_inputs": {"config": {"n_buildings": 2_000}}}},
    )
    assert result.success
    evaluations = {e.asset_key.to_user_string(): e for e in result.get_asset_check_evaluations()}
    assert set(evaluations) == set(INPUT_DATASETS)
    assert all(e.passed for e in evaluations.values())
    riley = _values(evaluations["riley_2025"])
    assert riley[f"{RILEY_270} crs"] == "EPSG:5070"
    assert "grid_mapping" in riley[f"{RILEY_270} crs_found_in"]
    assert riley["riley-et-al-2025-2011-30m-4326 grid_offset_px"] == [-171, -171]
    low, high = riley[f"{RILEY_270} BP_range"]
    assert 0 <= low < high <= 1
    buildings = _values(evaluations["tagged_buildings"])
    assert buildings["conus-overture-region-id-tagged-buildings rows"] == 2_000
    assert buildings["conus-overture-region-id-tagged-buildings crs"] == "EPSG:4326"
    census = _values(evaluations["census_polygons"])
    assert census["us-census-counties crs"] == "EPSG:4269"
    scott = _values(evaluations["scott_2024"])
    assert np.isclose(scott["scott-et-al-2024-30m-4326 pixel_size"][0], DEMO.pixel_size)


def _values(evaluation: dg.AssetCheckEvaluation) -> dict[str, Any]:
    """A check's metadata as plain values (their shape is the check's, not the type's)."""
    return {name: entry.value for name, entry in evaluation.metadata.items()}
