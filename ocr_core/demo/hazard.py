"""The hazard fields as functions of position: Scott burn probability, CRPS and RPS, Riley burn
probability for both climate runs, and Riley on the 270 m pixels with a few gaps to fill.

Ocean (outside the states, and any pixel whose grid region is not a valid id) is NaN in every
layer; towns and lakes have burn probability 0; rock patches have NaN burn probability (and so
NaN RPS). CRPS is defined on all land, towns included, as in Wildfire Risk to Communities,
where it is extended into non-burnable areas.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ocr_core.demo.geo import ALBERS_CRS
from ocr_core.demo.masks import Where, blob_score, land_mask
from ocr_core.demo.noise import rng
from ocr_core.schema import SCENARIO_YEARS

if TYPE_CHECKING:
    import numpy as np

    from ocr_core.demo.scene import Scene

BP_MAX_SCOTT = 0.08
BP_MAX_RILEY = 0.07
MANTISSA_BITS = 12  # hazard values keep 12 mantissa bits (relative step 2.4e-4): compresses well
N_ALBERS_GAPS = 12  # isolated 0 / NaN pixels in the 270 m stores, for the gap-fill


@dataclass(frozen=True)
class Hazard:
    """The hazard layers at a set of evaluation points (float32) and their land mask."""

    scott_bp: np.ndarray
    crps: np.ndarray
    rps: np.ndarray
    riley_bp: dict[str, np.ndarray]  # by climate run year
    land: np.ndarray


def logistic(x: np.ndarray) -> np.ndarray:
    import numpy as np

    return 1.0 / (1.0 + np.exp(-x))


def round_bits(a: np.ndarray, keep: int = MANTISSA_BITS) -> np.ndarray:
    """Round float32 values to ``keep`` mantissa bits (NaN kept), so zstd compresses them well."""
    import numpy as np

    a = np.ascontiguousarray(a, dtype="float32")
    drop = 23 - keep
    bits = a.view("uint32")
    rounded = ((bits + np.uint32(1 << (drop - 1))) & np.uint32((0xFFFFFFFF >> drop) << drop)).view(
        "float32"
    )
    return np.where(np.isfinite(a), rounded, a)


def hazard(scene: Scene, where: Where) -> Hazard:
    """Scott BP/CRPS/RPS and Riley BP 2011/2047 at the points, plus the land mask."""
    import numpy as np

    n = where.noise
    base = 0.9 * n("u400") + 0.6 * n("u120") + 0.45 * n("u40")
    u = base + 0.25 * n("u12")
    town = blob_score(scene.towns, where, 0.3, reach=2.5)
    t = np.clip((town - 1.0) / 1.5, 0.0, 1.0)
    wui = 0.35 + 0.65 * t * t * (3 - 2 * t)  # burn probability lower at the urban edge
    zero = (town < 1.0) | (blob_score(scene.lakes, where, 0.0) < 1.0)
    rock = (blob_score(scene.rocks, where, 0.0) < 1.0) & ~zero
    land = land_mask(scene, where)

    def finish(bp):
        bp = np.where(zero, 0.0, bp)
        bp = np.where(rock | ~land, np.nan, bp)
        return np.clip(round_bits(bp), 0.0, 1.0)

    scott_bp = finish(BP_MAX_SCOTT * logistic(1.3 * u - 1.0) * wui)
    # Riley is native 270 m: no sub-kilometre variation beyond the masks.
    riley_latent = 0.75 * base + 0.55 * n("r150") + 0.35 * n("r30")
    riley_2011_raw = BP_MAX_RILEY * logistic(1.3 * riley_latent - 0.9) * wui
    factor = 1.2 + 0.6 * logistic(1.8 * n("f300"))
    riley_2011 = finish(riley_2011_raw)
    riley_2047 = finish(np.minimum(riley_2011_raw * factor, 1.0))
    intensity = 0.35 * u + 0.7 * n("c200") + 0.45 * n("c40") + 0.25 * n("c12") - 0.2
    crps = np.where(land, round_bits(100.0 * logistic(intensity)), np.nan)
    crps = np.clip(crps, 0.0, 100.0).astype("float32")
    rps = np.clip(round_bits(scott_bp * crps), 0.0, 100.0).astype("float32")
    return Hazard(
        scott_bp=scott_bp.astype("float32"),
        crps=crps,
        rps=rps,
        riley_bp={"2011": riley_2011.astype("float32"), "2047": riley_2047.astype("float32")},
        land=land,
    )


def albers_riley(scene: Scene) -> dict[str, np.ndarray]:
    """Riley BP at the 270 m EPSG:5070 pixel centres (north-up) by climate run year, with a few
    isolated gap pixels."""
    import numpy as np
    from pyproj import Transformer

    xx, yy = np.meshgrid(scene.albers_x, scene.albers_y)
    lon, lat = Transformer.from_crs(ALBERS_CRS, "EPSG:4326", always_xy=True).transform(
        xx.ravel(), yy.ravel()
    )
    hz = hazard(scene, Where.points(scene, lat, lon))
    out = {year: hz.riley_bp[year].reshape(xx.shape) for year in SCENARIO_YEARS}
    for k, (i, j) in enumerate(_gap_pixels(scene, out[SCENARIO_YEARS[0]])):
        for values in out.values():
            values[i, j] = 0.0 if k % 2 == 0 else np.nan
    return out


def _gap_pixels(scene: Scene, bp: np.ndarray) -> list[tuple[int, int]]:
    """Pixels the gap-fill should close once made 0 or NaN: positive pixels whose 4 edge
    neighbours are all positive, chosen at random at least 3 pixels apart."""
    import numpy as np

    core = bp[1:-1, 1:-1]
    ok = (
        (core > 0)
        & (bp[:-2, 1:-1] > 0)
        & (bp[2:, 1:-1] > 0)
        & (bp[1:-1, :-2] > 0)
        & (bp[1:-1, 2:] > 0)
    )
    cand = np.argwhere(ok) + 1
    stream = rng(scene.seed, "albers-gaps")
    chosen: list[tuple[int, int]] = []
    for i, j in cand[stream.permutation(len(cand))]:
        if all(abs(i - a) > 2 or abs(j - b) > 2 for a, b in chosen):
            chosen.append((int(i), int(j)))
        if len(chosen) == N_ALBERS_GAPS:
            break
    return chosen
