"""Small raster input stores written the way the real OCR stores are, for end-to-end tests.

Layouts follow the reference's ingestion: 30 m EPSG:4326 stores with latitude ascending, root
attributes ``EPSG``/``resolution`` and an odc-style ``spatial_ref`` coordinate; 270 m EPSG:5070
stores as rasterio opens a GeoTIFF then ``sortby(['y', 'x'])`` (dims ``y``/``x`` ascending, a
``spatial_ref`` coordinate with ``crs_wkt``, extra variables, no root CRS attribute); the
wind store with dims (latitude, longitude, wind_direction). Fields have what real inputs
have and simple tests miss: tilted NaN coasts, zero patches, isolated holes the gap-fill
fills, NaN holes, all-zero wind pixels, and a 270 m extent that can stop inside a region's
buffer. Chunks are small so the 270 m window straddles chunk boundaries.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr
from pyproj import CRS, Transformer
from scipy import ndimage

from ocr_core.demo import domain_axes
from ocr_core.demo.wind import WIND_QUANTUM
from ocr_core.grid import CONUS_PIXEL_SIZE, Grid
from ocr_core.schema import RILEY_30M, RILEY_270M, SCENARIO_YEARS, SCOTT_2024, WIND_VARIABLE
from ocr_core.schema import WIND_DISTRIBUTION as WIND

CHUNKS_30M = (250, 190)
CHUNKS_270M = (41, 37)


@dataclass(frozen=True)
class Scene:
    grid: Grid
    lat: np.ndarray  # 30 m domain pixel centres
    lon: np.ndarray
    x: np.ndarray  # 270 m cell centres (ascending)
    y: np.ndarray


def test_grid(name: str, lat0: float, lon0: float, rows: int = 360, cols: int = 300) -> Grid:
    """A 2 × 2-region grid of CONUS-sized pixels with a 0.05° buffer at (lat0, lon0)."""
    return Grid(
        name=name,
        pixel_size=CONUS_PIXEL_SIZE,
        lon0=lon0,
        lat0=lat0,
        n_lat=2 * rows,
        n_lon=2 * cols,
        chunk_lat=rows,
        chunk_lon=cols,
        buffer_deg=0.05,
        valid_ids_file="",
        valid_ids=("y0_x0", "y0_x1", "y1_x0", "y1_x1"),
    )


def _scene(grid: Grid, riley_east_cut_deg: float | None) -> Scene:
    lat, lon = domain_axes(grid)  # the demo rasters' extent
    fwd = Transformer.from_crs("EPSG:4326", "EPSG:5070", always_xy=True)
    bx, by = fwd.transform(
        np.concatenate([lon, lon, np.full(lat.size, lon[0]), np.full(lat.size, lon[-1])]),
        np.concatenate([np.full(lon.size, lat[0]), np.full(lon.size, lat[-1]), lat, lat]),
    )
    x_stop = bx.max() + 4 * 270
    if riley_east_cut_deg is not None:  # the 270 m data ends inside the eastern buffer
        east = grid.lon_edge(grid.n_lon) - riley_east_cut_deg
        x_stop = min(fwd.transform(east, lat[lat.size // 2])[0], x_stop)
    x = np.arange(np.floor(bx.min() / 270) - 4, np.floor(x_stop / 270)) * 270 + 150.0
    y = np.arange(np.floor(by.min() / 270) - 4, np.ceil(by.max() / 270) + 4) * 270 + 120.0
    return Scene(grid, lat, lon, x, y)


def _smooth_field(rng, shape, sigma: float) -> np.ndarray:
    f = ndimage.gaussian_filter(rng.standard_normal(shape), sigma)
    return (f - f.min()) / (f.max() - f.min())


def _tilted_coast(lat2, lon2, grid: Grid, slope: float, frac: float) -> np.ndarray:
    """True north-west of a tilted line: the 'ocean'."""
    lat_c = grid.lat0 + frac * grid.n_lat * grid.pixel_size
    lon_c = grid.lon0 + 0.25 * grid.n_lon * grid.pixel_size
    return (lat2 - lat_c) - slope * (lon2 - lon_c) > 0


def _attrs_4326(title: str) -> dict:
    return {
        "title": title,
        "version": "test",
        "EPSG": "4326",
        "resolution": "30m",
    }


def _spatial_ref(epsg: int) -> xr.DataArray:
    wkt = CRS.from_epsg(epsg).to_wkt()
    return xr.DataArray(np.int32(0), attrs={"crs_wkt": wkt, "spatial_ref": wkt})


def _commit(catalog, name: str, ds: xr.Dataset, chunks: tuple[int, ...]) -> None:
    import icechunk

    encoding = {
        v: {
            "chunks": tuple(min(c, s) for c, s in zip(chunks + da.shape[2:], da.shape, strict=True))
        }
        for v, da in ds.data_vars.items()
    }
    repo = icechunk.Repository.create(catalog.storage.icechunk_storage(catalog.uri(name)))
    session = repo.writable_session("main")
    ds.to_zarr(session.store, zarr_format=3, consolidated=False, mode="w", encoding=encoding)
    session.commit(f"test inputs: {name}")


def _wind(rng, shape, ocean) -> np.ndarray:
    """Fractions that are multiples of 2^-12 summing to exactly 1; all-zero patches; NaN sea."""
    raw = rng.dirichlet(np.full(8, 0.6), size=shape)
    q = np.floor(raw / WIND_QUANTUM) * WIND_QUANTUM
    rest = 1.0 - q.sum(axis=-1)
    top = q.argmax(axis=-1)
    np.put_along_axis(
        q, top[..., None], np.take_along_axis(q, top[..., None], -1) + rest[..., None], -1
    )
    calm = _smooth_field(rng, shape, 6.0) > 0.86  # no fire-weather hours: all zero
    q[calm] = 0.0
    q[ocean] = np.nan
    return q.astype(np.float32)


def write_raster_stores(
    catalog,
    grid: Grid,
    seed: int = 0,
    riley_east_cut_deg: float | None = None,
    chunks_270m: tuple[int, int] = CHUNKS_270M,
) -> Scene:
    """Write the six raster inputs of ``grid`` under the catalog root; returns their scene."""
    rng = np.random.default_rng(seed)
    sc = _scene(grid, riley_east_cut_deg)
    lon2, lat2 = np.meshgrid(sc.lon, sc.lat)
    shape = lat2.shape
    ocean = _tilted_coast(lat2, lon2, grid, slope=0.6, frac=0.8)
    coords = {"latitude": sc.lat, "longitude": sc.lon, "spatial_ref": _spatial_ref(4326)}

    def layer(scale, sigma=4.0, zero_cut=None):
        f = _smooth_field(rng, shape, sigma) * scale
        if zero_cut is not None:
            f[f < zero_cut * scale] = 0.0
        f[ocean] = np.nan
        return (("latitude", "longitude"), f.astype(np.float32))

    scott = xr.Dataset(
        {"BP": layer(0.08, zero_cut=0.3), "CRPS": layer(100.0), "RPS": layer(6.0, zero_cut=0.3)},
        coords=coords,
    )
    scott.attrs = _attrs_4326("Scott et al. 2024 (test)")
    _commit(catalog, SCOTT_2024, scott, CHUNKS_30M)
    for scenario in SCENARIO_YEARS:
        riley = xr.Dataset({"BP": layer(0.07, zero_cut=0.25)}, coords=coords)
        riley.attrs = _attrs_4326(f"Riley et al. 2025 {scenario} (test)")
        _commit(catalog, RILEY_30M[scenario], riley, CHUNKS_30M)
    wind = xr.Dataset(
        {
            WIND_VARIABLE: (
                ("latitude", "longitude", "wind_direction"),
                _wind(rng, shape, ocean),
            )
        },
        coords={**coords, "quantile": 0.99},
    )
    wind.attrs = {"reprojected_to": SCOTT_2024}
    _commit(catalog, WIND, wind, CHUNKS_30M)
    _write_270m(catalog, sc, rng, chunks_270m)
    return sc


def _write_270m(catalog, sc: Scene, rng, chunks: tuple[int, int]) -> None:
    x2, y2 = np.meshgrid(sc.x, sc.y)
    lon2, lat2 = Transformer.from_crs("EPSG:5070", "EPSG:4326", always_xy=True).transform(x2, y2)
    sea = _tilted_coast(lat2, lon2, sc.grid, slope=0.45, frac=0.78)
    for k, scenario in enumerate(SCENARIO_YEARS):
        f = _smooth_field(rng, x2.shape, 2.5)
        bp = np.where(f > 0.35, 0.0004 + 0.07 * (f - 0.35) * (1 + 0.3 * k), 0.0)
        holes = (rng.random(bp.shape) < 0.02) & (bp > 0)
        bp[holes] = 0.0  # isolated holes: the gap-fill fills those with 4 positive neighbours
        bp[(rng.random(bp.shape) < 0.01) & (bp > 0)] = np.nan  # NaN holes (unburnable)
        bp[sea] = np.nan
        ds = xr.Dataset(
            {
                "BP": (("y", "x"), bp.astype(np.float32)),
                "FLP1": (("y", "x"), (rng.random(bp.shape) * 0.1).astype(np.float32)),
            },
            coords={"y": sc.y, "x": sc.x, "spatial_ref": _spatial_ref(5070)},
        )
        _commit(catalog, RILEY_270M[scenario], ds, chunks)
