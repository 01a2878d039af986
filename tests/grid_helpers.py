"""Region lookups on a ``Grid`` that only tests need: the label slices of a region, the region
holding a point, the regions a box overlaps."""

from __future__ import annotations

import math

from ocr_core.grid import Grid


def region_slices(grid: Grid, region_id: str, buffered: bool = False) -> tuple[slice, slice]:
    """Ascending (latitude, longitude) label slices of the region's pixel edges."""
    lon_min, lat_min, lon_max, lat_max = grid.region_bounds(region_id)
    pad = grid.buffer_deg if buffered else 0.0
    return slice(lat_min - pad, lat_max + pad), slice(lon_min - pad, lon_max + pad)


def region_id_at(grid: Grid, lon: float, lat: float) -> str | None:
    """Id of the region whose pixel area holds the point (west/south edges inclusive)."""
    col = math.floor((lon - grid.lon0) / grid.pixel_size)
    row = math.floor((lat - grid.lat0) / grid.pixel_size)
    if not (0 <= row < grid.n_lat and 0 <= col < grid.n_lon):
        return None
    return f"y{row // grid.chunk_lat}_x{col // grid.chunk_lon}"


def region_ids_for_bbox(
    grid: Grid, bbox: tuple[float, float, float, float], valid_only: bool = True
) -> list[str]:
    """Ids of the regions a (west, south, east, north) box overlaps."""
    west, south, east, north = bbox
    if west > east or south > north:
        raise ValueError(f"bbox {bbox} must be (west, south, east, north)")

    c0 = max(0, math.floor((west - grid.lon0) / grid.pixel_size) // grid.chunk_lon)
    c1 = min(grid.n_cols - 1, math.floor((east - grid.lon0) / grid.pixel_size) // grid.chunk_lon)
    r0 = max(0, math.floor((south - grid.lat0) / grid.pixel_size) // grid.chunk_lat)
    r1 = min(grid.n_rows - 1, math.floor((north - grid.lat0) / grid.pixel_size) // grid.chunk_lat)
    ids = [f"y{r}_x{c}" for r in range(r0, r1 + 1) for c in range(c0, c1 + 1)]
    if valid_only:
        valid = set(grid.valid_region_ids)
        ids = [i for i in ids if i in valid]
    return ids
