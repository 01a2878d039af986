"""The fire-weather wind-direction shares: a softmax of smooth per-direction logits around the
area's climatology, turned onshore near the coast, quantized so each pixel sums to exactly 1."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ocr_core.demo.geo import M_PER_DEG_LAT
from ocr_core.schema import WIND_DIRECTIONS

if TYPE_CHECKING:
    import numpy as np

    from ocr_core.demo.masks import Where
    from ocr_core.demo.scene import Scene

WIND_QUANTUM = 2.0**-12  # wind fractions are multiples of this, so they sum to exactly 1
COAST_DECAY_KM = 8.0  # the onshore shift fades with distance to the sea over this
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


def wind_shares(scene: Scene, where: Where, land: np.ndarray) -> np.ndarray:
    """(lat, lon, 8) wind-direction shares on the grid ``where``, NaN off ``land``."""
    import numpy as np

    coastal = _coastal_weight(scene, land)
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


def _coastal_weight(scene: Scene, land: np.ndarray) -> np.ndarray:
    """exp(−distance to the sea / 8 km) on the grid (float32): distances on a coarse grid,
    then linear interpolation back."""
    import numpy as np
    from scipy import ndimage

    step = 8
    coarse = np.asarray(ndimage.distance_transform_edt(land[::step, ::step])) * step
    km = coarse * scene.grid.pixel_size * M_PER_DEG_LAT / 1000.0
    rows = np.arange(land.shape[0]) / step
    cols = np.arange(land.shape[1]) / step
    dist_km = _linear_matrix(rows, km.shape[0]) @ km @ _linear_matrix(cols, km.shape[1]).T
    return np.exp(-dist_km / COAST_DECAY_KM).astype("float32")


def _linear_matrix(f: np.ndarray, n: int) -> np.ndarray:
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
