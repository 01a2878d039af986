"""Where the demo's fields are evaluated and the masks on them: land inside valid regions, and
elliptical blobs (towns, lakes, rock patches) with optionally wobbly edges."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ocr_core.demo.geo import M_PER_DEG_LAT, M_PER_DEG_LON_EQUATOR
from ocr_core.demo.noise import rng

if TYPE_CHECKING:
    import numpy as np

    from ocr_core.demo.scene import Scene


@dataclass(eq=False)
class Where:
    """Evaluation points: a regular grid (1-D axes) or scattered points (equal-length arrays)."""

    scene: Scene
    lat: np.ndarray
    lon: np.ndarray
    is_grid: bool
    cache: dict[str, np.ndarray] = field(default_factory=dict)  # noise fields evaluated here

    @classmethod
    def grid(cls, scene: Scene, lat: np.ndarray, lon: np.ndarray) -> Where:
        return cls(scene, lat, lon, True)

    @classmethod
    def points(cls, scene: Scene, lat, lon) -> Where:
        import numpy as np

        return cls(scene, np.asarray(lat, "float64"), np.asarray(lon, "float64"), False)

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.lat.size, self.lon.size) if self.is_grid else self.lat.shape

    def noise(self, name: str) -> np.ndarray:
        """The scene's noise field ``name`` here (computed once per field)."""
        if name not in self.cache:
            n = self.scene.noises[name]
            self.cache[name] = (
                n.on_grid(self.lat, self.lon) if self.is_grid else n.at_points(self.lat, self.lon)
            )
        return self.cache[name]


def land_mask(scene: Scene, where: Where) -> np.ndarray:
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


def blob_score(blobs: np.ndarray, where: Where, wobble: float, reach: float = 1.0) -> np.ndarray:
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
        found = _near(where, lon_c, lat_c, r_lon, r_lat)
        if found is None:
            continue
        sel, dx, dy = found[0], found[1] * mlon, found[2] * M_PER_DEG_LAT
        u = dx * math.cos(theta) + dy * math.sin(theta)
        v = -dx * math.sin(theta) + dy * math.cos(theta)
        s = np.sqrt((u / a) ** 2 + (v / b) ** 2)
        if w is not None:
            s = s - wobble * w[sel]
        score[sel] = np.minimum(score[sel], s)
    return score


def _near(where: Where, lon_c: float, lat_c: float, r_lon: float, r_lat: float):
    """The evaluation points within (r_lon, r_lat) degrees of a centre: their selection and
    their offsets from it in degrees (broadcastable on a grid); None if there are none."""
    import numpy as np

    if where.is_grid:
        i0, i1 = np.searchsorted(where.lat, [lat_c - r_lat, lat_c + r_lat])
        j0, j1 = np.searchsorted(where.lon, [lon_c - r_lon, lon_c + r_lon])
        if i0 == i1 or j0 == j1:
            return None
        dlat = (where.lat[i0:i1] - lat_c)[:, None]
        dlon = (where.lon[j0:j1] - lon_c)[None, :]
        return (slice(i0, i1), slice(j0, j1)), dlon, dlat
    sel = np.flatnonzero(
        (np.abs(where.lat - lat_c) <= r_lat) & (np.abs(where.lon - lon_c) <= r_lon)
    )
    if sel.size == 0:
        return None
    return sel, where.lon[sel] - lon_c, where.lat[sel] - lat_c


def place_blobs(
    scene: Scene,
    kind: str,
    n: int,
    radius_m: tuple[float, float],
    aspect: tuple[float, float],
    clearance: float,
) -> np.ndarray:
    """Up to n ellipses (lon, lat, a, b, theta) wholly on land inside valid regions, clear of
    towns, of each other and (rocks) of lakes by ``clearance`` radii."""
    import numpy as np

    grid, stream = scene.grid, rng(scene.seed, kind)
    west, south, east, north = grid.bounds
    blobs: list[list[float]] = []
    angles = np.linspace(0, 2 * math.pi, 12, endpoint=False)
    for _ in range(5000):
        if len(blobs) == n:
            break
        lon, lat = stream.uniform(west, east), stream.uniform(south, north)
        a = stream.uniform(*radius_m)
        b, theta = a * stream.uniform(*aspect), stream.uniform(0, math.pi)
        mlon = M_PER_DEG_LON_EQUATOR * math.cos(math.radians(lat))
        ring_lon = lon + clearance * a * np.cos(angles) / mlon
        ring_lat = lat + clearance * a * np.sin(angles) / M_PER_DEG_LAT
        where = Where.points(scene, np.append(ring_lat, lat), np.append(ring_lon, lon))
        if _blob_fits(scene, kind, where, np.array(blobs).reshape(-1, 5), clearance):
            blobs.append([lon, lat, a, b, theta])
    return np.array(blobs).reshape(-1, 5)


def _blob_fits(scene: Scene, kind: str, where: Where, others: np.ndarray, clearance: float):
    """Whether a candidate blob's outline and centre (``where``) are on land and clear."""
    if not land_mask(scene, where).all():
        return False
    if (blob_score(scene.towns, where, 0.3) < 1.4).any():
        return False
    if len(others) and (blob_score(others * [1, 1, 2, 2, 1], where, 0.0) < clearance).any():
        return False
    return not (kind == "rocks" and (blob_score(scene.lakes, where, 0.0) < clearance).any())
