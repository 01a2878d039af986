"""The reference's region calculation, step by step, on the stores: the end-to-end oracle.

It reads the input stores lazily with their own chunking (dask), selects the windows by label
as the reference does (the 30 m windows with ``.sel``; the 270 m window as the pixel centres
inside the box spanned by the buffered box's 4 projected corners), gap-fills with xarray
(shift, centred rolling mean, where), reprojects with odc-geo's ``xr_reproject(…, how=<geobox
of the buffered wind window>, resampling="nearest")`` — the method's step 2.2 — and runs steps
2.3-2.6 in float64 with FFT correlations over mirrored padding (fast enough for whole test
regions) and the kernels, composite and smoothing of ``reference_method``. It shares nothing
with the production loader or kernels.
"""

from __future__ import annotations

import numpy as np
import reference_method as R
import xarray as xr
from odc.geo.xr import assign_crs, xr_reproject
from pyproj import CRS, Transformer

from ocr_core.schema import WIND_DIRECTIONS


def open_store(catalog, name: str) -> xr.Dataset:
    """A catalog store as the reference opens it: icechunk, read-only, the store's chunks."""
    import icechunk

    repo = icechunk.Repository.open(catalog.storage.icechunk_storage(catalog.uri(name)))
    store = repo.readonly_session("main").store
    return xr.open_zarr(store, consolidated=False, chunks={})  # pyright: ignore[reportArgumentType]


def geo_sel_bbox(ds: xr.Dataset, bbox, crs_wkt: str) -> xr.Dataset:
    """Cells whose centres lie inside the projected bounding box of the lon/lat box's corners."""
    west, south, east, north = bbox
    fwd = Transformer.from_crs(CRS.from_epsg(4326), CRS.from_wkt(crs_wkt), always_xy=True)
    xs, ys = zip(
        *[
            fwd.transform(lon, lat)
            for lon, lat in ((west, south), (east, south), (east, north), (west, north))
        ],
        strict=True,
    )
    x_slice = slice(min(xs), max(xs)) if ds.x[0] < ds.x[-1] else slice(max(xs), min(xs))
    y_slice = slice(min(ys), max(ys)) if ds.y[0] < ds.y[-1] else slice(max(ys), min(ys))
    return ds.sel(x=x_slice, y=y_slice)


def fft_correlate(arr: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Same-size correlation, borders mirrored without the edge pixel (numpy's 'reflect')."""
    from scipy.signal import fftconvolve

    k = np.asarray(kernel, dtype=np.float64)
    ry, rx = k.shape[0] // 2, k.shape[1] // 2
    padded = np.pad(np.asarray(arr, dtype=np.float64), ((ry, ry), (rx, rx)), mode="reflect")
    return fftconvolve(padded, k[::-1, ::-1], mode="valid")


def fft_wind_bp(bp30, fractions, dx: float, dy: float, pixel_size: float) -> np.ndarray:
    """Steps 2.3-2.6: iterated normalized correlation per direction, composite, smoothing."""
    spread = {}
    for d in WIND_DIRECTIONS:
        k = R.ref_kernel(d, dx, dy)
        arr = np.nan_to_num(np.asarray(bp30, dtype=np.float64), nan=0.0)
        for _ in range(R.N_ITER):
            m = fft_correlate((arr > 0).astype(np.float64), k)
            m[m < R.EPS] = 0.0
            c = fft_correlate(arr, k)
            c[c < R.EPS] = 0.0
            arr = np.divide(c, m, out=np.zeros_like(arr), where=m > 0)
        arr[np.isnan(bp30)] = np.nan
        spread[d] = arr
    comp = R.ref_composite(spread, fractions)
    return R.ref_smooth(np.where(bp30 == 0, comp, bp30), pixel_size)


def reference_region_from_stores(catalog, grid, region_id: str) -> dict[str, np.ndarray]:
    """The 8 output variables of one region, computed as the reference computes them."""
    lon_min, lat_min, lon_max, lat_max = grid.region_bounds(region_id)
    buf = grid.buffer_deg
    ys, xs = slice(lat_min, lat_max), slice(lon_min, lon_max)
    bys, bxs = slice(lat_min - buf, lat_max + buf), slice(lon_min - buf, lon_max + buf)
    wind = (
        open_store(catalog, "conus404-ffwi-p99-wind-direction-distribution-30m-4326")
        .wind_direction_distribution.sel(latitude=bys, longitude=bxs)
        .load()
    )
    wind = assign_crs(wind, "EPSG:4326")
    fractions = wind.transpose("latitude", "longitude", "wind_direction").values
    lat, lon = wind.latitude.values, wind.longitude.values
    dx, dy = R.ref_pixel_sizes(
        float(lat[lat.size // 2]), float(lon[lon.size // 2]), grid.pixel_size
    )
    bp = {}
    for scenario in ("2011", "2047"):
        riley = open_store(catalog, f"riley-et-al-2025-{scenario}-270m-5070")[["BP", "spatial_ref"]]
        wkt = riley.spatial_ref.attrs["crs_wkt"]
        riley = assign_crs(riley, "EPSG:5070")
        subset = geo_sel_bbox(riley, (bxs.start, bys.start, bxs.stop, bys.stop), wkt)
        filled = assign_crs(R.xr_gap_fill(subset["BP"]), "EPSG:5070")
        bp30 = xr_reproject(filled, how=wind.odc.geobox, resampling="nearest").values
        full = fft_wind_bp(bp30, fractions, dx, dy, grid.pixel_size)
        da = xr.DataArray(
            full, dims=("latitude", "longitude"), coords={"latitude": lat, "longitude": lon}
        )
        bp[scenario] = da.sel(latitude=ys, longitude=xs).values.astype(np.float32)
    scott = open_store(catalog, "scott-et-al-2024-30m-4326").sel(latitude=ys, longitude=xs)
    crps = scott["CRPS"].values.astype(np.float32)
    riley30 = {
        s: open_store(catalog, f"riley-et-al-2025-{s}-30m-4326")["BP"]
        .sel(latitude=ys, longitude=xs)
        .values.astype(np.float32)
        for s in ("2011", "2047")
    }
    return {
        "rps_scott": scott["RPS"].values.astype(np.float32),
        "rps_2011": bp["2011"] * crps,
        "rps_2047": bp["2047"] * crps,
        "bp_2011": bp["2011"],
        "bp_2047": bp["2047"],
        "crps_scott": crps,
        "bp_2011_riley": riley30["2011"],
        "bp_2047_riley": riley30["2047"],
    }
