"""Compile the region kernels into numba's on-disk cache before the first region needs them.

A fresh process that finds the cache loads machine code in about a second; without it the
first region compiles for 20-30 s. ``./dev setup`` runs this module once the environment is
installed (the cache sits beside ``ocr_core/fast_kernels.py``), and a Coiled region worker
runs it as it starts (``KernelCachePlugin``, registered by ``ocr_resources.compute``), since
compiled code is specific to the processor that compiled it (Graviton workers, x86 CI).

    python -m ocr_core.kernel_cache      # compile or load, print what happened
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from distributed import WorkerPlugin
from typing_extensions import override


@dataclass(frozen=True)
class Warmed:
    """How long warming took and how many kernels were loaded from the cache or compiled."""

    seconds: float
    loaded: int
    compiled: int


def warm() -> Warmed:
    """Run the production region path on a tiny region (the production types and layouts, so
    every specialization it uses is compiled)."""
    import numpy as np

    from ocr_core import fast_kernels
    from ocr_core.grid import CONUS
    from ocr_core.reproject import source_window, window_chunks
    from ocr_core.risk import RegionInputs, region_wind_bp
    from ocr_core.schema import SCENARIO_YEARS

    t0 = time.perf_counter()
    pad, n = CONUS.buffer_pixels, 24
    lat = CONUS.lat_centers(40_000 - pad, 40_000 + n + pad)
    lon = CONUS.lon_centers(90_000 - pad, 90_000 + n + pad)
    x = -2_361_000.0 + 135.0 + 270.0 * np.arange(17_500)
    y = 259_000.0 + 135.0 + 270.0 * np.arange(11_700)
    i0, i1, j0, j1 = source_window(x, y, "EPSG:5070", (lon[0], lat[0], lon[-1], lat[-1]))
    rng = np.random.default_rng(0)
    shape = (i1 - i0, j1 - j0)
    fractions = rng.random((lat.size, lon.size, 8), dtype=np.float32)
    inputs = RegionInputs(
        lat=lat,
        lon=lon,
        region=(pad, pad + n, pad, pad + n),
        wind=fractions / fractions.sum(axis=-1, keepdims=True),
        bp270={
            s: np.where(rng.random(shape) < 0.5, 0.0, 0.02).astype(np.float32)
            for s in SCENARIO_YEARS
        },
        x270=x[j0:j1],
        y270=y[i0:i1],
        crs270="EPSG:5070",
        pixel_size=CONUS.pixel_size,
        chunks270=(window_chunks(i0, i1, 6000), window_chunks(j0, j1, 4500)),
    )
    region_wind_bp(inputs)
    dispatchers = [
        f for f in vars(fast_kernels).values() if hasattr(f, "stats") and hasattr(f, "signatures")
    ]
    return Warmed(
        seconds=round(time.perf_counter() - t0, 2),
        loaded=sum(sum(d.stats.cache_hits.values()) for d in dispatchers),
        compiled=sum(sum(d.stats.cache_misses.values()) for d in dispatchers),
    )


class KernelCachePlugin(WorkerPlugin):
    """Fill a new Dask worker's numba cache as it starts, before it takes a region."""

    name = "ocr-kernel-cache"

    @override
    def setup(self, worker) -> None:
        warm()


def main() -> None:
    r = warm()
    how = f"compiled {r.compiled} kernel(s)" if r.compiled else "loaded from the cache"
    print(f"region kernels ready in {r.seconds} s ({how}, {r.loaded} loaded)")  # noqa: T201


if __name__ == "__main__":
    main()
