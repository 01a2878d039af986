"""The demo's census polygons (EPSG:4269): real states, nation and counties, synthetic tracts
and blocks.

Tracts are Voronoi cells of population-weighted seeds clipped to each county's part of the
raster domain; blocks are Voronoi cells clipped to their tract, so they tile it. GEOIDs have
the real lengths: tract = county + 6 digits, block = tract + 4 digits.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, cast

from ocr_core.demo.geo import M_PER_DEG_LAT, M_PER_DEG_LON_EQUATOR
from ocr_core.demo.noise import rng
from ocr_core.demo.scene import PEOPLE_PER_KM2, Scene, build_scene
from ocr_core.demo.sources import census_layer
from ocr_core.demo.tables import write_table
from ocr_core.grid import DEMO, Grid
from ocr_core.schema import LEVELS

if TYPE_CHECKING:
    import geopandas as gpd
    import numpy as np
    import shapely

    from ocr_core.catalog import InputCatalog
    from ocr_core.demo.written import WrittenTable

NON_CONUS_STATE_FIPS = ("02", "15", "60", "66", "69", "72", "78")
NATION_BBOX = (-125.0, 24.0, -66.0, 50.0)
PEOPLE_PER_TRACT_SEED = 5000
RURAL_KM2_PER_TRACT = 30.0


def write_census_polygons(
    catalog: InputCatalog, grid: Grid = DEMO, seed: int = 2026
) -> dict[str, WrittenTable]:
    """Write real states, nation and counties plus synthetic tracts and blocks (EPSG:4269)."""
    frames = census_frames(build_scene(grid, seed))
    return {name: write_table(catalog, name, gdf) for name, gdf in frames.items()}


def census_frames(scene: Scene) -> dict[str, gpd.GeoDataFrame]:
    """Every census dataset's polygons by catalog name, finest level first."""
    import geopandas as gpd
    import shapely

    states = census_layer("state")
    states = states[~states.GEOID.isin(NON_CONUS_STATE_FIPS)]
    states = states.assign(GEOID=states.GEOID.str.zfill(2))[["GEOID", "STUSPS", "NAME", "geometry"]]
    simple = shapely.simplify(states.geometry.values, 0.01)
    nation_geom = shapely.intersection(shapely.union_all(simple), shapely.box(*NATION_BBOX))
    nation = gpd.GeoDataFrame(
        {"GEOID": ["US"], "NAME": ["United States"]}, geometry=[nation_geom], crs=4269
    )
    counties = cast(
        "gpd.GeoDataFrame",
        census_layer("county", scene.domain_bounds)[["NAME", "GEOID", "geometry"]],
    )
    tracts = _tracts(scene, counties)
    by_level = {
        "blocks": _blocks(scene, tracts),
        "tracts": tracts,
        "counties": counties.reset_index(drop=True),
        "states": states.reset_index(drop=True),
        "nation": nation,
    }
    return {f"us-census-{level}": by_level[level] for level in LEVELS}


def polygonal(geoms) -> list[shapely.MultiPolygon | None]:
    """Each geometry reduced to its polygon parts (a MultiPolygon, or None if it has none)."""
    import shapely

    out = []
    for g in geoms:
        parts = []
        for p in shapely.get_parts(g):
            if isinstance(p, shapely.Polygon) and not p.is_empty:
                parts.append(p)
            elif isinstance(p, shapely.MultiPolygon):
                parts.extend(q for q in p.geoms if not q.is_empty)
        out.append(shapely.MultiPolygon(parts) if parts else None)
    return out


def _voronoi_tiles(region, points: np.ndarray) -> list:
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
    pieces = polygonal(shapely.intersection(cells[hit], region))
    return [p for p in pieces if p is not None and p.area > 0]


def _uniform_in(geom, n: int, stream: np.random.Generator) -> np.ndarray:
    """Up to n uniform random points inside geom (rejection sampling)."""
    import numpy as np
    import shapely

    west, south, east, north = geom.bounds
    found = np.zeros((0, 2))
    for _ in range(20):
        if len(found) >= n:
            break
        cand = np.column_stack(
            [stream.uniform(west, east, 4 * n), stream.uniform(south, north, 4 * n)]
        )
        found = np.vstack([found, cand[shapely.contains_xy(geom, cand[:, 0], cand[:, 1])]])
    return found[:n]


def _tract_seeds(scene: Scene, domain, stream: np.random.Generator) -> np.ndarray:
    """Seeds (lon, lat): one per 5000 people scattered around each place, plus one per 30 km²
    of the domain uniformly."""
    import numpy as np

    seeds = []
    places = scene.places
    for population, lon, lat in zip(
        places.population.tolist(), places.lon.tolist(), places.lat.tolist(), strict=True
    ):
        k = max(1, round(population / PEOPLE_PER_TRACT_SEED))
        sigma = math.sqrt(population / PEOPLE_PER_KM2 / math.pi) * 1000.0
        mlon = M_PER_DEG_LON_EQUATOR * math.cos(math.radians(lat))
        seeds.append(
            np.column_stack(
                [
                    lon + stream.normal(0, sigma, k) / mlon,
                    lat + stream.normal(0, sigma, k) / M_PER_DEG_LAT,
                ]
            )
        )
    rural_km2 = (
        domain.area
        * M_PER_DEG_LAT
        * M_PER_DEG_LON_EQUATOR
        * math.cos(math.radians(domain.centroid.y))
    ) / 1e6
    seeds.append(_uniform_in(domain, round(rural_km2 / RURAL_KM2_PER_TRACT), stream))
    return np.vstack(seeds)


def _tracts(scene: Scene, counties: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Synthetic tracts: Voronoi of population-weighted seeds, per county part of the domain,
    numbered north to south then west to east within each county."""
    import geopandas as gpd
    import numpy as np
    import shapely

    domain = shapely.box(*scene.domain_bounds)
    seeds = _tract_seeds(scene, domain, rng(scene.seed, "tracts"))
    rows = []
    for county, geometry in zip(counties.GEOID, counties.geometry, strict=True):
        part = polygonal([shapely.intersection(geometry, domain)])[0]
        if part is None:
            continue
        mine = seeds[shapely.contains_xy(part, seeds[:, 0], seeds[:, 1])]
        mine = np.unique(np.round(mine, 7), axis=0)
        for piece in _voronoi_tiles(part, mine):
            pt = piece.representative_point()
            rows.append((county, -round(pt.y, 6), round(pt.x, 6), piece))
    rows.sort(key=lambda r: r[:3])
    geoids, geoms, counter = [], [], {}
    for county, _, _, geom in rows:
        counter[county] = counter.get(county, 0) + 1
        geoids.append(f"{county}{counter[county]:04d}00")
        geoms.append(geom)
    return gpd.GeoDataFrame({"GEOID": geoids}, geometry=geoms, crs=4269)


def _blocks(scene: Scene, tracts: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Synthetic blocks: Voronoi cells of random seeds inside each tract, clipped to it,
    numbered from 1000 north to south then west to east."""
    import geopandas as gpd
    import numpy as np

    stream = rng(scene.seed, "blocks")
    mid_lat = 0.5 * (scene.domain_bounds[1] + scene.domain_bounds[3])
    km2_per_deg2 = M_PER_DEG_LAT * M_PER_DEG_LON_EQUATOR * math.cos(math.radians(mid_lat)) / 1e6
    geoids, geoms = [], []
    for tract, geometry in zip(tracts.GEOID, tracts.geometry, strict=True):
        area_km2 = geometry.area * km2_per_deg2
        n = int(np.clip(round((10 + 12 * math.sqrt(area_km2)) * stream.uniform(0.7, 1.3)), 1, 90))
        if area_km2 < 0.05:
            n = 1
        seeds = np.unique(np.round(_uniform_in(geometry, n, stream), 8), axis=0)
        pieces = _voronoi_tiles(geometry, seeds)
        reps = [p.representative_point() for p in pieces]
        order = sorted(
            range(len(pieces)), key=lambda k: (-round(reps[k].y, 7), round(reps[k].x, 7))
        )
        for k, idx in enumerate(order):
            geoids.append(f"{tract}{1000 + k:04d}")
            geoms.append(pieces[idx])
    return gpd.GeoDataFrame({"GEOID": geoids}, geometry=geoms, crs=4269)
