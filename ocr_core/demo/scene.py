"""The demo landscape of a grid and seed: where every layer is evaluated, the land, the places,
the noise fields and the towns, lakes and rock patches, shared by every writer (cached)."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ocr_core.demo.geo import ALBERS_CRS, ALBERS_RES_M, LonLatBox
from ocr_core.demo.masks import place_blobs
from ocr_core.demo.noise import Noise, make_noise, rng
from ocr_core.demo.sources import census_layer, places
from ocr_core.schema import WIND_DIRECTIONS

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import shapely

    from ocr_core.grid import Grid

DOMAIN_EXTRA_PX = 8  # the 30 m rasters cover the grid grown by buffer_pixels + this
MAX_DOMAIN_PIXELS = 40_000_000  # demo data is for small grids only
ALBERS_MARGIN_PX = 4  # 270 m pixels beyond the projected bbox of the 30 m domain
BOX_MARGIN_DEG = 0.02  # the evaluation box reaches this far beyond every evaluated point
PEOPLE_PER_KM2 = 3500.0  # town density: a place's built-up area is population / this
# Noise fields: name → lattice spacing in 30 m pixels.
NOISE_SPACING_PX = {
    **{"u400": 400, "u120": 120, "u40": 40, "u12": 12},  # fuel / terrain
    **{"c200": 200, "c40": 40, "c12": 12},  # fire intensity (CRPS)
    **{"r150": 150, "r30": 30},  # Riley's own variation
    "f300": 300,  # 2047 / 2011 factor
    "wobble": 40,  # irregular town edges
    **{f"wind_{d}": 130 for d in WIND_DIRECTIONS},  # ~4 km, like CONUS404
}


@dataclass(eq=False)
class Scene:
    """Geography and seeded random structure shared by the three writers (cached per seed)."""

    grid: Grid
    seed: int
    pad: int  # 30 m domain = grid grown by this many pixels on every side
    lat: np.ndarray  # 30 m domain pixel centres, ascending
    lon: np.ndarray
    albers_x: np.ndarray  # 270 m pixel centres, x ascending, y descending
    albers_y: np.ndarray
    box: LonLatBox  # lon/lat box holding every evaluation point
    domain_bounds: LonLatBox  # pixel edges of the 30 m domain
    land: shapely.Geometry  # states ∩ box (prepared)
    invalid_regions: np.ndarray  # (n_rows, n_cols) bool: regions that hold no data
    places: pd.DataFrame  # name, population, lon, lat (in box)
    noises: dict[str, Noise]
    towns: np.ndarray = field(init=False)  # (n, 5) blobs lon, lat, a_m, b_m, theta
    lakes: np.ndarray = field(init=False)
    rocks: np.ndarray = field(init=False)


def domain_pad(grid: Grid) -> int:
    """Pixels the 30 m rasters reach beyond the grid on every side."""
    return grid.buffer_pixels + DOMAIN_EXTRA_PX


def domain_axes(grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """Latitude and longitude pixel centres of the 30 m domain, ascending."""
    pad = domain_pad(grid)
    return grid.lat_centers(-pad, grid.n_lat + pad), grid.lon_centers(-pad, grid.n_lon + pad)


def domain_bounds(grid: Grid) -> LonLatBox:
    """Pixel edges (west, south, east, north) of the 30 m domain."""
    lat, lon = domain_axes(grid)
    res = grid.pixel_size
    return (lon[0] - res / 2, lat[0] - res / 2, lon[-1] + res / 2, lat[-1] + res / 2)


@functools.lru_cache(maxsize=4)
def build_scene(grid: Grid, seed: int) -> Scene:
    """The landscape of ``grid`` for ``seed``; ValueError if the grid is too large for it."""
    import numpy as np
    import shapely

    pad = domain_pad(grid)
    n_pixels = (grid.n_lat + 2 * pad) * (grid.n_lon + 2 * pad)
    if n_pixels > MAX_DOMAIN_PIXELS:
        raise ValueError(
            f"grid {grid.name!r} needs {n_pixels:,} pixels per layer: synthetic demo inputs are "
            f"for small grids only (≤ {MAX_DOMAIN_PIXELS:,})"
        )
    lat, lon = domain_axes(grid)
    domain = domain_bounds(grid)
    albers_x, albers_y, box = _albers_grid(domain)
    states = census_layer("state", box)
    land = shapely.intersection(shapely.union_all(states.geometry.values), shapely.box(*box))
    shapely.prepare(land)
    valid = set(grid.valid_region_ids)
    invalid = np.array(
        [[f"y{r}_x{c}" not in valid for c in range(grid.n_cols)] for r in range(grid.n_rows)]
    )
    mid_lat = 0.5 * (box[1] + box[3])
    scene = Scene(
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
        places=places(box),
        noises={
            name: make_noise(seed, name, box, spacing_px * grid.pixel_size, mid_lat)
            for name, spacing_px in NOISE_SPACING_PX.items()
        },
    )
    scene.towns = _towns(scene)
    scene.lakes = place_blobs(scene, "lakes", 6, (350.0, 900.0), (0.35, 0.7), clearance=1.6)
    scene.rocks = place_blobs(scene, "rocks", 30, (80.0, 260.0), (0.5, 1.0), clearance=1.3)
    return scene


def _albers_grid(domain: LonLatBox) -> tuple[np.ndarray, np.ndarray, LonLatBox]:
    """270 m Albers pixel centres (x ascending, y descending) covering the projected bbox of the
    densified domain outline, snapped, plus a margin; and the lon/lat box holding both grids."""
    import numpy as np
    from pyproj import Transformer

    west, south, east, north = domain
    t = np.linspace(0.0, 1.0, 101)
    ring_lon = np.concatenate(
        [
            west + t * (east - west),
            np.full_like(t, east),
            east - t * (east - west),
            np.full_like(t, west),
        ]
    )
    ring_lat = np.concatenate(
        [
            np.full_like(t, south),
            south + t * (north - south),
            np.full_like(t, north),
            north - t * (north - south),
        ]
    )
    x, y = Transformer.from_crs("EPSG:4326", ALBERS_CRS, always_xy=True).transform(
        ring_lon, ring_lat
    )
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
        min(west, corner_lon.min()) - BOX_MARGIN_DEG,
        min(south, corner_lat.min()) - BOX_MARGIN_DEG,
        max(east, corner_lon.max()) + BOX_MARGIN_DEG,
        max(north, corner_lat.max()) + BOX_MARGIN_DEG,
    )
    return albers_x, albers_y, box


def _towns(scene: Scene) -> np.ndarray:
    """One ellipse per place of 5000 people or more, as large as its population at town
    density, slightly stretched and rotated at random."""
    import numpy as np

    big = scene.places[scene.places.population >= 5000]
    stream = rng(scene.seed, "towns")
    radius = np.sqrt(big.population.to_numpy() / PEOPLE_PER_KM2 / math.pi) * 1000.0
    stretch = stream.uniform(1.0, 1.3, len(big))
    theta = stream.uniform(0, math.pi, len(big))
    return np.column_stack([big.lon, big.lat, radius * stretch, radius / stretch, theta])
