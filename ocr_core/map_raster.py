"""The published pyramid as Web Mercator PNG tiles for the map, coloured by risk score.

The pyramid is on the EPSG:4326 grid of the risk raster (``ocr_core.pyramid``): a tile is drawn
by taking, for each of its pixels, the latitude of the pixel's centre through the inverse
Mercator projection and the longitude linearly, and looking that point up (nearest) in the
level whose pixel is the largest not coarser than the tile's. Levels are read window by
window, never whole.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

from ocr_core.storage import Storage

TILE_SIZE = 256
PYRAMID_CRS = "EPSG:4326"
# One colour per risk score 0..10 (score 0, RPS exactly 0, is drawn grey on buildings and
# regions and left transparent on the raster).
RISK_COLOURS = (
    "#d9d9d9", "#fff3b0", "#fee391", "#fec44f", "#fe9929", "#f46d43",
    "#e34a33", "#d7301f", "#b30000", "#7f0000", "#4a0033",
)  # fmt: skip


class MapError(RuntimeError):
    """The map cannot be served (the libraries are missing, the port is taken)."""


def tile_centres(z: int, x: int, y: int, size: int = TILE_SIZE):
    """Longitudes (columns) and latitudes (rows, north first) of the pixel centres of the Web
    Mercator tile z/x/y."""
    import numpy as np

    n = 2.0**z
    k = (np.arange(size) + 0.5) / size
    lon = (x + k) / n * 360.0 - 180.0
    lat = np.degrees(np.arctan(np.sinh(np.pi * (1.0 - 2.0 * (y + k) / n))))
    return lon, lat


def colour_table():
    """RGBA per risk score, index -1 (no value) last; score 0 transparent (see RISK_COLOURS)."""
    import numpy as np

    rgba = [(*bytes.fromhex(c[1:]), 255) for c in RISK_COLOURS]
    rgba[0] = (0, 0, 0, 0)
    return np.array([*rgba, (0, 0, 0, 0)], dtype=np.uint8)


def encode_png(rgba) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, format="PNG")
    return buf.getvalue()


@dataclass(frozen=True)
class Level:
    """One pyramid level: its pixel-centre grid (regular in degrees) and its arrays."""

    lat0: float
    dlat: float
    lon0: float
    dlon: float
    shape: tuple[int, int]
    arrays: dict

    def indices(self, lat, lon):
        import numpy as np

        i = np.floor((lat - self.lat0) / self.dlat + 0.5).astype(np.int64)
        j = np.floor((lon - self.lon0) / self.dlon + 0.5).astype(np.int64)
        return i, j


class Pyramid:
    """The published pyramid, read level by level, window by window (never a whole level)."""

    def __init__(self, group, location: str):
        crs = group.attrs.get("proj:code")
        if crs != PYRAMID_CRS:
            raise MapError(f"the pyramid at {location} is in {crs!r}; the map reads {PYRAMID_CRS}")
        self.location = location
        layout = group.attrs["multiscales"]["layout"]
        self.levels: list[Level] = []
        for entry in layout:
            g = group[entry["asset"]]
            lat, lon = g["latitude"][:], g["longitude"][:]
            arrays = {name: arr for name, arr in g.arrays() if arr.ndim == 2}
            self.levels.append(
                Level(
                    lat0=float(lat[0]),
                    dlat=float((lat[-1] - lat[0]) / max(1, lat.size - 1)),
                    lon0=float(lon[0]),
                    dlon=float((lon[-1] - lon[0]) / max(1, lon.size - 1)),
                    shape=(int(lat.size), int(lon.size)),
                    arrays=arrays,
                )
            )
        self.variables = sorted(self.levels[0].arrays)
        self.colours = colour_table()

    def info(self) -> dict:
        top = self.levels[0]
        lats = (top.lat0 - top.dlat / 2, top.lat0 + (top.shape[0] - 0.5) * top.dlat)
        lons = (top.lon0 - top.dlon / 2, top.lon0 + (top.shape[1] - 0.5) * top.dlon)
        return {
            "location": self.location,
            "crs": PYRAMID_CRS,
            "variables": self.variables,
            "bounds": [min(lons), min(lats), max(lons), max(lats)],
            "levels": [{"shape": list(lv.shape), "pixel_deg": abs(lv.dlon)} for lv in self.levels],
            "maxzoom": max(0, math.ceil(math.log2(360.0 / (TILE_SIZE * abs(top.dlon))))),
            "tiles": "/pyramid/{variable}/{z}/{x}/{y}.png",
        }

    def level_for(self, z: int) -> int:
        """The coarsest level whose pixels are no larger than the tile's at zoom z."""
        tile_px = 360.0 / (TILE_SIZE * 2.0**z)
        fine_enough = [k for k, lv in enumerate(self.levels) if abs(lv.dlon) <= tile_px * 1.0001]
        return fine_enough[-1] if fine_enough else 0

    def render(self, variable: str, z: int, x: int, y: int) -> bytes:
        """The PNG of tile z/x/y of ``variable``, transparent where there is no risk."""
        import numpy as np

        from ocr_core.schema import risk_scores

        level = self.levels[self.level_for(z)]
        lon, lat = tile_centres(z, x, y)
        i, j = level.indices(lat, lon)
        rows = np.flatnonzero((i >= 0) & (i < level.shape[0]))
        cols = np.flatnonzero((j >= 0) & (j < level.shape[1]))
        scores = np.full((TILE_SIZE, TILE_SIZE), -1, dtype=np.int64)
        if rows.size and cols.size:
            i0, i1, j0, j1 = i[rows].min(), i[rows].max(), j[cols].min(), j[cols].max()
            window = np.asarray(level.arrays[variable][i0 : i1 + 1, j0 : j1 + 1])
            values = window[np.ix_(i[rows] - i0, j[cols] - j0)]
            scores[np.ix_(rows, cols)] = risk_scores(values)
        return encode_png(self.colours[scores])


def open_pyramid(storage: Storage) -> Pyramid | None:
    """The pyramid readers see now (on S3: the version ``CURRENT`` names), None if none is
    published."""
    import zarr
    import zarr.storage

    location = storage.current_dir(storage.pyramid_uri)
    if not storage.exists(f"{location}/zarr.json"):
        return None
    if storage.is_s3:
        store = zarr.storage.FsspecStore.from_url(
            location, storage_options=storage.s3_options(), read_only=True
        )
    else:
        store = zarr.storage.LocalStore(location, read_only=True)
    return Pyramid(zarr.open_group(store, mode="r", zarr_format=3), location)
