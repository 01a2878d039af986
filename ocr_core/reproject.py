"""Step 2.2 of the method: the 270 m EPSG:5070 BP onto the 30 m grid, cell for cell as GDAL.

The reference reprojects with odc-geo's ``xr_reproject(bp, how=<geobox of the buffered 30 m
wind window>, resampling="nearest")``. That is rasterio/GDAL's warper, whose approximate
transformer interpolates the pixel → source mapping along destination scanlines, and odc-geo
warps a dask source tile by tile: destination tiles the size of the source's dask chunks, which
come from the store's chunking cut by the 270 m window. So which 270 m cell a 30 m pixel takes
depends on the source window, its chunks and the destination window, not only on geometry.

The reference gap-fills with xarray (shifts, a centred rolling mean, ``where``) on the dask
window, which refines its chunks: ``gap_filled_chunks`` derives the chunks that reach the warp.
``nearest_cell_index`` runs that same call once per region on an array of source cell numbers:
the result names, for every destination pixel, the cell GDAL copies — for any data on that
source grid, so both scenarios share it. ``source_window`` selects the 270 m cells as the
reference does (centres inside the box spanned by the buffered box's 4 projected corners).
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np

MAX_CELLS = 2**24  # cell numbers travel as float32 (GDAL sees BP's dtype): exact below this


def label_window(coords: np.ndarray, lo: float, hi: float) -> tuple[int, int]:
    """Index range [i0, i1) of the coordinates in [lo, hi], as xarray's label slicing (either
    order of the axis)."""
    c = np.asarray(coords, dtype=np.float64)
    if c.size > 1 and c[0] > c[-1]:
        n = c.size
        i0, i1 = label_window(c[::-1], lo, hi)
        return n - i1, n - i0
    return int(np.searchsorted(c, lo, side="left")), int(np.searchsorted(c, hi, side="right"))


def source_window(
    x: np.ndarray, y: np.ndarray, crs: str, bbox: tuple[float, float, float, float]
) -> tuple[int, int, int, int]:
    """(i0, i1, j0, j1): the projected cells the reference reads for a (west, south, east,
    north) lon/lat box — centres inside the bounding box of its 4 projected corners.

    The corners alone bound less than the whole box (a parallel bows between its corners in
    Albers): the reference's reprojected window has NaN corners because of it, and so does ours.
    """
    from pyproj import CRS, Transformer

    west, south, east, north = bbox
    fwd = Transformer.from_crs(CRS.from_epsg(4326), CRS.from_user_input(crs), always_xy=True)
    xs, ys = fwd.transform([west, east, east, west], [south, south, north, north])
    j0, j1 = label_window(x, min(xs), max(xs))
    i0, i1 = label_window(y, min(ys), max(ys))
    return i0, i1, j0, j1


def window_chunks(start: int, stop: int, chunk: int) -> tuple[int, ...]:
    """Dask chunk sizes of the slice [start, stop) of an axis stored in chunks of ``chunk``."""
    if stop <= start:
        return ()
    edges = [start, *range((start // chunk + 1) * chunk, stop, chunk), stop]
    return tuple(b - a for a, b in itertools.pairwise(edges))


def gap_filled_chunks(
    chunks: tuple[tuple[int, ...], tuple[int, ...]],
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Chunks of the reference's gap-filled window, from its store chunks: the same xarray
    operations on an uncomputed dask array (the chunk algebra is dask's and xarray's)."""
    import dask.array as da
    import xarray as xr

    shape = tuple(sum(c) for c in chunks)
    bp = xr.DataArray(da.zeros(shape, dtype=np.float32, chunks=chunks), dims=("y", "x"))
    valid = bp > 0
    four = (valid.shift(x=1) + valid.shift(x=-1) + valid.shift(y=1) + valid.shift(y=-1)) == 4
    fill = xr.where((valid == 0) & four, 1, 0)
    mean = bp.rolling({"x": 3, "y": 3}, center=True, min_periods=1).mean(skipna=True)
    out = xr.where(fill, mean, bp).chunks
    assert out is not None
    return out[0], out[1]


def nearest_cell_index(
    src_x: np.ndarray,
    src_y: np.ndarray,
    src_crs: str,
    src_chunks: tuple[tuple[int, ...], tuple[int, ...]] | None,
    dst_lat: np.ndarray,
    dst_lon: np.ndarray,
    window: tuple[int, int, int, int] | None = None,
    pixel_size: float | None = None,
) -> np.ndarray:
    """Flat source index (row × n_x + col, int32; -1 = none) GDAL's nearest warp gives each
    destination pixel, for ``window`` (r0, r1, c0, c1) of the destination (default: all).

    The destination is the geobox of the (dst_lat, dst_lon) pixel centres, tiled as odc-geo
    tiles it; only the tiles meeting ``window`` are warped.
    """
    import dask.array as da
    import dask.config
    import xarray as xr
    from odc.geo.geobox import GeoBox
    from odc.geo.math import affine_from_axis
    from odc.geo.xr import assign_crs, xr_reproject
    from rasterio.errors import NotGeoreferencedWarning

    ny, nx = len(src_y), len(src_x)
    if ny * nx >= MAX_CELLS:
        raise ValueError(f"270 m window of {ny} × {nx} cells is too large to number in float32")
    cells = np.arange(ny * nx, dtype=np.float32).reshape(ny, nx)
    chunks = src_chunks or ((ny,), (nx,))
    src = assign_crs(
        xr.DataArray(
            da.from_array(cells, chunks=chunks),  # pyright: ignore[reportArgumentType]
            dims=("y", "x"),
            coords={"y": np.asarray(src_y), "x": np.asarray(src_x)},
        ),
        src_crs,
    )
    # the geobox odc-geo derives from the window's coordinates (first two of each axis); the
    # pixel size stands in for an axis of one pixel
    res = pixel_size if pixel_size is not None else abs(float(dst_lat[1] - dst_lat[0]))
    target = GeoBox(
        (len(dst_lat), len(dst_lon)),
        affine_from_axis(np.asarray(dst_lon), np.asarray(dst_lat), res),
        "EPSG:4326",
    )
    warped = xr_reproject(src, how=target, resampling="nearest").data
    r0, r1, c0, c1 = window or (0, len(dst_lat), 0, len(dst_lon))
    _rasterio_without_cloud_sessions()
    with dask.config.set(scheduler="threads"), warnings.catch_warnings():
        # rasterio flags its in-memory datasets, georeferenced by the transforms passed in
        warnings.filterwarnings("ignore", category=NotGeoreferencedWarning)
        values = warped[r0:r1, c0:c1].compute()
    return np.where(np.isnan(values), np.float32(-1), values).astype(np.int32)


def _rasterio_without_cloud_sessions() -> None:
    """Stop rasterio building a boto3 session for every warp call.

    With AWS credentials in the environment, each ``rasterio.warp.reproject`` (one per
    destination tile) opens a GDAL environment with a new boto3 session, ~70 ms each. This
    project never reads files through rasterio — it only warps arrays in memory — so rasterio's
    cloud sessions are switched off for the process (S3 access goes through s3fs/icechunk).
    """
    import rasterio.session

    rasterio.session.boto3 = None


def take_cells(values: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``values`` (the source window) at each pixel's cell; NaN where the index is -1."""
    flat = np.asarray(values, dtype=np.float32).ravel()
    out = flat[np.maximum(index, 0)]
    out[index < 0] = np.nan
    return out
