"""Independent reference implementation of the per-region fire-risk method.

Written from the method as docs/method.md states it (not from ocr_core/risk.py), so that
tests can check production against it. It deliberately uses different machinery: float64
throughout, scipy.ndimage for filtering, an explicit loop for the gap-fill. The region oracle
gap-fills and reprojects as the method's steps 2.1-2.2 say the reference does: xarray on the
dask window, then odc-geo's ``xr_reproject(…, how=<geobox of the buffered 30 m window>,
resampling="nearest")``. Only the ``RegionInputs`` container (and ``full_wind``, which pads its
wind window to the buffered grid), the schema's names and the statement of step 2.3
(``normalized_spread``, run here with scipy's float64 correlation) are shared.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage
from straightforward_method import full_wind, normalized_spread

from ocr_core.schema import OUTPUT_VARIABLES, WIND_DIRECTIONS

R_EARTH_M = 6371e3
TAPS = 81
SEMI_A_M = 400.0
SEMI_B_M = 200.0
OFFSET_M = 110.0
EPS = 1e-11
N_ITER = 3
SMOOTH_RADIUS_M = 300.0
M_PER_DEG = 111000.0

# Ellipse centre (unit vector toward where the wind comes from) and whether A = a (True) or b.
_ELLIPSES = {
    "N": ((0.0, 1.0), False),
    "NE": ((1.0, 1.0), True),
    "E": ((1.0, 0.0), True),
    "SE": ((1.0, -1.0), False),
    "S": ((0.0, -1.0), False),
    "SW": ((-1.0, -1.0), True),
    "W": ((-1.0, 0.0), True),
    "NW": ((-1.0, 1.0), False),
}


def ref_haversine_m(lat1, lon1, lat2, lon2) -> float:
    """Great-circle distance in metres (R = 6371 km)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * R_EARTH_M * math.asin(math.sqrt(h))


def ref_pixel_sizes(lat: float, lon: float, res: float) -> tuple[float, float]:
    """(east-west, north-south) size in metres of one pixel step at (lat, lon)."""
    return ref_haversine_m(lat, lon, lat, lon + res), ref_haversine_m(lat, lon, lat + res, lon)


def ref_kernel(direction: str, dx_m: float, dy_m: float) -> np.ndarray:
    """81×81 ellipse-indicator kernel, rows = y (north up the index), divided by its sum."""
    steps = np.linspace(-41.0, 40.0, TAPS)  # quirk: -41..40, not symmetric about 0
    yy, xx = np.meshgrid(steps * dy_m, steps * dx_m, indexing="ij")
    (ux, uy), along_a = _ELLIPSES[direction]
    norm = math.sqrt(ux * ux + uy * uy)
    cx, cy = OFFSET_M * ux / norm, OFFSET_M * uy / norm
    big, small = (SEMI_A_M, SEMI_B_M) if along_a else (SEMI_B_M, SEMI_A_M)
    ddx, ddy = xx - cx, yy - cy
    if ux != 0 and uy != 0:
        inside = (ddx + ddy) ** 2 / (2 * big**2) + (ddy - ddx) ** 2 / (2 * small**2) <= 1
    else:
        inside = (ddx / big) ** 2 + (ddy / small) ** 2 <= 1
    ind = inside.astype(np.float64)
    return (ind / ind.sum()).astype(np.float32)


def ref_filter(arr: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Correlation (kernel not flipped), same size, mirror border (= BORDER_REFLECT_101).

    The kernel is cropped to the bounding box of its non-zero taps plus its centre tap, with
    ``origin`` keeping the centre in place: same sums, several times fewer operations.
    """
    k = np.asarray(kernel, dtype=np.float64)
    centre = np.array(k.shape) // 2
    rows, cols = np.nonzero(k)
    lo = np.minimum([rows.min(), cols.min()], centre)
    hi = np.maximum([rows.max(), cols.max()], centre)
    crop = k[lo[0] : hi[0] + 1, lo[1] : hi[1] + 1]
    origin = [int(centre[a] - lo[a] - crop.shape[a] // 2) for a in (0, 1)]  # one per axis
    return ndimage.correlate(
        np.asarray(arr, dtype=np.float64),
        crop,
        mode="mirror",
        origin=origin,  # pyright: ignore[reportArgumentType]
    )


def ref_spread(bp30: np.ndarray, kernel: np.ndarray, iterations: int = N_ITER) -> np.ndarray:
    """Iterated normalized convolution in float64 with ``ref_filter``; NaN restored where
    ``bp30`` was NaN."""
    return normalized_spread(bp30, kernel, iterations, ref_filter, np.float64)


def ref_composite(spread: dict[str, np.ndarray], fractions: np.ndarray) -> np.ndarray:
    """Σ_d spread_d × fraction_d / Σ_d fraction_d; NaN where the sum is 0 or has a NaN."""
    f = np.asarray(fractions, dtype=np.float64)
    if np.any(f < 0):
        raise ValueError("negative wind fractions")
    stack = np.stack([np.asarray(spread[d], dtype=np.float64) for d in WIND_DIRECTIONS], axis=-1)
    total = f.sum(axis=-1)  # NaN if any fraction is NaN
    bad = ~(total > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        weights = f / np.where(bad, 1.0, total)[..., None]
    comp = (stack * weights).sum(axis=-1)
    comp[bad] = np.nan
    return comp


def ref_gap_fill(bp: np.ndarray) -> np.ndarray:
    """Fill pixels not > 0 whose 4 edge neighbours are all > 0 with the NaN-skipping 3×3 mean.

    Decisions and means use the input values (not updated in place); array-edge pixels have no
    complete set of neighbours and are left as they are.
    """
    src = np.asarray(bp, dtype=np.float64)
    out = src.copy()
    ny, nx = src.shape
    for i in range(1, ny - 1):
        for j in range(1, nx - 1):
            if src[i, j] > 0:
                continue
            if not (
                src[i - 1, j] > 0 and src[i + 1, j] > 0 and src[i, j - 1] > 0 and src[i, j + 1] > 0
            ):
                continue
            win = src[i - 1 : i + 2, j - 1 : j + 2]
            vals = win[~np.isnan(win)]
            out[i, j] = vals.sum() / vals.size
    return out


def xr_gap_fill(bp):
    """Step 2.1 as the reference writes it in xarray: shift, centred rolling mean, where."""
    import xarray as xr

    valid = bp > 0
    four = (valid.shift(x=1) + valid.shift(x=-1) + valid.shift(y=1) + valid.shift(y=-1)) == 4
    fill = xr.where((valid == 0) & four, 1, 0)
    mean = bp.rolling({"x": 3, "y": 3}, center=True, min_periods=1).mean(skipna=True)
    return xr.where(fill, mean, bp)


def target_geobox(lat: np.ndarray, lon: np.ndarray):
    """odc-geo geobox of a latitude/longitude window (as of the reference's wind window)."""
    import xarray as xr
    from odc.geo.xr import assign_crs

    da = xr.DataArray(
        np.zeros((lat.size, lon.size), np.float32),
        dims=("latitude", "longitude"),
        coords={"latitude": lat, "longitude": lon},
    )
    return assign_crs(da, "EPSG:4326").odc.geobox


def ref_bp30(bp270, x270, y270, crs, chunks, lat, lon, gap_fill: bool = True) -> np.ndarray:
    """Steps 2.1-2.2: the 270 m window as a dask array with its store's chunks, gap-filled in
    xarray, reprojected with odc-geo's xr_reproject (nearest) onto the 30 m window."""
    import dask.array as dsa
    import xarray as xr
    from odc.geo.xr import assign_crs, xr_reproject

    src = xr.DataArray(
        dsa.from_array(np.asarray(bp270, np.float32), chunks=chunks or -1),  # pyright: ignore[reportArgumentType]
        dims=("y", "x"),
        coords={"y": y270, "x": x270},
    )
    filled = assign_crs(xr_gap_fill(src) if gap_fill else src, crs)
    return xr_reproject(filled, how=target_geobox(lat, lon), resampling="nearest").values


def ref_smoothing_size(pixel_size_deg: float) -> int:
    """Gaussian kernel size 2r + 1 with r = int(300 m / pixel height), at least 3."""
    r = int(SMOOTH_RADIUS_M / (abs(pixel_size_deg) * M_PER_DEG))
    return max(2 * r + 1, 3)


def ref_gaussian_1d(size: int) -> np.ndarray:
    """Normalized 1-D Gaussian with OpenCV's σ-from-size rule."""
    sigma = 0.3 * ((size - 1) * 0.5 - 1) + 0.8
    t = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(t**2) / (2 * sigma**2))
    return g / g.sum()


def ref_smooth(arr: np.ndarray, pixel_size_deg: float) -> np.ndarray:
    """Separable Gaussian smoothing, mirror border, float32 result."""
    g = ref_gaussian_1d(ref_smoothing_size(pixel_size_deg))
    a = np.asarray(arr, dtype=np.float64)
    a = ndimage.correlate1d(a, g, axis=0, mode="mirror")
    a = ndimage.correlate1d(a, g, axis=1, mode="mirror")
    return a.astype(np.float32)


def ref_wind_bp(
    bp30: np.ndarray, fractions: np.ndarray, dx_m: float, dy_m: float, pixel_size_deg: float
) -> np.ndarray:
    """Steps 2.3-2.6 for one scenario on the buffered grid."""
    spread = {d: ref_spread(bp30, ref_kernel(d, dx_m, dy_m)) for d in WIND_DIRECTIONS}
    comp = ref_composite(spread, fractions)
    combined = np.where(bp30 == 0, comp, bp30)
    return ref_smooth(combined, pixel_size_deg)


def ref_centre_pixel_sizes(inputs) -> tuple[float, float]:
    """Pixel sizes at the centre pixel (ny//2, nx//2) of the buffered region."""
    lat_c = float(inputs.lat[len(inputs.lat) // 2])
    lon_c = float(inputs.lon[len(inputs.lon) // 2])
    return ref_pixel_sizes(lat_c, lon_c, inputs.pixel_size)


def reference_region_risk(inputs) -> dict[str, np.ndarray]:
    """All 8 output variables for one region (float32, clipped to ``inputs.region``)."""
    r0, r1, c0, c1 = inputs.region
    dx, dy = ref_centre_pixel_sizes(inputs)
    crps = np.asarray(inputs.crps, dtype=np.float32)
    bp = {}
    for scen in ("2011", "2047"):
        bp30 = ref_bp30(
            inputs.bp270[scen],
            inputs.x270,
            inputs.y270,
            inputs.crs270,
            inputs.chunks270,
            inputs.lat,
            inputs.lon,
        )
        full = ref_wind_bp(bp30, full_wind(inputs), dx, dy, inputs.pixel_size)
        bp[scen] = full[r0:r1, c0:c1].astype(np.float32)
    out = {
        "rps_scott": np.asarray(inputs.rps, dtype=np.float32),
        "rps_2011": (bp["2011"] * crps).astype(np.float32),
        "rps_2047": (bp["2047"] * crps).astype(np.float32),
        "bp_2011": bp["2011"],
        "bp_2047": bp["2047"],
        "crps_scott": crps,
        "bp_2011_riley": np.asarray(inputs.riley30["2011"], dtype=np.float32),
        "bp_2047_riley": np.asarray(inputs.riley30["2047"], dtype=np.float32),
    }
    return {name: out[name] for name in OUTPUT_VARIABLES}
