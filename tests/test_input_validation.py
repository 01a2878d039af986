"""Inputs that break the data schema fail at once, with one line naming the dataset, the
variable, how many pixels or rows, one location and the fix, and publish nothing.

Each bad input is a real demo store copied and rewritten; the region runs through Dagster.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import numpy as np
import pyarrow.parquet as pq
import pytest
from input_edits import region_resources, rewrite_dataset, run_region_step
from raster_commits import region_commit_log

from ocr_assets.phase01_regions import process_region
from ocr_core.catalog import InputCatalog, grid_offsets, spec
from ocr_core.errors import InputDataError
from ocr_core.grid import DEMO
from ocr_core.process_region import load_region_inputs
from ocr_core.schema import BUILDINGS, RILEY_30M, RILEY_270M, WIND_DISTRIBUTION
from ocr_core.schema import SCOTT_2024 as SCOTT
from ocr_core.storage import Storage
from ocr_core.validation import (
    check_has_finite,
    check_range,
    check_wind_fractions,
    lat_lon_locator,
    validate_hazard_inputs,
    validate_pass_through,
)

REGION = "y2_x1"
WIND = WIND_DISTRIBUTION
RILEY_270_2011, RILEY_270_2047 = RILEY_270M["2011"], RILEY_270M["2047"]
RILEY_30_2047 = RILEY_30M["2047"]


def validate_region_inputs(inputs) -> None:
    """Every schema check of a ``RegionInputs`` that carries its pass-through variables."""
    validate_hazard_inputs(inputs)
    r0, r1, c0, c1 = inputs.region
    layers = {"crps": inputs.crps, "rps": inputs.rps, "riley30": inputs.riley30}
    validate_pass_through(layers, inputs.lat[r0:r1], inputs.lon[c0:c1])


# ------------------------------------------------------------------------------ helpers


def _region_index(ds, name: str, rows: int, cols: int) -> tuple[int, int]:
    """Array (i, j) of the pixel ``rows``/``cols`` into the region from its south-west."""
    row0, col0 = grid_offsets(spec(name), ds, DEMO)
    r0, _, c0, _ = DEMO.pixel_window(REGION)
    return r0 + rows - row0, c0 + cols - col0


def _set_30m(var: str, name: str, pixels, value):
    """Mutation: ``var`` = ``value`` at region pixels [(rows, cols), ...]; the expected
    location is the first of them (the row-major first in the region)."""
    expected = {}

    def mutate(ds):
        a = ds[var].values.copy()
        for k, (r, c) in enumerate(pixels):
            i, j = _region_index(ds, name, r, c)
            a[i, j] = value
            if k == 0:
                lat, lon = float(ds.latitude.values[i]), float(ds.longitude.values[j])
                expected["at"] = f"lat {lat:.5f}, lon {lon:.5f}"
        return ds.assign({var: (ds[var].dims, a)})

    return mutate, expected


def _region_centre_270(ds) -> tuple[int, int]:
    """(i, j) of the 270 m pixel under the region's centre."""
    from pyproj import Transformer

    lon_min, lat_min, lon_max, lat_max = DEMO.region_bounds(REGION)
    t = Transformer.from_crs("EPSG:4326", "EPSG:5070", always_xy=True)
    x, y = t.transform((lon_min + lon_max) / 2, (lat_min + lat_max) / 2)
    return int(np.abs(ds.y.values - y).argmin()), int(np.abs(ds.x.values - x).argmin())


def _set_270m(value):
    expected = {}

    def mutate(ds):
        a = ds.BP.values.copy()
        i, j = _region_centre_270(ds)
        a[i, j] = value
        expected["at"] = f"x {float(ds.x.values[j]):.1f}, y {float(ds.y.values[i]):.1f} (EPSG:5070)"
        return ds.assign(BP=(ds.BP.dims, a))

    return mutate, expected


def _all_nan(var: str):
    def mutate(ds):
        return ds.assign({var: (ds[var].dims, np.full(ds[var].shape, np.nan, ds[var].dtype))})

    return mutate, {}


def _wind(pixels, change):
    """Mutation of the wind fractions at region pixels: ``change(fractions) -> fractions``."""
    expected = {}

    def mutate(ds):
        w = ds.wind_direction_distribution.values.copy()
        for k, (r, c) in enumerate(pixels):
            i, j = _region_index(ds, WIND, r, c)
            w[i, j] = change(w[i, j])
            if k == 0:
                lat, lon = float(ds.latitude.values[i]), float(ds.longitude.values[j])
                expected["at"] = f"lat {lat:.5f}, lon {lon:.5f}"
        return ds.assign(wind_direction_distribution=(ds.wind_direction_distribution.dims, w))

    return mutate, expected


def _negative_ne(f):
    f = f.copy()
    f[1] = -0.25
    return f


PIXELS = [(120, 40), (120, 41), (301, 222)]

CASES = {
    "crps_above_100": (
        SCOTT,
        _set_30m("CRPS", SCOTT, PIXELS, 150.0),
        [f"{SCOTT!r} variable 'CRPS'", "3 30 m pixel(s) outside [0, 100]", "max 150"],
    ),
    "crps_inf": (
        SCOTT,
        _set_30m("CRPS", SCOTT, PIXELS[:1], np.inf),
        [f"{SCOTT!r} variable 'CRPS'", "1 30 m pixel(s) outside [0, 100]", "max inf"],
    ),
    "rps_negative": (
        SCOTT,
        _set_30m("RPS", SCOTT, PIXELS[1:], -2.0),
        [f"{SCOTT!r} variable 'RPS'", "2 30 m pixel(s) outside [0, 100]", "min -2"],
    ),
    "riley_30m_bp_above_1": (
        RILEY_30_2047,
        _set_30m("BP", RILEY_30_2047, PIXELS, 1.5),
        [f"{RILEY_30_2047!r} variable 'BP'", "3 30 m pixel(s) outside [0, 1]"],
    ),
    "riley_270m_2011_bp_above_1": (
        RILEY_270_2011,
        _set_270m(1.25),
        [f"{RILEY_270_2011!r} variable 'BP'", "1 270 m pixel(s) outside [0, 1]"],
    ),
    "riley_270m_2047_bp_negative": (
        RILEY_270_2047,
        _set_270m(-0.5),
        [f"{RILEY_270_2047!r} variable 'BP'", "1 270 m pixel(s) outside [0, 1]"],
    ),
    "wind_negative_fraction": (
        WIND,
        _wind(PIXELS, _negative_ne),
        ["'wind_direction_distribution'", "3 pixel(s) with negative fractions", "NE = -0.25"],
    ),
    "wind_sum_not_1": (
        WIND,
        _wind(PIXELS[:2], lambda f: f * np.float32(0.9) if f.sum() > 0 else f + 0.1),
        ["'wind_direction_distribution'", "2 pixel(s) whose 8 fractions sum to neither 0 nor 1"],
    ),
    "crps_all_nan": (
        SCOTT,
        _all_nan("CRPS"),
        [f"{SCOTT!r} variable 'CRPS' holds no finite value", "270000 30 m pixel(s)"],
    ),
    "riley_270m_bp_all_nan": (
        RILEY_270_2011,
        _all_nan("BP"),
        [f"{RILEY_270_2011!r} variable 'BP' holds no finite value", "270 m pixel(s)"],
    ),
}


def _events(result, kind: str) -> list:
    return [e for e in result.all_events if e.event_type_value == kind]


def _assert_failed_once(result, asset: str) -> str:
    """The step failed exactly once, was never retried; returns its one-line description."""
    assert not result.success
    failures = _events(result, "STEP_FAILURE")
    assert len(failures) == 1
    assert _events(result, "STEP_UP_FOR_RETRY") == []
    message = failures[0].event_specific_data.error.message
    assert f"{asset} for region {REGION}: input dataset" in message
    lines = message.strip().splitlines()
    assert len(lines) == 1, message
    return lines[0]


def _no_outputs(root: Path) -> bool:
    return not (root / "output").exists() and not (root / "intermediate").exists()


# ------------------------------------------------------------------------------ region_risk


@pytest.mark.parametrize("case", list(CASES))
def test_schema_violation_fails_at_once_and_writes_nothing(inputs_copy, tmp_path, case):
    name, (mutate, expected), parts = CASES[case]
    rewrite_dataset(inputs_copy, name, mutate)
    out = tmp_path / "out"
    result = run_region_step(inputs_copy, out, REGION)
    line = _assert_failed_once(result, "region_risk")
    for part in parts:
        assert part in line
    if "at" in expected:
        assert f"at {expected['at']}" in line
    assert "Fix: " in line and "regenerate" in line
    assert _no_outputs(out)


def test_bad_rerun_leaves_the_published_region_unchanged(demo_inputs_root, inputs_copy, tmp_path):
    """A region published from good inputs keeps its commit and file when a rerun hits bad input."""
    out = tmp_path / "out"
    good = dg.materialize(
        [process_region],
        partition_key=REGION,
        resources=region_resources(demo_inputs_root, out),
    )
    assert good.success
    storage = Storage(str(out))
    log_before = region_commit_log(storage)
    parquet = Path(storage.region_geoparquet_uri(REGION))
    bytes_before = parquet.read_bytes()

    mutate, _ = _set_30m("CRPS", SCOTT, PIXELS, 101.0)
    rewrite_dataset(inputs_copy, SCOTT, mutate)
    bad = run_region_step(inputs_copy, out, REGION)
    assert "3 30 m pixel(s) outside [0, 100]" in _assert_failed_once(bad, "region_risk")
    assert not [
        e
        for e in bad.all_events
        if e.is_step_materialization and e.asset_key == dg.AssetKey("region_buildings")
    ]
    assert region_commit_log(storage) == log_before
    assert parquet.read_bytes() == bytes_before


# ------------------------------------------------------------------------------ region_buildings


def _run_buildings(inputs_root: Path, tmp_path: Path, compute=None):
    """The region step; its risk half succeeds, so the buildings half meets the bad file."""
    out = tmp_path / "out"
    result = dg.materialize(
        [process_region],
        partition_key=REGION,
        resources=region_resources(inputs_root, out, compute),
        raise_on_error=False,
    )
    return result, Path(Storage(str(out)).region_geoparquet_uri(REGION))


def _empty_table(path: Path):
    table = pq.read_table(path)
    pq.write_table(table.slice(0, 0), path)


def _drop_county(path: Path):
    table = pq.read_table(path)
    pq.write_table(table.drop_columns(["county_name"]), path)


def _zero_bytes(path: Path):
    path.write_bytes(b"")


def _truncate(path: Path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


BUILDING_CASES = {
    "zero_rows": (_empty_table, ["has 0 rows", "regenerate"]),
    "missing_column": (_drop_county, ["lacks column(s) ['county_name']", "rows", "regenerate"]),
    "zero_bytes": (_zero_bytes, ["is an empty file (0 bytes)", "copy the file again"]),
    "truncated": (_truncate, ["is not a readable parquet file", "corrupt or truncated"]),
}


@pytest.mark.parametrize("case", list(BUILDING_CASES))
def test_bad_buildings_file_fails_at_once(inputs_copy, tmp_path, case):
    corrupt, parts = BUILDING_CASES[case]
    target = inputs_copy / spec(BUILDINGS).prefix
    corrupt(target)
    result, parquet = _run_buildings(inputs_copy, tmp_path)
    line = _assert_failed_once(result, "region_buildings")
    assert f"{BUILDINGS!r} at {target}" in line and "Fix: " in line
    for part in parts:
        assert part in line
    assert not parquet.exists()


# ------------------------------------------------------------------------------ the checks


@pytest.fixture(scope="module")
def region_inputs(demo_inputs_root):
    return load_region_inputs(InputCatalog(Storage(str(demo_inputs_root))), DEMO, REGION)


def test_demo_inputs_pass_every_check(region_inputs):
    validate_region_inputs(region_inputs)


def test_nan_is_no_data_and_allowed():
    values = np.array([[np.nan, 0.0], [1.0, np.nan]], dtype=np.float32)
    check_range("d", "BP", values, 0.0, 1.0, lat_lon_locator(np.zeros(2), np.zeros(2)))
    fractions = np.full((1, 2, 8), np.nan, dtype=np.float32)
    fractions[0, 1] = 0.125
    fractions[0, 0, :4] = 0.25  # half the directions NaN: a no-data pixel, not a bad sum
    check_wind_fractions("d", "w", fractions, lat_lon_locator(np.zeros(1), np.zeros(2)))


def test_zero_wind_is_allowed_and_tolerance_is_1e_5():
    at = lat_lon_locator(np.zeros(1), np.zeros(3))
    fractions = np.zeros((1, 3, 8), dtype=np.float32)
    fractions[0, 1] = 0.125 + 0.5e-5 / 8
    check_wind_fractions("d", "w", fractions, at)
    fractions[0, 2] = 0.125 + 2e-5 / 8
    with pytest.raises(InputDataError, match=r"1 pixel\(s\) whose 8 fractions sum"):
        check_wind_fractions("d", "w", fractions, at)


def test_all_nan_window_names_its_extent():
    lat, lon = np.array([34.0, 34.1]), np.array([-118.2, -118.1, -118.0])
    with pytest.raises(InputDataError) as info:
        check_has_finite("d", "CRPS", np.full((2, 3), np.nan), lat_lon_locator(lat, lon))
    message = str(info.value)
    assert "6 pixel(s), all NaN" in message
    assert "from lat 34.00000, lon -118.20000 to lat 34.10000, lon -118.00000" in message


def test_validation_runs_before_the_kernel_check(region_inputs):
    """The schema error for a negative fraction fires before risk.py's bare ValueError."""
    from dataclasses import replace

    wind = region_inputs.wind.copy()
    r0, _, c0, _ = region_inputs.region
    wind[r0, c0, 3] = -1.0
    with pytest.raises(InputDataError, match=r"1 pixel\(s\) with negative fractions \(e.g. SE"):
        validate_region_inputs(replace(region_inputs, wind=wind))
