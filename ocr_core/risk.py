"""The per-region wind-informed fire-risk method (fire-risk-method.md), as pure numpy functions.

Everything here works on in-memory arrays on the 30 m EPSG:4326 grid, latitude ascending
(row 0 = south). Quirks of the reference method are reproduced on purpose and marked "quirk".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

DIRECTIONS = ("N", "NE", "E", "SE", "S", "SW", "W", "NW")
OUTPUT_VARIABLES = (
    "rps_scott",
    "rps_2011",
    "rps_2047",
    "bp_2011",
    "bp_2047",
    "crps_scott",
    "bp_2011_riley",
    "bp_2047_riley",
)
UNITS = {
    "rps_scott": "percent",
    "rps_2011": "percent",
    "rps_2047": "percent",
    "crps_scott": "percent",
    "bp_2011": "1 (annual probability)",
    "bp_2047": "1 (annual probability)",
    "bp_2011_riley": "1 (annual probability)",
    "bp_2047_riley": "1 (annual probability)",
}
SCENARIOS = ("2011", "2047")

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
        raise ValueError(f"unknown wind direction {direction!r}; use one of {DIRECTIONS}") from None


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
    return {d: make_kernel(d, dx_m, dy_m) for d in DIRECTIONS}


def correlate(arr: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Same-size correlation (kernel not flipped), borders mirrored without the edge pixel."""
    import cv2

    return cv2.filter2D(
        np.ascontiguousarray(arr, dtype=np.float32), -1, kernel, borderType=cv2.BORDER_REFLECT_101
    )


def directional_spread(
    bp30: np.ndarray, kernel: np.ndarray, iterations: int = SPREAD_ITERATIONS
) -> np.ndarray:
    """Normalized convolution of BP with one direction's kernel, iterated.

    Zeros do not dilute the spread: each step averages only pixels with BP > 0. NaN in the
    input counts as 0 while spreading and is put back at the end.
    """
    arr = np.nan_to_num(bp30.astype(np.float32, copy=False), nan=0.0)
    for _ in range(iterations):
        valid = (arr > 0).astype(np.float32)
        m = correlate(valid, kernel)
        m[m < SPREAD_EPS] = 0
        c = correlate(arr, kernel)
        c[c < SPREAD_EPS] = 0
        out = np.zeros_like(arr)
        np.divide(c, m, out=out, where=m > 0)
        arr = out
    arr[np.isnan(bp30)] = np.nan
    return arr


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


def reproject_nearest(
    src: np.ndarray,
    src_x: np.ndarray,
    src_y: np.ndarray,
    src_crs: str,
    dst_lat: np.ndarray,
    dst_lon: np.ndarray,
) -> np.ndarray:
    """Nearest-neighbour resampling of a projected raster onto lat/lon pixel centres.

    ``src_x``/``src_y`` are the source pixel-centre coordinates (regular, either order);
    target pixels outside the source get NaN.
    """
    from pyproj import Transformer

    transformer = Transformer.from_crs("EPSG:4326", src_crs, always_xy=True)
    lon2d, lat2d = np.meshgrid(dst_lon, dst_lat)
    x, y = transformer.transform(lon2d, lat2d)
    col = np.rint((x - src_x[0]) / (src_x[1] - src_x[0])).astype(np.int64)
    row = np.rint((y - src_y[0]) / (src_y[1] - src_y[0])).astype(np.int64)
    inside = (col >= 0) & (col < src.shape[1]) & (row >= 0) & (row < src.shape[0])
    out = np.full(lon2d.shape, np.nan, dtype=np.float32)
    out[inside] = src[row[inside], col[inside]]
    return out


def weighted_composite(spread: dict[str, np.ndarray], fractions: np.ndarray) -> np.ndarray:
    """Σ_d spread_d × f_d / Σ f, per pixel; NaN where the fractions sum to 0 or hold NaN.

    ``fractions`` has shape (rows, cols, 8) in DIRECTIONS order.
    """
    if fractions.shape[-1] != len(DIRECTIONS):
        raise ValueError(f"wind fractions need {len(DIRECTIONS)} directions, got {fractions.shape}")
    if np.any(fractions < 0):
        raise ValueError(
            "wind direction distribution has negative fractions: the input is malformed"
        )
    total = fractions.sum(axis=-1, dtype=np.float32)
    bad = ~(total > 0)  # also true where any fraction is NaN
    acc = np.zeros(fractions.shape[:2], dtype=np.float32)
    for i, d in enumerate(DIRECTIONS):
        acc += spread[d] * fractions[..., i]
    with np.errstate(invalid="ignore", divide="ignore"):
        out = acc / np.where(bad, np.float32(1), total)
    out[bad] = np.nan
    return out


def smoothing_kernel_size(pixel_size_deg: float) -> int:
    """Odd Gaussian kernel size 2r + 1 for a 300 m radius (r at least 1)."""
    r = int(SMOOTHING_RADIUS_M / (abs(pixel_size_deg) * METRES_PER_DEGREE_LAT))
    return 2 * max(r, 1) + 1


def smooth(arr: np.ndarray, pixel_size_deg: float) -> np.ndarray:
    """Gaussian blur with OpenCV's σ-from-size rule and mirrored borders (float32)."""
    import cv2

    k = smoothing_kernel_size(pixel_size_deg)
    return cv2.GaussianBlur(
        np.ascontiguousarray(arr, dtype=np.float32), (k, k), 0, borderType=cv2.BORDER_REFLECT_101
    )


def wind_informed_bp(
    bp30: np.ndarray, fractions: np.ndarray, dx_m: float, dy_m: float, pixel_size_deg: float
) -> np.ndarray:
    """Steps 2.3-2.6: spread BP in 8 directions, weight by wind, fill zeros, smooth."""
    kernels = make_kernels(dx_m, dy_m)
    spread = {d: directional_spread(bp30, kernels[d]) for d in DIRECTIONS}
    composite = weighted_composite(spread, fractions)
    combined = np.where(bp30 == 0, composite, bp30).astype(np.float32)
    return smooth(combined, pixel_size_deg)


@dataclass
class RegionInputs:
    """Everything the method needs for one region, already cut from the input stores.

    Buffered arrays cover the region plus the buffer; ``region`` is the (row_start, row_stop,
    col_start, col_stop) of the region inside them. Reference variables cover the region only.
    """

    lat: np.ndarray  # buffered pixel-centre latitudes, ascending
    lon: np.ndarray  # buffered pixel-centre longitudes
    region: tuple[int, int, int, int]
    wind: np.ndarray  # (rows, cols, 8) buffered wind direction fractions
    bp270: dict[str, np.ndarray]  # scenario -> 270 m BP window (y, x)
    x270: np.ndarray
    y270: np.ndarray
    crs270: str
    crps: np.ndarray  # region only
    rps: np.ndarray  # region only
    riley30: dict[str, np.ndarray]  # scenario -> region-only 30 m Riley BP
    pixel_size: float


def scenario_bp30(inputs: RegionInputs, scenario: str) -> np.ndarray:
    """Gap-filled 270 m BP resampled (nearest) onto the buffered 30 m grid."""
    filled = gap_fill(inputs.bp270[scenario])
    return reproject_nearest(
        filled, inputs.x270, inputs.y270, inputs.crs270, inputs.lat, inputs.lon
    )


def compute_region_risk(inputs: RegionInputs) -> dict[str, np.ndarray]:
    """The 8 float32 output variables of one region, clipped to the unbuffered region."""
    ny, nx = inputs.lat.size, inputs.lon.size
    dx_m, dy_m = pixel_sizes_m(
        float(inputs.lat[ny // 2]), float(inputs.lon[nx // 2]), inputs.pixel_size
    )
    r0, r1, c0, c1 = inputs.region
    out: dict[str, np.ndarray] = {}
    for scenario in SCENARIOS:
        bp30 = scenario_bp30(inputs, scenario)
        bp = wind_informed_bp(bp30, inputs.wind, dx_m, dy_m, inputs.pixel_size)
        out[f"bp_{scenario}"] = np.ascontiguousarray(bp[r0:r1, c0:c1])
    crps = inputs.crps.astype(np.float32)
    result = {
        "rps_scott": inputs.rps.astype(np.float32),
        "rps_2011": out["bp_2011"] * crps,
        "rps_2047": out["bp_2047"] * crps,
        "bp_2011": out["bp_2011"],
        "bp_2047": out["bp_2047"],
        "crps_scott": crps,
        "bp_2011_riley": inputs.riley30["2011"].astype(np.float32),
        "bp_2047_riley": inputs.riley30["2047"].astype(np.float32),
    }
    return {k: result[k] for k in OUTPUT_VARIABLES}
