"""The production kernel (``ocr_core.fast_kernels``) driven the ways the tests compare it:
on whole arrays (one direction's spread; steps 2.3-2.6 of one scenario) and on a whole region
with its pass-through variables.

A region task runs ``ocr_core.risk.region_wind_bp`` and ``region_outputs`` on trimmed windows;
these helpers run the same kernel on full arrays so each step can be checked against the
straightforward method (tests/straightforward_method.py) and the independent reference
(tests/reference_method.py). For a kernel without uniform weights in contiguous runs, or for
input with ±inf or negative values, they return the straightforward result, as the kernel's
fixed-point budget cannot take such input.
"""

from __future__ import annotations

import numpy as np
from straightforward_method import (
    straightforward_directional_spread,
    straightforward_wind_informed_bp,
)

from ocr_core import fast_kernels as fk
from ocr_core.risk import (
    SPREAD_ITERATIONS,
    RegionInputs,
    check_fractions,
    kernel_set,
    make_kernel,
    region_outputs,
    region_wind_bp,
    smoothing_kernel_size,
)
from ocr_core.schema import WIND_DIRECTIONS


def directional_spread(
    bp30: np.ndarray, kernel: np.ndarray, iterations: int = SPREAD_ITERATIONS
) -> np.ndarray:
    """Normalized convolution of BP with one direction's kernel, iterated, by the prefix-sum
    kernel over the whole array.

    Zeros do not dilute the spread: each step averages only pixels with BP > 0. NaN in the
    input counts as 0 while spreading and is put back at the end.
    """
    bp30 = np.asarray(bp30)
    arr = np.ascontiguousarray(bp30, dtype=np.float32)
    ks = kernel_set([kernel])
    if ks is None or arr.ndim != 2 or arr.size == 0 or iterations < 1:
        return straightforward_directional_spread(bp30, kernel, iterations)
    vmax, ok = fk.value_range(arr)
    if not ok:
        return straightforward_directional_spread(bp30, kernel, iterations)
    out = np.empty(arr.shape, dtype=np.float32)
    windows = fk.full_windows((arr.shape[0], arr.shape[1]), iterations)
    fk.run_pipeline(ks, windows, mode=fk.MODE_SPREAD, out=out, src=arr, vmax=vmax)
    out[np.isnan(bp30)] = np.nan
    return out


def wind_informed_bp(
    bp30: np.ndarray, fractions: np.ndarray, dx_m: float, dy_m: float, pixel_size_deg: float
) -> np.ndarray:
    """Steps 2.3-2.6 over the whole array: spread BP in 8 directions, weight by wind, fill
    zeros, smooth; the spreading and the composite fused in the streamed kernel."""
    import cv2

    check_fractions(fractions)
    arr = np.ascontiguousarray(bp30, dtype=np.float32)
    ks = kernel_set([make_kernel(d, dx_m, dy_m) for d in WIND_DIRECTIONS])
    vmax, ok = fk.value_range(arr) if arr.ndim == 2 else (0.0, False)
    if ks is None or arr.size == 0 or not ok:
        return straightforward_wind_informed_bp(bp30, fractions, dx_m, dy_m, pixel_size_deg)
    combined = np.empty(arr.shape, dtype=np.float32)
    fk.run_pipeline(
        ks,
        fk.full_windows((arr.shape[0], arr.shape[1]), SPREAD_ITERATIONS),
        mode=fk.MODE_COMPOSITE,
        out=combined,
        src=arr,
        wind=np.ascontiguousarray(fractions, dtype=np.float32),
        vmax=vmax,
    )
    k = smoothing_kernel_size(pixel_size_deg)
    cv2.GaussianBlur(combined, (k, k), 0, dst=combined, borderType=cv2.BORDER_REFLECT_101)
    return combined


def compute_region_risk(inputs: RegionInputs) -> dict[str, np.ndarray]:
    """The 8 float32 output variables of one region, clipped to the unbuffered region, as a
    region task computes them (``region_wind_bp``, then ``region_outputs``)."""
    bp = region_wind_bp(inputs)
    return region_outputs(bp, inputs.crps, inputs.rps, inputs.riley30)
