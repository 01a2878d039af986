"""Seeded random streams and smooth noise fields: the random structure of the demo landscape.

A field is unit-variance cubic B-spline noise: white-noise coefficients on a lattice in degrees,
evaluated either on a regular grid (two dense weight matrices) or at scattered points, so the
same function gives the same value at the 30 m pixels and at the 270 m pixel centres.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ocr_core.demo.geo import LonLatBox

if TYPE_CHECKING:
    import numpy as np


def rng(seed: int, stream: str) -> np.random.Generator:
    """The random generator of one named stream: streams are independent of their use order."""
    import numpy as np

    return np.random.default_rng([seed, zlib.crc32(stream.encode())])


@dataclass(frozen=True)
class Noise:
    """Unit-variance cubic B-spline field of white-noise coefficients on a lattice (degrees)."""

    coef: np.ndarray  # (n_lat, n_lon) float64
    lat0: float
    lon0: float
    dlat: float
    dlon: float

    def on_grid(self, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        """The field on the grid of the 1-D axes ``lat`` × ``lon`` (float32)."""
        wy, iy = bspline_matrix((lat - self.lat0) / self.dlat)
        wx, ix = bspline_matrix((lon - self.lon0) / self.dlon)
        c = self.coef[iy : iy + wy.shape[1], ix : ix + wx.shape[1]].astype("float32")
        return (wy @ c) @ wx.T

    def at_points(self, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        """The field at scattered points (equal-length arrays, float32)."""
        import numpy as np

        wy, iy = bspline_weights((lat - self.lat0) / self.dlat)
        wx, ix = bspline_weights((lon - self.lon0) / self.dlon)
        total = np.zeros(lat.shape, dtype="float64")
        for a in range(4):
            for b in range(4):
                total += wy[a] * wx[b] * self.coef[iy + a, ix + b]
        return total.astype("float32")


def bspline_weights(f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cubic B-spline weights (4, n), scaled to unit L2 norm so that white-noise coefficients
    give a unit-variance field everywhere, and the first of the 4 lattice nodes."""
    import numpy as np

    i = np.floor(f).astype("int64")
    t = f - i
    t2, t3 = t * t, t * t * t
    w = np.stack([(1 - t) ** 3, 3 * t3 - 6 * t2 + 4, -3 * t3 + 3 * t2 + 3 * t + 1, t3])
    return w / np.sqrt((w**2).sum(0)), i - 1


def bspline_matrix(f: np.ndarray) -> tuple[np.ndarray, int]:
    """Dense weights (len(f), k) over the k lattice nodes f touches, and the first node index."""
    import numpy as np

    w, first = bspline_weights(f)
    lo = int(first.min())
    m = np.zeros((f.size, int(first.max()) - lo + 4), dtype="float32")
    rows = np.arange(f.size)
    for a in range(4):
        m[rows, first - lo + a] = w[a]
    return m, lo


def make_noise(seed: int, name: str, box: LonLatBox, spacing_deg: float, mid_lat: float) -> Noise:
    """The field ``name``: lattice spacing ``spacing_deg`` in latitude, the same distance in
    metres in longitude at ``mid_lat``, covering ``box`` with two nodes to spare."""
    dlat = spacing_deg
    dlon = spacing_deg / math.cos(math.radians(mid_lat))  # isotropic in metres
    n_lat = math.ceil((box[3] - box[1]) / dlat) + 6
    n_lon = math.ceil((box[2] - box[0]) / dlon) + 6
    coef = rng(seed, f"noise-{name}").standard_normal((n_lat, n_lon))
    return Noise(coef, box[1] - 2 * dlat, box[0] - 2 * dlon, dlat, dlon)
