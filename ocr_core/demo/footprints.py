"""Building footprints of the demo: small rotated rectangles clustered around places (one per
48 m lattice cell, so none overlap) plus rural scatter, and axis-aligned footprints whose bbox
lower-left corner sits on or within one pixel of interior region seams."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ocr_core.demo.geo import M_PER_DEG_LAT, M_PER_DEG_LON_EQUATOR
from ocr_core.demo.masks import Where, blob_score
from ocr_core.demo.noise import rng
from ocr_core.demo.scene import PEOPLE_PER_KM2

if TYPE_CHECKING:
    import numpy as np
    import shapely

    from ocr_core.demo.scene import Scene

BUILDING_CELL_M = 48.0  # one footprint per lattice cell; footprints reach at most 23.2 m
RURAL_SHARE = 0.12  # of the candidate footprints, scattered uniformly over the grid
SEAM_OFFSETS_PX = (0.0, 0.0, 0.3, -0.3, 0.95, -0.95)  # seam footprints' corners, across a seam


@dataclass(frozen=True)
class _Candidates:
    """A batch of candidate footprints: lattice cell, centre (degrees), size (m), rotation."""

    ci: np.ndarray
    cj: np.ndarray
    cx: np.ndarray
    cy: np.ndarray
    w: np.ndarray
    h: np.ndarray
    theta: np.ndarray


def rectangles(cx, cy, w, h, theta) -> np.ndarray:
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
    return np.asarray(shapely.polygons(np.stack([x, y], axis=-1)))


def _cell_index(scene: Scene, lon, lat) -> tuple[np.ndarray, np.ndarray]:
    """The 48 m lattice cell (row, col) of each point, counted from the grid's south-west."""
    import numpy as np

    west, south = scene.grid.bounds[:2]
    mlon = M_PER_DEG_LON_EQUATOR * math.cos(math.radians(south))
    return (
        np.floor((lat - south) * M_PER_DEG_LAT / BUILDING_CELL_M).astype("int64"),
        np.floor((lon - west) * mlon / BUILDING_CELL_M).astype("int64"),
    )


def lattice_footprints(
    scene: Scene, land: shapely.Geometry, n: int, avoid: np.ndarray
) -> np.ndarray:
    """n footprints, one per 48 m cell, clustered on places by population plus rural scatter,
    wholly on ``land`` and clear of the cells around the ``avoid`` footprints."""
    import numpy as np
    import shapely

    stream = rng(scene.seed, "buildings")
    west, south, east, north = scene.grid.bounds
    ac = shapely.centroid(avoid)
    taken = set()
    for i, j in zip(*_cell_index(scene, shapely.get_x(ac), shapely.get_y(ac)), strict=True):
        taken.update((i + di, j + dj) for di in (-1, 0, 1) for dj in (-1, 0, 1))
    kept: list[np.ndarray] = []
    total = 0
    for _ in range(30):
        if total >= n:
            break
        c = _candidates(scene, stream, 3 * (n - total) + 1000)
        ok = (c.cx > west) & (c.cx < east) & (c.cy > south) & (c.cy < north)
        ok &= blob_score(scene.lakes, Where.points(scene, c.cy, c.cx), 0.0) > 1.1
        for k in np.flatnonzero(ok):
            key = (int(c.ci[k]), int(c.cj[k]))
            if key in taken:
                ok[k] = False
            else:
                taken.add(key)
        idx = np.flatnonzero(ok)
        rects = rectangles(c.cx[idx], c.cy[idx], c.w[idx], c.h[idx], c.theta[idx])
        inside = shapely.within(rects, land)
        for key in zip(c.ci[idx[~inside]], c.cj[idx[~inside]], strict=True):
            taken.discard((int(key[0]), int(key[1])))
        rects = rects[inside][: n - total]
        kept.append(rects)
        total += len(rects)
    return np.concatenate(kept) if kept else np.array([], dtype=object)


def _candidates(scene: Scene, stream: np.random.Generator, m: int) -> _Candidates:
    """m candidates: around places picked by population (spread with the town's size), a
    share rural; each snapped to its lattice cell's centre with a little jitter."""
    import numpy as np

    west, south, east, north = scene.grid.bounds
    mlon0 = M_PER_DEG_LON_EQUATOR * math.cos(math.radians(south))
    places = scene.places
    population = places.population.to_numpy(float)
    sigma_m = 0.8 * np.sqrt(population / PEOPLE_PER_KM2 / math.pi) * 1000.0 + 300.0
    pick = stream.choice(len(places), size=m, p=population / places.population.sum())
    mlon = M_PER_DEG_LON_EQUATOR * np.cos(np.radians(places.lat.to_numpy()[pick]))
    lon = places.lon.to_numpy()[pick] + stream.normal(0, 1, m) * sigma_m[pick] / mlon
    lat = places.lat.to_numpy()[pick] + stream.normal(0, 1, m) * sigma_m[pick] / M_PER_DEG_LAT
    rural = stream.random(m) < RURAL_SHARE
    lon[rural] = stream.uniform(west, east, rural.sum())
    lat[rural] = stream.uniform(south, north, rural.sum())
    ci, cj = _cell_index(scene, lon, lat)
    cell_lon, cell_lat = BUILDING_CELL_M / mlon0, BUILDING_CELL_M / M_PER_DEG_LAT
    cx = west + (cj + 0.5) * cell_lon + stream.uniform(-2, 2, m) / mlon0
    cy = south + (ci + 0.5) * cell_lat + stream.uniform(-2, 2, m) / M_PER_DEG_LAT
    w, h = stream.uniform(8, 30, m), stream.uniform(8, 30, m)
    return _Candidates(ci, cj, cx, cy, w, h, stream.uniform(0, math.pi, m))


def seam_footprints(scene: Scene, land: shapely.Geometry, n_max: int) -> np.ndarray:
    """Up to n_max axis-aligned footprints wholly on ``land``, not overlapping, whose bbox
    lower-left corner is on or within 1 px of a seam (some exactly on a seam crossing)."""
    import numpy as np
    import shapely

    grid, stream = scene.grid, rng(scene.seed, "seam-buildings")
    res = grid.pixel_size
    west, south, east, north = grid.bounds
    seams_lon = [grid.lon_edge(k * grid.chunk_lon) for k in range(1, grid.n_cols)]
    seams_lat = [grid.lat_edge(k * grid.chunk_lat) for k in range(1, grid.n_rows)]
    cand = [
        (x + off * res, stream.uniform(south, north)) for x in seams_lon for off in SEAM_OFFSETS_PX
    ]
    cand += [
        (stream.uniform(west, east), y + off * res) for y in seams_lat for off in SEAM_OFFSETS_PX
    ]
    cand += [(x, y) for x in seams_lon for y in seams_lat]  # exactly on a seam crossing
    x0 = np.array([c[0] for c in cand])
    y0 = np.array([c[1] for c in cand])
    w = stream.uniform(10, 25, len(cand)) / (M_PER_DEG_LON_EQUATOR * np.cos(np.radians(y0)))
    h = stream.uniform(10, 25, len(cand)) / M_PER_DEG_LAT
    rects = shapely.box(x0, y0, x0 + w, y0 + h)
    rects = rects[shapely.within(rects, land)]
    out = []  # drop footprints that overlap an earlier one
    for r in rects:
        if all(not r.intersects(o) for o in out):
            out.append(r)
    return np.array(out[:n_max], dtype=object)
