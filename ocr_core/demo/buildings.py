"""The demo's tagged buildings: footprints tagged with the block, tract, county and state they
stand in, with random UUIDs, sorted by region then along a Hilbert curve within it, written in
row groups of 10 000 like the real file (docs/data.md)."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from ocr_core.demo.footprints import lattice_footprints, seam_footprints
from ocr_core.demo.noise import rng
from ocr_core.demo.scene import Scene, build_scene
from ocr_core.demo.tables import read_geo_table, read_table, write_table
from ocr_core.demo.written import BuildingCounts
from ocr_core.errors import InputDataError
from ocr_core.grid import DEMO, Grid
from ocr_core.schema import BUILDINGS, GEOGRAPHY

if TYPE_CHECKING:
    import geopandas as gpd
    import numpy as np
    import pandas as pd
    import shapely

    from ocr_core.catalog import InputCatalog
    from ocr_core.demo.written import WrittenTable

MAX_SEAM_BUILDINGS = 60
HILBERT_CELLS = 64  # each region is cut into 64 × 64 cells for the sort


def write_tagged_buildings(
    catalog: InputCatalog, grid: Grid = DEMO, seed: int = 2026, n_buildings: int = 60_000
) -> dict[str, WrittenTable]:
    """Write building footprints tagged with block, tract, county and state.

    Blocks, counties and states are read from the catalog (written by ``write_census_polygons``),
    so the tags match the census files the pipeline aggregates with; InputDataError if missing.
    """
    gdf, counts = tagged_buildings(catalog, build_scene(grid, seed), n_buildings)
    written = write_table(catalog, BUILDINGS, gdf, row_group_size=10_000)
    return {BUILDINGS: replace(written, buildings=counts)}


def tagged_buildings(
    catalog: InputCatalog, scene: Scene, n_buildings: int
) -> tuple[gpd.GeoDataFrame, BuildingCounts]:
    """``n_buildings`` footprints (fewer if the land is full) tagged from the catalog's census
    files, in the file's order, and how many of the seam footprints were kept."""
    import numpy as np
    import pandas as pd

    blocks = read_geo_table(catalog, GEOGRAPHY["blocks"].census_dataset, ["GEOID", "geometry"])
    counties = read_table(catalog, GEOGRAPHY["counties"].census_dataset, ["GEOID", "NAME"])
    states = read_table(catalog, GEOGRAPHY["states"].census_dataset, ["GEOID", "STUSPS"])

    land = _building_land(scene)
    seam = seam_footprints(scene, land, min(MAX_SEAM_BUILDINGS, n_buildings // 10))
    extra = max(50, n_buildings // 50)  # a few may land outside every block and are dropped
    main = lattice_footprints(scene, land, n_buildings - len(seam) + extra, seam)
    geoms = np.concatenate([seam, main])
    geoid = _block_geoids(blocks, geoms)
    keep = np.flatnonzero(pd.notna(geoid))
    n_seam_kept = int((keep < len(seam)).sum())
    keep = keep[:n_buildings]
    gdf = _tagged_frame(
        _uuids(scene.seed, len(keep)), geoid[keep].astype(str), geoms[keep], counties, states
    )
    gdf = gdf.iloc[np.argsort(_spatial_key(scene.grid, gdf.geometry.to_numpy()), kind="stable")]
    counts = BuildingCounts(n_buildings, n_seam_kept, int(scene.seed))
    return gdf.reset_index(drop=True), counts


def _building_land(scene: Scene) -> shapely.Geometry:
    """Land inside the valid regions, 1.5 px inland so the pixel nearest each footprint is
    land, not sea (prepared)."""
    import shapely

    grid = scene.grid
    land = shapely.intersection(
        scene.land,
        shapely.union_all([shapely.box(*grid.region_bounds(r)) for r in grid.valid_region_ids]),
    )
    land = shapely.buffer(land, -1.5 * grid.pixel_size)
    shapely.prepare(land)
    return land


def _block_geoids(blocks: gpd.GeoDataFrame, geoms: np.ndarray) -> np.ndarray:
    """The GEOID of the block holding each footprint's centroid (ties: the lowest), or None."""
    import numpy as np
    import pandas as pd
    import shapely

    tree = shapely.STRtree(blocks.geometry.values)
    b_idx, t_idx = tree.query(shapely.centroid(geoms), predicate="intersects")
    pairs = pd.DataFrame({"b": b_idx, "geoid": blocks.GEOID.to_numpy()[t_idx]})
    first = pairs.sort_values(["b", "geoid"]).drop_duplicates("b")
    geoid = np.full(len(geoms), None, dtype=object)
    geoid[first.b.to_numpy()] = first.geoid.to_numpy()
    return geoid


def _uuids(seed: int, n: int) -> list[str]:
    """n version-4 UUIDs from the "building-ids" random stream of ``seed``."""
    import uuid

    raw = rng(seed, "building-ids").integers(0, 2**63, size=(n, 2), dtype="int64")
    return [str(uuid.UUID(int=(int(a) << 64) | int(b), version=4)) for a, b in raw]


def _tagged_frame(
    ids: list[str],
    geoid: np.ndarray,
    geoms: np.ndarray,
    counties: pd.DataFrame,
    states: pd.DataFrame,
) -> gpd.GeoDataFrame:
    """The buildings' columns from their block GEOIDs; InputDataError if a block's county or
    state is not in the catalog."""
    import geopandas as gpd
    import pandas as pd

    names = dict(zip(counties.GEOID, counties.NAME, strict=True))
    abbrevs = dict(zip(states.GEOID, states.STUSPS, strict=True))
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
    return gdf


def _spatial_key(grid: Grid, geoms: np.ndarray) -> np.ndarray:
    """Sort key: region (by bbox lower-left corner) then Hilbert order of 64 × 64 cells in it."""
    import numpy as np
    import shapely

    n = HILBERT_CELLS
    b = shapely.bounds(geoms)
    col = np.clip(np.floor((b[:, 0] - grid.lon0) / grid.pixel_size), 0, grid.n_lon - 1).astype(
        "int64"
    )
    row = np.clip(np.floor((b[:, 1] - grid.lat0) / grid.pixel_size), 0, grid.n_lat - 1).astype(
        "int64"
    )
    region = (row // grid.chunk_lat) * grid.n_cols + col // grid.chunk_lon
    x = (col % grid.chunk_lon) * n // grid.chunk_lon
    y = (row % grid.chunk_lat) * n // grid.chunk_lat
    return region * (n * n) + _hilbert(x, y, n)


def _hilbert(x: np.ndarray, y: np.ndarray, n: int) -> np.ndarray:
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
