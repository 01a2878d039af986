"""Region kernel: the straightforward method against the production path, on a full region.

Generates a synthetic full-size region input (CONUS pixel size, 6000 × 4500 px region of QA id
y13_x5 plus the 0.15° buffer: correlated 270 m BP with ~30 % zeros and a NaN corner, wind
fractions summing to 1 with a NaN corner and some all-zero pixels), then in one process:

    (b) ocr_core.risk.compute_region_risk (what the region_risk asset runs; first, so its peak
        RSS is not inflated by (a)'s leftovers)
    (a) ocr_core.risk.straightforward_region_risk: per direction and iteration a full 81 × 81
        cv2.filter2D on the whole buffered array, numpy masking, composite as one broadcast

and prints wall time, peak RSS (sampled, whole process, inputs included), the ratio (a)/(b),
the max abs difference of every output variable with NaN-pattern equality, the stage
breakdown of (b), the numba first-call time and a scaling table of (b):

    python benchmarks/bench_region_kernel.py [--scale 1.0] [--skip-straightforward]
        [--skip-scaling] [--cold-numba]

``--scale`` is a fraction of the region's area (the buffer stays 0.15°). ``--cold-numba``
compiles into an empty cache to time a real compilation. A full straightforward run takes
about 3 minutes and ~11 GB. Figures depend on the machine and its load: indicative.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

GiB = 2**30


def make_region_inputs(area: float = 1.0, seed: int = 0, region_id: str = "y13_x5"):
    """Synthetic RegionInputs of a CONUS region (``area`` = fraction of the region's area)."""
    import cv2
    import numpy as np
    from pyproj import Transformer
    from scipy import ndimage

    from ocr_core.grid import get_grid
    from ocr_core.risk import SCENARIOS, RegionInputs

    rng = np.random.default_rng(seed)
    grid = get_grid("conus")
    r0, r1, c0, c1 = grid.pixel_window(region_id)
    h = max(1, round((r1 - r0) * math.sqrt(area)))
    w = max(1, round((c1 - c0) * math.sqrt(area)))
    b = grid.buffer_pixels
    lat = grid.lat_centers(r0 - b, r0 + h + b)
    lon = grid.lon_centers(c0 - b, c0 + w + b)
    ny, nx = lat.size, lon.size

    # 270 m EPSG:5070 window (north-up) covering the buffered box plus 3 pixels
    t = Transformer.from_crs("EPSG:4326", "EPSG:5070", always_xy=True)
    ex, ey = t.transform(
        np.concatenate([lon, lon, np.full(ny, lon[0]), np.full(ny, lon[-1])]),
        np.concatenate([np.full(nx, lat[0]), np.full(nx, lat[-1]), lat, lat]),
    )
    x270 = np.arange(math.floor(ex.min() / 270) - 3, math.ceil(ex.max() / 270) + 4) * 270.0 + 135
    y270 = (np.arange(math.floor(ey.min() / 270) - 3, math.ceil(ey.max() / 270) + 4) * 270.0 + 135)[
        ::-1
    ]
    shape = (y270.size, x270.size)
    field = ndimage.gaussian_filter(rng.standard_normal(shape), 3.0)
    cut = np.quantile(field, 0.3)
    base = np.where(field > cut, (field - cut) / (field.max() - cut), 0.0)
    ii, jj = np.indices(shape)
    corner = ii / shape[0] + jj / shape[1] < 0.3  # NW corner: ocean
    bp270 = {}
    for k, scenario in enumerate(SCENARIOS):
        change = 1 + 0.3 * k * ndimage.gaussian_filter(rng.random(shape), 5.0)
        bp = np.where(base > 0, 0.0005 + 0.08 * base * change, 0.0)
        bp[corner] = np.nan
        bp[rng.random(shape) < 0.003] = np.nan
        bp[rng.random(shape) < 0.01] = 0.0  # isolated holes for the gap-fill
        bp270[scenario] = bp.astype(np.float32)

    wind = np.empty((ny, nx, 8), dtype=np.float32)
    low = ndimage.gaussian_filter(rng.gamma(2.0, size=(8, ny // 64 + 2, nx // 64 + 2)), (0, 1, 1))
    for d in range(8):
        wind[..., d] = cv2.resize(
            low[d].astype(np.float32), (nx, ny), interpolation=cv2.INTER_LINEAR
        )
    step = 256
    for i in range(0, ny, step):
        block = wind[i : i + step]
        block *= 1 + 0.2 * rng.random(block.shape, dtype=np.float32)
        block /= block.sum(axis=-1, keepdims=True)
        rows = np.arange(i, i + block.shape[0])[:, None]
        nw = (ny - 1 - rows) / ny + np.arange(nx)[None, :] / nx < 0.25
        block[nw] = np.nan
        block[rng.random(block.shape[:2]) < 0.002] = 0.0
    region = (b, b + h, b, b + w)
    return RegionInputs(
        lat=lat,
        lon=lon,
        region=region,
        wind=wind,
        bp270=bp270,
        x270=x270,
        y270=y270,
        crs270="EPSG:5070",
        crps=rng.random((h, w), dtype=np.float32) * 100,
        rps=rng.random((h, w), dtype=np.float32) * 5,
        riley30={s: rng.random((h, w), dtype=np.float32) * 0.05 for s in SCENARIOS},
        pixel_size=grid.pixel_size,
    )


def input_bytes(inp) -> int:
    arrays = [inp.wind, inp.crps, inp.rps, *inp.bp270.values(), *inp.riley30.values()]
    return sum(a.nbytes for a in arrays)


def run(fn, inp):
    """(result, wall seconds, PeakRSS, timings) of fn(inp, timings)."""
    from ocr_core.memory import PeakRSS

    timings: dict[str, float] = {}
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        out = fn(inp, timings)
        wall = time.perf_counter() - t0
    return out, wall, mem, timings


def compare(a: dict, b: dict) -> list[tuple[str, float, bool]]:
    import numpy as np

    rows = []
    for name in a:
        x, y = a[name], b[name]
        same_nan = bool(np.array_equal(np.isnan(x), np.isnan(y)))
        ok = np.isfinite(x) & np.isfinite(y)
        diff = float(np.abs(x[ok].astype(np.float64) - y[ok]).max()) if ok.any() else 0.0
        rows.append((name, diff, same_nan))
    return rows


def machine() -> str:
    mem = Path("/proc/meminfo").read_text().split("\n")[0].split()[1]
    model = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        "?",
    )
    load = os.getloadavg()[0]
    return (
        f"nproc {os.cpu_count()} ({model}), RAM {int(mem) / 2**20:.1f} GiB, load average {load:.1f}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", type=float, default=1.0, help="fraction of a region's area")
    ap.add_argument("--skip-straightforward", action="store_true")
    ap.add_argument("--skip-scaling", action="store_true")
    ap.add_argument("--cold-numba", action="store_true", help="compile into an empty cache")
    args = ap.parse_args()
    cold_cache = tempfile.TemporaryDirectory(prefix="numba-cold-") if args.cold_numba else None
    if cold_cache is not None:
        os.environ["NUMBA_CACHE_DIR"] = cold_cache.name

    import numba

    from ocr_core import fast_kernels
    from ocr_core.risk import (
        DIRECTIONS,
        centre_pixel_sizes,
        fast_region_risk,
        make_kernel,
        plan_region,
        straightforward_region_risk,
    )

    print(f"machine: {machine()}, numba threads {numba.get_num_threads()}")

    t0 = time.perf_counter()
    tiny = make_region_inputs(area=1e-4, seed=1)
    fast_region_risk(tiny)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    fast_region_risk(tiny)
    warm = time.perf_counter() - t0
    hits = sum(sum(d.stats.cache_hits.values()) for d in _dispatchers(fast_kernels))
    print(
        f"numba first call: {first:.1f} s on a tiny region ({warm:.2f} s warm): "
        f"{'cache load' if hits else 'compilation'} ≈ {first - warm:.1f} s\n"
    )
    del tiny

    t0 = time.perf_counter()
    inp = make_region_inputs(area=args.scale)
    ny, nx = inp.lat.size, inp.lon.size
    r0, r1, c0, c1 = inp.region
    dx, dy = centre_pixel_sizes(inp)
    runs = [fast_kernels.decompose_kernel(make_kernel(d, dx, dy)) for d in DIRECTIONS]
    plan = plan_region(inp, fast_kernels.pack_kernels(runs).reach)
    s0, s1, sc0, sc1 = plan.source
    print(
        f"input: buffered {ny} × {nx} px ({ny * nx / 1e6:.1f} Mpx), region {r1 - r0} × "
        f"{c1 - c0} px; the fast path reads {s1 - s0} × {sc1 - sc0} px "
        f"({(s1 - s0) * (sc1 - sc0) / (ny * nx):.0%}); inputs {input_bytes(inp) / GiB:.2f} GiB; "
        f"generated in {time.perf_counter() - t0:.1f} s"
    )

    fast, wall_b, mem_b, tb = run(fast_region_risk, inp)
    report("(b) production  compute_region_risk", wall_b, mem_b)
    labels = {
        "checks": "kernels, pixel sizes, fraction checks",
        "gap_fill_reproject": "gap-fill + reprojection index (once)",
        "spread_composite": "spreading + composite (fused)",
        "smooth_clip": "smoothing + clip",
        "outputs": "output variables",
    }
    for k, v in tb.items():
        print(f"      {labels.get(k, k):<45s} {v:7.2f} s")
    if not args.skip_straightforward:
        slow, wall_a, mem_a, ta = run(straightforward_region_risk, inp)
        report("(a) straightforward", wall_a, mem_a)
        for k, v in ta.items():
            print(f"      {k:<45s} {v:7.2f} s")
        print(f"\nratio (a)/(b): {wall_a / wall_b:.1f}×")
        print(f"{'variable':<15s} {'max |a - b|':>12s}  same NaN pattern")
        for name, diff, same in compare(slow, fast):
            print(f"{name:<15s} {diff:12.3g}  {same}")
        del slow
    del fast

    if not args.skip_scaling:
        print(f"\nscaling of (b) (fresh inputs each; numba threads {numba.get_num_threads()})")
        print(
            f"{'area':>6s} {'buffered px':>13s} {'region Mpx':>10s} {'wall s':>7s} "
            f"{'Mpx/s':>6s} {'peak GiB':>8s} {'added GiB':>9s}"
        )
        del inp
        for area in (0.25, 0.5, 1.0):
            sub = make_region_inputs(area=area)
            _, wall, mem, _ = run(fast_region_risk, sub)
            rpx = (sub.region[1] - sub.region[0]) * (sub.region[3] - sub.region[2]) / 1e6
            shape = f"{sub.lat.size}×{sub.lon.size}"
            print(
                f"{area:6.2f} {shape:>13s} {rpx:10.1f} {wall:7.2f} {rpx / wall:6.2f} "
                f"{mem.peak_bytes / GiB:8.2f} {mem.delta_bytes / GiB:9.2f}"
            )
            del sub


def _dispatchers(module):
    import numba

    return [v for v in vars(module).values() if isinstance(v, numba.core.registry.CPUDispatcher)]


def report(label: str, wall: float, mem) -> None:
    print(
        f"{label}: {wall:7.2f} s, peak RSS {mem.peak_bytes / GiB:.2f} GiB "
        f"(+{mem.delta_bytes / GiB:.2f} GiB over the {mem.start_bytes / GiB:.2f} GiB "
        "before the call)"
    )


if __name__ == "__main__":
    main()
