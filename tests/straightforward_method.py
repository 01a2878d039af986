"""The per-region method written the straightforward way, as docs/method.md reads.

One full 81 × 81 ``cv2.filter2D`` per direction and iteration over the whole buffered array,
numpy masking, the composite as one broadcast. It is the oracle the production kernel
(``ocr_core.risk.region_wind_bp``) is pinned to in tests/test_risk_fast.py, and the baseline of
``benchmarks/bench_region_kernel.py``. The kernels, the gap-fill and the input container are
production's (``ocr_core.risk``); what differs is how the spreading, composite and smoothing
are computed.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from ocr_core.reproject import take_cells
from ocr_core.risk import (
    SPREAD_EPS,
    SPREAD_ITERATIONS,
    RegionInputs,
    centre_pixel_sizes,
    check_fractions,
    gap_fill,
    make_kernels,
    region_outputs,
    smoothing_kernel_size,
)
from ocr_core.schema import SCENARIO_YEARS, WIND_DIRECTIONS


def correlate(arr: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Same-size correlation (kernel not flipped), borders mirrored without the edge pixel."""
    import cv2

    return cv2.filter2D(
        np.ascontiguousarray(arr, dtype=np.float32), -1, kernel, borderType=cv2.BORDER_REFLECT_101
    )


def smooth(arr: np.ndarray, pixel_size_deg: float) -> np.ndarray:
    """Gaussian blur with OpenCV's σ-from-size rule and mirrored borders (float32)."""
    import cv2

    k = smoothing_kernel_size(pixel_size_deg)
    return cv2.GaussianBlur(
        np.ascontiguousarray(arr, dtype=np.float32), (k, k), 0, borderType=cv2.BORDER_REFLECT_101
    )


def full_wind(inputs: RegionInputs) -> np.ndarray:
    """Wind fractions over the whole buffered grid, NaN outside ``inputs.wind_window``.

    Pixels outside the region grown by the smoothing radius do not reach the clipped result,
    so the padding changes no output value.
    """
    if inputs.wind_window in (None, (0, inputs.shape[0], 0, inputs.shape[1])):
        return inputs.wind
    w0, w1, c0, c1 = inputs.wind_window
    full = np.full((*inputs.shape, 8), np.nan, dtype=np.float32)
    full[w0:w1, c0:c1] = inputs.wind
    return full


def scenario_bp30(inputs: RegionInputs, scenario: str) -> np.ndarray:
    """Gap-filled 270 m BP on the whole buffered 30 m grid, GDAL's nearest cell per pixel."""
    return take_cells(gap_fill(inputs.bp270[scenario]), inputs.cell_index())


def normalized_spread(
    bp30: np.ndarray,
    kernel: np.ndarray,
    iterations: int,
    correlate: Callable[[np.ndarray, np.ndarray], np.ndarray],
    dtype: type[np.floating],
) -> np.ndarray:
    """Step 2.3 as the method states it, with a given same-size correlation and float type:
    per iteration the correlation of BP and of its BP > 0 mask, both zeroed below the epsilon,
    divided where the mask's is positive; NaN counts as 0 and is put back at the end. The
    straightforward method and the independent reference (tests/reference_method.py) each
    run it with their own correlation."""
    arr = np.nan_to_num(np.asarray(bp30).astype(dtype, copy=False), nan=0.0)
    for _ in range(iterations):
        m = correlate((arr > 0).astype(dtype), kernel)
        m[m < SPREAD_EPS] = 0
        c = correlate(arr, kernel)
        c[c < SPREAD_EPS] = 0
        out = np.zeros_like(arr)
        np.divide(c, m, out=out, where=m > 0)
        arr = out
    arr[np.isnan(bp30)] = np.nan
    return arr


def straightforward_directional_spread(
    bp30: np.ndarray, kernel: np.ndarray, iterations: int = SPREAD_ITERATIONS
) -> np.ndarray:
    """Step 2.3 as the method reads: full-array cv2 correlations (float32), numpy masking."""
    return normalized_spread(bp30, kernel, iterations, correlate, np.float32)


def weighted_composite(spread: dict[str, np.ndarray], fractions: np.ndarray) -> np.ndarray:
    """Step 2.4 as one broadcast: Σ_d spread_d × f_d / Σ f per pixel; NaN where the fractions
    sum to 0 or hold NaN. ``fractions`` has shape (rows, cols, 8) in WIND_DIRECTIONS order."""
    check_fractions(fractions)
    total = fractions.sum(axis=-1, dtype=np.float32)
    bad = ~(total > 0)  # also true where any fraction is NaN
    stack = np.stack([spread[d] for d in WIND_DIRECTIONS], axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        weights = fractions / np.where(bad, np.float32(1), total)[..., np.newaxis]
    out = (stack * weights).sum(axis=-1, dtype=np.float32)
    out[bad] = np.nan
    return out


def straightforward_wind_informed_bp(
    bp30: np.ndarray, fractions: np.ndarray, dx_m: float, dy_m: float, pixel_size_deg: float
) -> np.ndarray:
    """Steps 2.3-2.6 on the whole buffered array, the straightforward way."""
    kernels = make_kernels(dx_m, dy_m)
    spread = {d: straightforward_directional_spread(bp30, kernels[d]) for d in WIND_DIRECTIONS}
    composite = weighted_composite(spread, fractions)
    combined = np.where(bp30 == 0, composite, bp30).astype(np.float32)
    return smooth(combined, pixel_size_deg)


def straightforward_region_bp(
    inputs: RegionInputs, timings: dict[str, float] | None = None
) -> dict[str, np.ndarray]:
    """``region_wind_bp`` the straightforward way; adds each scenario's wall time to
    ``timings`` (if given)."""
    dx_m, dy_m = centre_pixel_sizes(inputs)
    r0, r1, c0, c1 = inputs.region
    bp = {}
    wind = full_wind(inputs)
    for scenario in SCENARIO_YEARS:
        t0 = time.perf_counter()
        bp30 = scenario_bp30(inputs, scenario)
        full = straightforward_wind_informed_bp(bp30, wind, dx_m, dy_m, inputs.pixel_size)
        bp[scenario] = np.ascontiguousarray(full[r0:r1, c0:c1])
        del bp30, full
        if timings is not None:
            timings[f"scenario {scenario}"] = time.perf_counter() - t0
    return bp


def straightforward_region_risk(
    inputs: RegionInputs, timings: dict[str, float] | None = None
) -> dict[str, np.ndarray]:
    """The 8 output variables of one region the straightforward way (full buffered arrays
    throughout)."""
    bp = straightforward_region_bp(inputs, timings)
    return region_outputs(bp, inputs.crps, inputs.rps, inputs.riley30)
