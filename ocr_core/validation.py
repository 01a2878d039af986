"""Check a region's inputs against what the data schema promises, before anything is written.

Each check raises ``InputDataError`` with one line naming the dataset, the variable, how many
pixels break the rule, one example location (lat/lon of a 30 m pixel centre, x/y in the
270 m grid's CRS) and the fix. NaN is no-data and always allowed; ±inf never is. Checks are
one cheap pass (``nanmin``/``nanmax``; a blockwise sum for the wind fractions); counts and
locations are computed only once a violation is known. The rules themselves
(``range_violation``, ``wind_layout_error``, ``wind_sums``) also serve the ``check-inputs``
report (``ocr_core.input_checks``).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ocr_core.catalog import spec
from ocr_core.errors import InputDataError
from ocr_core.schema import (
    MIN_BUILDING_ROWS,
    RILEY_30M,
    RILEY_270M,
    SCOTT_2024,
    VALUE_RANGES,
    WIND_DIRECTIONS,
    WIND_DISTRIBUTION,
    WIND_SUM_TOLERANCE,
    WIND_VARIABLE,
)

WIND_BLOCK_ROWS = 256  # rows of the (rows, cols, 8) wind array summed at once

Locate = Callable[[tuple[int, ...]], str]


def lat_lon_locator(lat: np.ndarray, lon: np.ndarray) -> Locate:
    """Pixel (row, col, ...) -> its centre as 'lat …, lon …'."""
    return lambda idx: f"lat {float(lat[idx[0]]):.5f}, lon {float(lon[idx[1]]):.5f}"


def xy_locator(x: np.ndarray, y: np.ndarray, crs: str) -> Locate:
    """Pixel (row, col) of a projected (y, x) array -> its centre as 'x …, y … (CRS)'."""
    return lambda idx: f"x {float(x[idx[1]]):.1f}, y {float(y[idx[0]]):.1f} ({crs})"


def _nan_extrema(values: np.ndarray) -> tuple[float, float]:
    """(nanmin, nanmax); NaN for an empty or all-NaN array, without warnings."""
    if values.size == 0:
        return float("nan"), float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(np.nanmin(values)), float(np.nanmax(values))


def _first(mask: npt.ArrayLike) -> tuple[int, ...]:
    """Index of the row-major first True of ``mask``."""
    m = np.asarray(mask)
    return tuple(int(i) for i in np.unravel_index(int(np.argmax(m)), m.shape))


@dataclass(frozen=True)
class RangeViolation:
    """Values outside an allowed range: how many, the extrema and the first offender."""

    count: int
    vmin: float
    vmax: float
    first: tuple[int, ...]  # array index of the row-major first value outside
    value: float


def range_violation(values: np.ndarray, lo: float, hi: float) -> RangeViolation | None:
    """The values outside [lo, hi] (NaN is no-data and allowed, ±inf never is); None if none."""
    vmin, vmax = _nan_extrema(values)
    if not (vmin < lo or vmax > hi):  # False for all-NaN: NaN compares false
        return None
    bad = (values < lo) | (values > hi)
    idx = _first(bad)
    return RangeViolation(int(np.count_nonzero(bad)), vmin, vmax, idx, float(values[idx]))


def check_range(
    dataset: str,
    variable: str,
    values: np.ndarray,
    lo: float,
    hi: float,
    locate: Locate,
    what: str = "pixel",
) -> None:
    """Every non-NaN value lies in [lo, hi] (±inf does not), else InputDataError."""
    v = range_violation(values, lo, hi)
    if v is None:
        return
    raise InputDataError(
        f"input dataset {dataset!r} variable {variable!r}: {v.count} {what}(s) "
        f"outside [{lo:g}, {hi:g}] (min {v.vmin:g}, max {v.vmax:g}; e.g. {v.value:g} at "
        f"{locate(v.first)}); the data schema allows only [{lo:g}, {hi:g}], or NaN for no-data. "
        f"Fix: correct or regenerate {dataset}."
    )


def wind_layout_error(var) -> str | None:
    """Why a wind-distribution variable is not laid out (latitude, longitude, 8 directions)
    as the readers index it; None if it is."""
    if var.dims == ("latitude", "longitude", "wind_direction") and var.shape[-1] == len(
        WIND_DIRECTIONS
    ):
        return None
    found = dict(zip(var.dims, var.shape, strict=True))
    return (
        f"{WIND_VARIABLE} must have dims (latitude, longitude, "
        f"wind_direction={len(WIND_DIRECTIONS)}), found {found}"
    )


def wind_sums(
    fractions: np.ndarray, dtype: type[np.floating] = np.float32
) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
    """(first row, block, per-pixel sum, distance of the sum from the nearer of 0 and 1) of
    each block of ``WIND_BLOCK_ROWS`` rows of (rows, cols, 8) fractions, in ``dtype``.

    The sum is a matrix-vector product (several times faster than ``sum(axis=-1)``; its
    rounding error, ~1e-7 in float32, is far below the tolerance). A pixel with a NaN
    fraction has a NaN sum and distance.
    """
    ones = np.ones(fractions.shape[-1], dtype=dtype)
    half = dtype(0.5)
    for r0 in range(0, fractions.shape[0], WIND_BLOCK_ROWS):
        block = np.asarray(fractions[r0 : r0 + WIND_BLOCK_ROWS], dtype=dtype)
        total = (block.reshape(-1, block.shape[-1]) @ ones).reshape(block.shape[:-1])
        yield r0, block, total, np.abs(np.abs(total - half) - half)  # ||s - ½| - ½|


def check_wind_fractions(
    dataset: str,
    variable: str,
    fractions: np.ndarray,
    locate: Locate,
    tolerance: float = WIND_SUM_TOLERANCE,
) -> None:
    """(rows, cols, 8) fractions: none negative, and each pixel's sum 0 or 1 ± ``tolerance``.

    A pixel with a NaN fraction is no-data and skipped by the sum rule.
    """
    negative = not_unit = 0
    first_negative = first_sum = None
    for r0, block, total, dev in wind_sums(fractions):
        if block.size and np.fmin.reduce(block, axis=None) < 0:  # nanmin without the max
            neg = (block < 0).any(axis=-1)
            if first_negative is None:
                row, col = _first(neg)
                first_negative = (r0 + row, col), block[row, col]
            negative += int(np.count_nonzero(neg))
        if dev.size and np.fmax.reduce(dev, axis=None) > tolerance:  # nanmax
            off = dev > tolerance
            if first_sum is None:
                row, col = _first(off)
                first_sum = (r0 + row, col), total[row, col]
            not_unit += int(np.count_nonzero(off))
    if first_negative is not None:
        idx, values = first_negative
        d = int(np.argmax(values < 0))
        raise InputDataError(
            f"input dataset {dataset!r} variable {variable!r}: {negative} pixel(s) with negative "
            f"fractions (e.g. {WIND_DIRECTIONS[d]} = {float(values[d]):g} at "
            f"{locate(idx)}); fractions must be ≥ 0, or NaN for no-data. Fix: correct or "
            f"regenerate {dataset}."
        )
    if first_sum is not None:
        idx, total = first_sum
        raise InputDataError(
            f"input dataset {dataset!r} variable {variable!r}: {not_unit} pixel(s) whose 8 "
            f"fractions sum to neither 0 nor 1 ± {tolerance:g} (e.g. sum {float(total):.7g} at "
            f"{locate(idx)}). Fix: renormalize each pixel's fractions to sum to 1 (all 0 where "
            f"there is no fire weather, NaN for no-data) or regenerate {dataset}."
        )


def check_has_finite(
    dataset: str, variable: str, values: np.ndarray, locate: Locate, what: str = "pixel"
) -> None:
    """At least one finite value (the window is not all NaN/±inf), else InputDataError."""
    if np.isfinite(_nan_extrema(values)[1]) or np.isfinite(values).any():
        return
    where = (
        f"from {locate((0, 0))} to {locate(tuple(n - 1 for n in values.shape))}"
        if values.size
        else "an empty window"
    )
    raise InputDataError(
        f"input dataset {dataset!r} variable {variable!r} holds no finite value in this "
        f"region's window ({values.size} {what}(s), all NaN or ±inf; {where}), although the "
        f"region id is valid. Fix: regenerate {dataset} with data over this area, or remove "
        "the region from the grid's valid region ids."
    )


def validate_hazard_inputs(inputs) -> None:
    """Schema checks of a region's 270 m BP windows and wind fractions (``RegionInputs``);
    the first violation raises."""
    at270 = xy_locator(inputs.x270, inputs.y270, inputs.crs270)
    layers = [(RILEY_270M[s], "BP", bp) for s, bp in inputs.bp270.items()]
    for dataset, variable, values in layers:
        lo, hi = VALUE_RANGES[(dataset, variable)]
        check_range(dataset, variable, values, lo, hi, at270, "270 m pixel")
    w0, w1, c0, c1 = inputs.wind_window or (0, inputs.lat.size, 0, inputs.lon.size)
    at_wind = lat_lon_locator(inputs.lat[w0:w1], inputs.lon[c0:c1])
    check_wind_fractions(WIND_DISTRIBUTION, WIND_VARIABLE, inputs.wind, at_wind)
    for dataset, variable, values in layers:
        check_has_finite(dataset, variable, values, at270, "270 m pixel")


def validate_pass_through(layers: dict, lat: np.ndarray, lon: np.ndarray) -> None:
    """Schema checks of a region's CRPS, RPS and 30 m Riley BP (``load_pass_through``), at
    the region's pixel centres ``lat``/``lon``."""
    at30 = lat_lon_locator(lat, lon)
    checked = [
        (SCOTT_2024, "CRPS", layers["crps"]),
        (SCOTT_2024, "RPS", layers["rps"]),
        *((RILEY_30M[s], "BP", bp) for s, bp in layers["riley30"].items()),
    ]
    for dataset, variable, values in checked:
        lo, hi = VALUE_RANGES[(dataset, variable)]
        check_range(dataset, variable, values, lo, hi, at30, "30 m pixel")
    for dataset, variable, values in checked:
        check_has_finite(dataset, variable, values, at30, "30 m pixel")


def check_buildings(dataset: str, schema, n_rows: int, uri: str) -> None:
    """A buildings GeoParquet (pyarrow ``schema``, ``n_rows``) has rows, the catalog's columns
    and a bbox struct with xmin/ymin (the region filter reads them); else InputDataError."""
    import pyarrow as pa

    fix = f"Fix: regenerate {dataset} (or the demo inputs) with the catalog's columns."
    missing = [c for c in spec(dataset).variables if c not in schema.names]
    if missing:
        raise InputDataError(
            f"input dataset {dataset!r} at {uri} lacks column(s) {missing} ({n_rows} rows, "
            f"columns {schema.names}). {fix}"
        )
    bbox = schema.field("bbox").type
    if not pa.types.is_struct(bbox) or not {"xmin", "ymin"} <= {f.name for f in bbox}:
        raise InputDataError(
            f"input dataset {dataset!r} at {uri}: column 'bbox' is {bbox}, not a struct with "
            f"xmin and ymin ({n_rows} rows). {fix}"
        )
    if n_rows < MIN_BUILDING_ROWS:
        raise InputDataError(
            f"input dataset {dataset!r} at {uri} has {n_rows} rows (columns {schema.names}): "
            f"the file holds no buildings. {fix}"
        )
