"""The per-region wind-informed fire-risk method as production runs it (docs/method.md).

Everything here works on in-memory arrays on the 30 m EPSG:4326 grid, latitude ascending
(row 0 = south). Quirks of the reference method are reproduced on purpose and marked "quirk".

A region task calls ``region_wind_bp`` (gap-fill, reprojection, the 8 directional spreads, the
wind-weighted composite and the smoothing, clipped to the region) and then ``region_outputs``.
The spreading and the composite run fused in the streamed prefix-sum kernel of
``ocr_core.fast_kernels``, computed only where the clipped result depends on them. The method
written literally (full-array ``cv2.filter2D`` correlations, numpy masking) lives in
``tests/straightforward_method.py``: it is the oracle of the tests (same results ≤ 1e-6, same
NaN pattern) and the baseline of ``benchmarks/bench_region_kernel.py``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ocr_core.schema import OUTPUT_VARIABLES, SCENARIO_YEARS, WIND_DIRECTIONS

if TYPE_CHECKING:
    from ocr_core.fast_kernels import KernelSet, Windows

EARTH_RADIUS_M = 6_371_000.0
KERNEL_SIZE = 81
ELLIPSE_A_M = 400.0  # semi-axis along the wind
ELLIPSE_B_M = 200.0  # semi-axis across the wind
ELLIPSE_OFFSET_M = 110.0  # centre offset toward the direction the wind comes from
SPREAD_ITERATIONS = 3
SPREAD_EPS = 1e-11
SMOOTHING_RADIUS_M = 300.0
METRES_PER_DEGREE_LAT = 111_000.0


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres (R = 6371 km)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(h))


def pixel_sizes_m(lat: float, lon: float, res_deg: float) -> tuple[float, float]:
    """(east-west, north-south) size in metres of one pixel step at (lat, lon)."""
    return haversine_m(lat, lon, lat, lon + res_deg), haversine_m(lat, lon, lat + res_deg, lon)


def _ellipse_params(direction: str) -> tuple[float, float, float, float, bool]:
    """(centre x, centre y, A, B, diagonal) of a direction's ellipse; y grows northward."""
    a, b, o = ELLIPSE_A_M, ELLIPSE_B_M, ELLIPSE_OFFSET_M
    d = o / math.sqrt(2.0)
    table = {
        "W": (-o, 0.0, a, b, False),
        "E": (o, 0.0, a, b, False),
        "N": (0.0, o, b, a, False),
        "S": (0.0, -o, b, a, False),
        "NE": (d, d, a, b, True),
        "SW": (-d, -d, a, b, True),
        "NW": (-d, d, b, a, True),
        "SE": (d, -d, b, a, True),
    }
    try:
        return table[direction]
    except KeyError:
        raise ValueError(
            f"unknown wind direction {direction!r}; use one of {WIND_DIRECTIONS}"
        ) from None


def make_kernel(direction: str, dx_m: float, dy_m: float) -> np.ndarray:
    """81 × 81 float32 ellipse-indicator kernel for one wind direction, divided by its sum.

    Row index grows northward (like the latitude-ascending arrays), column index eastward.
    """
    cx, cy, big_a, big_b, diagonal = _ellipse_params(direction)
    # quirk: 81 evenly spaced tap positions from -41 to 40 (step 1.0125), not symmetric
    steps = np.linspace(-41, 40, KERNEL_SIZE)
    x = (steps * dx_m)[np.newaxis, :] - cx
    y = (steps * dy_m)[:, np.newaxis] - cy
    if diagonal:
        inside = (x + y) ** 2 / (2 * big_a**2) + (y - x) ** 2 / (2 * big_b**2) <= 1
    else:
        inside = (x / big_a) ** 2 + (y / big_b) ** 2 <= 1
    kernel = inside.astype(np.float32)
    total = kernel.sum(dtype=np.float32)
    if not 200 <= total <= 500:
        raise ValueError(
            f"{direction} kernel has {int(total)} taps for pixel size {dx_m:.2f} × {dy_m:.2f} m; "
            "expected 200-500 anywhere in CONUS: check the pixel size"
        )
    return kernel / total


def make_kernels(dx_m: float, dy_m: float) -> dict[str, np.ndarray]:
    return {d: make_kernel(d, dx_m, dy_m) for d in WIND_DIRECTIONS}


def gap_fill(bp: np.ndarray) -> np.ndarray:
    """Fill holes: a pixel not > 0 whose 4 edge neighbours are all > 0 gets its 3×3 mean.

    The mean is over the centred 3×3 window with NaNs skipped (the pixel itself included
    when it is not NaN). Edge pixels of the array lack a neighbour and are never filled.
    """
    bp = np.asarray(bp, dtype=np.float32)
    ny, nx = bp.shape
    out = bp.copy()
    if ny < 3 or nx < 3:
        return out
    with np.errstate(invalid="ignore"):
        pos = bp > 0
    inner = ~pos[1:-1, 1:-1] & pos[:-2, 1:-1] & pos[2:, 1:-1] & pos[1:-1, :-2] & pos[1:-1, 2:]
    if not inner.any():
        return out
    rows, cols = np.nonzero(inner)
    rows, cols = rows + 1, cols + 1
    windows = np.stack(
        [bp[rows + dr, cols + dc] for dr in (-1, 0, 1) for dc in (-1, 0, 1)], axis=0
    ).astype(np.float64)
    counts = (~np.isnan(windows)).sum(axis=0)
    sums = np.nansum(windows, axis=0)
    out[rows, cols] = (sums / counts).astype(np.float32)  # counts >= 4: the neighbours are > 0
    return out


def smoothing_kernel_size(pixel_size_deg: float) -> int:
    """Odd Gaussian kernel size 2r + 1 for a 300 m radius (r at least 1)."""
    r = int(SMOOTHING_RADIUS_M / (abs(pixel_size_deg) * METRES_PER_DEGREE_LAT))
    return 2 * max(r, 1) + 1


@dataclass(kw_only=True)
class RegionInputs:
    """Everything the method needs for one region, already cut from the input stores.

    Buffered arrays cover the region plus the buffer (the reference's window: pixel centres
    within the region's edges ± the buffer); ``region`` is the (row_start, row_stop, col_start,
    col_stop) of the region inside them. The 270 m window is the one the reference reads, with
    the dask chunks its store's chunking gives it (they decide GDAL's choices, see
    ``ocr_core.reproject``). ``wind`` may cover only ``wind_window`` of the buffered grid (the
    fast path needs the region grown by the smoothing radius). The pass-through variables
    (region only) may be absent: the region task loads them after the kernel, so the two never
    share memory (see ``region_outputs``).
    """

    lat: np.ndarray  # buffered pixel-centre latitudes, ascending
    lon: np.ndarray  # buffered pixel-centre longitudes
    region: tuple[int, int, int, int]
    wind: np.ndarray  # (rows, cols, 8) wind direction fractions over wind_window
    bp270: dict[str, np.ndarray]  # scenario -> 270 m BP window (y, x)
    x270: np.ndarray
    y270: np.ndarray
    crs270: str
    pixel_size: float
    crps: np.ndarray | None = None  # region only
    rps: np.ndarray | None = None  # region only
    riley30: dict[str, np.ndarray] | None = None  # scenario -> region-only 30 m Riley BP
    chunks270: tuple[tuple[int, ...], tuple[int, ...]] | None = None  # None: one chunk
    wind_window: tuple[int, int, int, int] | None = None  # None: the whole buffered grid

    @property
    def shape(self) -> tuple[int, int]:
        return self.lat.size, self.lon.size

    def cell_index(self, window: tuple[int, int, int, int] | None = None) -> np.ndarray:
        """270 m cell (flat index, -1 = none) GDAL's warp gives each pixel of ``window``."""
        from ocr_core.reproject import gap_filled_chunks, nearest_cell_index

        chunks = self.chunks270 or ((self.y270.size,), (self.x270.size,))
        return nearest_cell_index(
            self.x270,
            self.y270,
            self.crs270,
            gap_filled_chunks(chunks),
            self.lat,
            self.lon,
            window,
            self.pixel_size,
        )


def centre_pixel_sizes(inputs: RegionInputs) -> tuple[float, float]:
    """Pixel sizes (m) at the centre pixel of the buffered arrays, as the method states."""
    ny, nx = inputs.lat.size, inputs.lon.size
    return pixel_sizes_m(float(inputs.lat[ny // 2]), float(inputs.lon[nx // 2]), inputs.pixel_size)


def region_outputs(
    bp: dict[str, np.ndarray],
    crps: np.ndarray | None,
    rps: np.ndarray | None,
    riley30: dict[str, np.ndarray] | None,
) -> dict[str, np.ndarray]:
    """The 8 output variables from the wind-informed BP and the pass-through variables
    (not copied when already float32)."""
    if crps is None or rps is None or riley30 is None:
        raise ValueError("the region's CRPS, RPS and 30 m Riley BP are needed for its outputs")
    crps = crps.astype(np.float32, copy=False)
    result = {
        "rps_scott": rps.astype(np.float32, copy=False),
        "rps_2011": bp["2011"] * crps,
        "rps_2047": bp["2047"] * crps,
        "bp_2011": bp["2011"],
        "bp_2047": bp["2047"],
        "crps_scott": crps,
        "bp_2011_riley": riley30["2011"].astype(np.float32, copy=False),
        "bp_2047_riley": riley30["2047"].astype(np.float32, copy=False),
    }
    return {k: result[k] for k in OUTPUT_VARIABLES}


def kernel_set(kernels: list[np.ndarray]) -> KernelSet | None:
    """Packed runs of the kernels, or None if one has no uniform-weight run structure."""
    from ocr_core import fast_kernels as fk

    runs = [fk.decompose_kernel(k) for k in kernels]
    complete = [r for r in runs if r is not None]
    return fk.pack_kernels(complete) if len(complete) == len(runs) else None


def check_fractions(fractions: np.ndarray) -> None:
    """Wind fractions of shape (rows, cols, 8) in ``WIND_DIRECTIONS`` order, none negative."""
    from ocr_core import fast_kernels as fk

    if fractions.shape[-1] != len(WIND_DIRECTIONS):
        raise ValueError(
            f"wind fractions need {len(WIND_DIRECTIONS)} directions, got {fractions.shape}"
        )
    if fk.any_negative(fractions):
        raise ValueError(
            "wind direction distribution has negative fractions: the input is malformed"
        )


def _smooth_inplace(arr: np.ndarray, pixel_size_deg: float) -> np.ndarray:
    """Gaussian blur of ``arr`` (float32, C-contiguous) in place, with OpenCV's σ-from-size
    rule and mirrored borders."""
    import cv2

    k = smoothing_kernel_size(pixel_size_deg)
    cv2.GaussianBlur(arr, (k, k), 0, dst=arr, borderType=cv2.BORDER_REFLECT_101)
    return arr


@dataclass(frozen=True)
class RegionPlan:
    """Where the fast path works (full-array windows): ``source`` is read, ``final`` (the
    region grown by the Gaussian radius) is smoothed; ``windows`` nests the 3 iterations."""

    source: tuple[int, int, int, int]
    final: tuple[int, int, int, int]
    windows: Windows


def smoothing_window(
    region: tuple[int, int, int, int], shape: tuple[int, int], pixel_size_deg: float
) -> tuple[int, int, int, int]:
    """The region grown by the Gaussian radius, clipped to the buffered arrays: the pixels
    whose composite reaches the clipped result (so the only wind fractions needed)."""
    g = smoothing_kernel_size(pixel_size_deg) // 2
    r0, r1, c0, c1 = region
    return max(r0 - g, 0), min(r1 + g, shape[0]), max(c0 - g, 0), min(c1 + g, shape[1])


def plan_region(inputs: RegionInputs, reach: tuple[int, int]) -> RegionPlan:
    """Trim to what the clipped result depends on: region + Gaussian radius + 3 kernel reaches."""
    from ocr_core import fast_kernels as fk

    final = smoothing_window(inputs.region, inputs.shape, inputs.pixel_size)
    source, win = fk.nested_windows(inputs.shape, final, SPREAD_ITERATIONS, reach)
    return RegionPlan(source, final, win)


def _fast_path_inputs(
    ks: KernelSet | None, filled: dict[str, np.ndarray]
) -> tuple[KernelSet, dict[str, float]]:
    """The packed kernels and each scenario's largest BP, once the fast kernel is known to
    apply: kernels of uniform-weight runs, BP without ±inf or negative values (the region's
    inputs are validated against the schema ranges before the kernel runs)."""
    from ocr_core import fast_kernels as fk

    if ks is None:
        raise ValueError("the wind kernels are not runs of one weight: check the pixel size")
    vmax = {}
    for scenario, values in filled.items():
        vmax[scenario], ok = fk.value_range(values)
        if not ok:
            raise ValueError(
                f"the {scenario} 270 m BP holds ±inf or negative values: the input is malformed"
            )
    return ks, vmax


def _check_wind_window(inputs: RegionInputs, final: tuple[int, int, int, int]) -> None:
    w0, w1, wc0, wc1 = inputs.wind_window or (0, inputs.shape[0], 0, inputs.shape[1])
    f0, f1, fc0, fc1 = final
    if not (w0 <= f0 and f1 <= w1 and wc0 <= fc0 and fc1 <= wc1):
        raise ValueError(
            f"wind window {inputs.wind_window} does not cover the composite window {final}"
        )


def region_wind_bp(
    inputs: RegionInputs, timings: dict[str, float] | None = None
) -> dict[str, np.ndarray]:
    """Wind-informed BP of both scenarios, clipped to the region (steps 2.1-3), adding
    per-stage and per-scenario wall times to ``timings``.

    Only the region plus the reach of the smoothing and of the 3 spreading iterations is
    computed (the pixel sizes still come from the centre of the full buffered arrays).
    """
    from ocr_core import fast_kernels as fk

    t: dict[str, float] = dict.fromkeys(
        ("checks", "gap_fill_reproject", "spread_composite", "smooth_clip"), 0.0
    )
    t0 = time.perf_counter()
    dx_m, dy_m = centre_pixel_sizes(inputs)
    kernels = make_kernels(dx_m, dy_m)
    check_fractions(inputs.wind)
    t1 = time.perf_counter()
    filled = {s: gap_fill(inputs.bp270[s]) for s in SCENARIO_YEARS}
    ks, vmax = _fast_path_inputs(kernel_set([kernels[d] for d in WIND_DIRECTIONS]), filled)
    plan = plan_region(inputs, ks.reach)
    idx = inputs.cell_index(plan.source)
    _check_wind_window(inputs, plan.final)
    w0, _, wc0, _ = inputs.wind_window or (0, inputs.shape[0], 0, inputs.shape[1])
    f0, f1, fc0, fc1 = plan.final
    wind = np.ascontiguousarray(inputs.wind, dtype=np.float32)
    t2 = time.perf_counter()
    t["checks"], t["gap_fill_reproject"] = t1 - t0, t2 - t1
    r0, r1, c0, c1 = inputs.region
    bp = {}
    combined = np.empty((f1 - f0, fc1 - fc0), dtype=np.float32)
    for scenario in SCENARIO_YEARS:
        t3 = time.perf_counter()
        fk.run_pipeline(
            ks,
            plan.windows,
            mode=fk.MODE_COMPOSITE,
            out=combined,
            idx=idx,
            flat=np.ascontiguousarray(filled[scenario], dtype=np.float32).ravel(),
            wind=wind,
            wind_origin=(f0 - w0, fc0 - wc0),
            vmax=vmax[scenario],
        )
        t4 = time.perf_counter()
        _smooth_inplace(combined, inputs.pixel_size)
        bp[scenario] = combined[r0 - f0 : r1 - f0, c0 - fc0 : c1 - fc0].copy()  # buffer reused
        t5 = time.perf_counter()
        t["spread_composite"] += t4 - t3
        t["smooth_clip"] += t5 - t4
        t[f"scenario {scenario} (spread, composite, smooth)"] = t5 - t3
    del idx, combined
    if timings is not None:
        timings.update(t)
    return bp
