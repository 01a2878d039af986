"""Bad input fails fast with a clear error and writes no output."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import numpy as np
import pytest
from input_edits import rewrite_dataset, run_region_step, web_mercator

from ocr_core.catalog import InputCatalog
from ocr_core.grid import DEMO, RegionIdError
from ocr_core.process_region import run_region_risk
from ocr_core.schema import SCOTT_2024 as SCOTT
from ocr_core.schema import WIND_DISTRIBUTION as WIND
from ocr_core.storage import Storage


def _failure_message(result) -> str:
    return "\n".join(
        e.event_specific_data.error.message
        for e in result.all_events
        if e.event_type_value == "STEP_FAILURE"
    )


def _no_outputs(root: Path) -> bool:
    return not (root / "output").exists() and not (root / "intermediate").exists()


def run_one(inputs_root: Path, out_root: Path, region: str = "y2_x1"):
    return run_region_step(inputs_root, out_root, region)


def test_missing_input_dataset_is_named_and_not_retried(tmp_path):
    out = tmp_path / "out"
    result = run_one(tmp_path / "empty-inputs", out)
    assert not result.success
    msg = _failure_message(result)
    assert "input dataset" in msg and "could not be opened" in msg
    assert "OCR_INPUT_ROOT" in msg
    retries = [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert retries == []  # bad input cannot be fixed by retrying
    assert _no_outputs(out)


def assert_bad_input_named(inputs_copy, tmp_path, dataset: str, mutate, message: str) -> None:
    """The region step on inputs with ``dataset`` mutated fails naming ``message``, and
    writes nothing."""
    rewrite_dataset(inputs_copy, dataset, mutate)
    out = tmp_path / "out"
    result = run_one(inputs_copy, out)
    assert message in _failure_message(result)
    assert _no_outputs(out)


def test_wrong_crs_is_named(inputs_copy, tmp_path):
    message = (
        "has CRS EPSG:3857 (found in 'spatial_ref' variable attr 'crs_wkt'), but the "
        "catalog expects EPSG:4326"
    )
    assert_bad_input_named(inputs_copy, tmp_path, SCOTT, web_mercator, message)


def test_missing_variable_is_named(inputs_copy, tmp_path):
    assert_bad_input_named(
        inputs_copy, tmp_path, SCOTT, lambda ds: ds.drop_vars("CRPS"), "lacks variable(s) ['CRPS']"
    )


def test_input_off_the_grid_is_named(inputs_copy, tmp_path):
    def shift(ds):
        return ds.assign_coords(longitude=ds.longitude + DEMO.pixel_size * 0.4)

    assert_bad_input_named(
        inputs_copy, tmp_path, WIND, shift, "offset from the demo grid by a fraction of a pixel"
    )


def test_negative_wind_fractions_are_an_input_error(inputs_copy, tmp_path):
    def negate(ds):
        w = ds.wind_direction_distribution.values.copy()
        w[..., 0] = -np.abs(w[..., 0]) - 0.1
        return ds.assign(wind_direction_distribution=(ds.wind_direction_distribution.dims, w))

    assert_bad_input_named(inputs_copy, tmp_path, WIND, negate, "negative fractions")


@pytest.mark.parametrize("region", ["y0_x0", "y9_x9", "banana"])
def test_unknown_region_ids_never_reach_storage(demo_inputs_root, tmp_path, region):
    out = tmp_path / "out"
    storage = Storage(str(out))
    with pytest.raises(RegionIdError):
        run_region_risk(region, "demo", InputCatalog(Storage(str(demo_inputs_root))), storage)
    assert _no_outputs(out)
    # Dagster itself refuses a partition key outside the region partitions
    with pytest.raises(dg.DagsterUnknownPartitionError, match=region):
        run_one(demo_inputs_root, out, region=region)
    assert _no_outputs(out)


def test_unreachable_storage_root_fails_before_work(demo_inputs_root, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = run_one(demo_inputs_root, blocker / "root")
    assert not result.success
    errors = [
        error.message
        for e in result.all_events
        if (error := getattr(e.event_specific_data, "error", None)) is not None
    ]
    assert any("cannot be written" in m and "OCR_STORAGE_ROOT" in m for m in errors)
    assert not (blocker / "root").exists()
