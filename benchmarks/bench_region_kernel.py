"""Region kernel: the straightforward method against the production path, on a full region.

Generates a synthetic full-size region input (CONUS pixel size, 6000 × 4500 px region of QA id
y13_x5 plus the 0.15° buffer: correlated 270 m BP with ~30 % zeros and a NaN corner, wind
fractions summing to 1 with a NaN corner and some all-zero pixels), then in one process:

    (b) the production region task (what the region_risk asset runs: ``region_wind_bp`` on
        the hazard inputs, which it then releases, then the pass-through variables and
        ``region_outputs``; first, so its peak RSS is not inflated by (a)'s leftovers)
    (a) straightforward_region_risk (tests/straightforward_method.py, the tests' oracle): per
        direction and iteration a full 81 × 81 cv2.filter2D on the whole buffered array,
        numpy masking, composite as one broadcast

and prints wall time, peak RSS (sampled, whole process, inputs included), the ratio (a)/(b),
the max abs difference of every output variable with NaN-pattern equality, the stage
breakdown of (b), start-up (the first call in a fresh process with an empty numba cache and
with the cache ``./dev setup`` builds, against a warm call) and a scaling table of (b):

    python benchmarks/bench_region_kernel.py [--scale 1.0] [--skip-straightforward]
        [--skip-scaling] [--skip-startup]

``--scale`` is a fraction of the region's area (the buffer stays 0.15°). A full
straightforward run takes about 2 minutes and ~9 GiB. Figures depend on the machine and its
load: indicative.
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
sys.path.insert(0, str(REPO))  # ocr_core, and tests.straightforward_method as the baseline

GiB = 2**30


def make_region_inputs(area: float = 1.0, seed: int = 0, region_id: str = "y13_x5"):
    """Synthetic RegionInputs of a CONUS region (``area`` = fraction of the region's area),
    cut as ``load_region_inputs`` cuts the real stores: the 30 m window by label (edges ±
    0.15°), the 270 m window of a CONUS-wide south-up store chunked 6000 × 4500, wind fractions
    over the region grown by the smoothing radius."""
    import cv2
    import numpy as np
    from scipy import ndimage

    from ocr_core.grid import get_grid
    from ocr_core.reproject import label_window, source_window, window_chunks
    from ocr_core.risk import RegionInputs, smoothing_window
    from ocr_core.schema import SCENARIO_YEARS

    rng = np.random.default_rng(seed)
    grid = get_grid("conus")
    r0, r1, c0, c1 = grid.pixel_window(region_id)
    h = max(1, round((r1 - r0) * math.sqrt(area)))
    w = max(1, round((c1 - c0) * math.sqrt(area)))
    pad, buf = grid.buffer_pixels + 2, grid.buffer_deg
    south, west = grid.lat_edge(r0), grid.lon_edge(c0)
    north, east = grid.lat_edge(r0 + h), grid.lon_edge(c0 + w)
    lat_all = grid.lat_centers(r0 - pad, r0 + h + pad)
    lon_all = grid.lon_centers(c0 - pad, c0 + w + pad)
    i0, i1 = label_window(lat_all, south - buf, north + buf)
    j0, j1 = label_window(lon_all, west - buf, east + buf)
    lat, lon = lat_all[i0:i1], lon_all[j0:j1]
    region = (pad - i0, pad - i0 + h, pad - j0, pad - j0 + w)

    # a CONUS-wide 270 m EPSG:5070 store, south-up (sorted by y), chunked like the real ones
    x_all = -2_361_000.0 + 135.0 + 270.0 * np.arange(17_500)
    y_all = 259_000.0 + 135.0 + 270.0 * np.arange(11_700)
    a0, a1, b0, b1 = source_window(
        x_all, y_all, "EPSG:5070", (west - buf, south - buf, east + buf, north + buf)
    )
    x270, y270 = x_all[b0:b1], y_all[a0:a1]
    chunks = (window_chunks(a0, a1, 6000), window_chunks(b0, b1, 4500))
    shape = (y270.size, x270.size)
    field = ndimage.gaussian_filter(rng.standard_normal(shape), 3.0)
    cut = np.quantile(field, 0.3)
    base = np.where(field > cut, (field - cut) / (field.max() - cut), 0.0)
    ii, jj = np.indices(shape)
    corner = (shape[0] - 1 - ii) / shape[0] + jj / shape[1] < 0.3  # NW corner: ocean
    bp270 = {}
    for k, scenario in enumerate(SCENARIO_YEARS):
        change = 1 + 0.3 * k * ndimage.gaussian_filter(rng.random(shape), 5.0)
        bp = np.where(base > 0, 0.0005 + 0.08 * base * change, 0.0)
        bp[corner] = np.nan
        bp[rng.random(shape) < 0.003] = np.nan
        bp[rng.random(shape) < 0.01] = 0.0  # isolated holes for the gap-fill
        bp270[scenario] = bp.astype(np.float32)

    ny, nx = lat.size, lon.size
    wr0, wr1, wc0, wc1 = smoothing_window(region, (ny, nx), grid.pixel_size)
    wy, wx = wr1 - wr0, wc1 - wc0
    wind = np.empty((wy, wx, 8), dtype=np.float32)
    low = ndimage.gaussian_filter(rng.gamma(2.0, size=(8, wy // 64 + 2, wx // 64 + 2)), (0, 1, 1))
    for d in range(8):
        wind[..., d] = cv2.resize(
            low[d].astype(np.float32), (wx, wy), interpolation=cv2.INTER_LINEAR
        )
    step = 256
    for i in range(0, wy, step):
        block = wind[i : i + step]
        block *= 1 + 0.2 * rng.random(block.shape, dtype=np.float32)
        block /= block.sum(axis=-1, keepdims=True)
        rows = np.arange(wr0 + i, wr0 + i + block.shape[0])[:, None]
        nw = (ny - 1 - rows) / ny + np.arange(wc0, wc1)[None, :] / nx < 0.25
        block[nw] = np.nan
        block[rng.random(block.shape[:2]) < 0.002] = 0.0
    store_270m = {"bp270": bp270, "x270": x270, "y270": y270, "chunks270": chunks}
    return RegionInputs(
        lat=lat,
        lon=lon,
        region=region,
        wind=wind,
        wind_window=(wr0, wr1, wc0, wc1),
        crs270="EPSG:5070",
        pixel_size=grid.pixel_size,
        **store_270m,
    )


def make_pass_through(shape: tuple[int, int], seed: int = 0) -> dict:
    """Synthetic CRPS, RPS and 30 m Riley BP of a region (the variables passed through)."""
    import numpy as np

    from ocr_core.schema import SCENARIO_YEARS

    rng = np.random.default_rng(seed + 1000)
    return {
        "crps": rng.random(shape, dtype=np.float32) * 100,
        "rps": rng.random(shape, dtype=np.float32) * 5,
        "riley30": {s: rng.random(shape, dtype=np.float32) * 0.05 for s in SCENARIO_YEARS},
    }


def input_bytes(inp) -> int:
    return sum(a.nbytes for a in [inp.wind, *inp.bp270.values()])


def production_region(inputs: list, timings: dict):
    """What the region task does: the wind-informed BP from the hazard inputs (released
    afterwards: the list passed in is emptied), then the pass-through variables, the outputs."""
    from ocr_core.risk import region_outputs, region_wind_bp

    inp = inputs.pop()
    shape = (inp.region[1] - inp.region[0], inp.region[3] - inp.region[2])
    bp = region_wind_bp(inp, timings)
    del inp
    return region_outputs(bp, **make_pass_through(shape))


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


def first_call_child() -> None:
    """In a fresh process: time the first production region call (numba loads or compiles)."""
    import json

    inputs = [make_region_inputs()]
    t0 = time.perf_counter()
    production_region(inputs, {})
    print(json.dumps({"first_call_s": time.perf_counter() - t0}))


def fresh_process_first_call(cold: bool) -> float:
    """Seconds of the first region call in a new process, with an empty numba cache (cold) or
    the cache the environment ships (built by ``./dev setup``)."""
    import json
    import subprocess

    env = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="numba-cold-") as empty:
        if cold:
            env["NUMBA_CACHE_DIR"] = empty
        out = subprocess.run(
            [sys.executable, __file__, "--first-call-child"],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    return json.loads(out.strip().splitlines()[-1])["first_call_s"]


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--scale", type=float, default=1.0, help="fraction of a region's area")
    ap.add_argument("--skip-straightforward", action="store_true")
    ap.add_argument("--skip-scaling", action="store_true")
    ap.add_argument("--skip-startup", action="store_true", help="no fresh-process timings")
    ap.add_argument("--first-call-child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.first_call_child:
        return first_call_child()

    import numba

    from ocr_core import fast_kernels
    from ocr_core.risk import region_wind_bp

    print(f"machine: {machine()}, numba threads {numba.get_num_threads()}")
    t0 = time.perf_counter()
    tiny = make_region_inputs(area=1e-4, seed=1)
    region_wind_bp(tiny)
    first = time.perf_counter() - t0
    hits = sum(sum(d.stats.cache_hits.values()) for d in _dispatchers(fast_kernels))
    print(
        f"numba: first call on a tiny region {first:.1f} s "
        f"({'loaded from the cache' if hits else 'compiled: no cache, run ./dev setup'})\n"
    )
    del tiny

    t0 = time.perf_counter()
    inp = make_region_inputs(area=args.scale)
    describe(inp, time.perf_counter() - t0)

    handed = [inp]
    del inp  # the region task holds the only reference, as in process_region.run_region_risk
    fast, wall_b, mem_b, tb = run(production_region, handed)
    report("(b) production  region task (BP, then pass-through + outputs)", wall_b, mem_b)
    labels = {
        "checks": "kernels, pixel sizes, fraction checks",
        "gap_fill_reproject": "gap-fill + GDAL cell index (once, both scenarios)",
        "spread_composite": "spreading + composite (fused)",
        "smooth_clip": "smoothing + clip",
    }
    for k, v in tb.items():
        print(f"      {labels.get(k, k):<50s} {v:7.2f} s")
    if not args.skip_straightforward:
        compare_straightforward(args.scale, fast, wall_b)
    del fast

    if not args.skip_startup:
        report_startup(args.scale)
    if not args.skip_scaling:
        report_scaling()


def describe(inp, seconds: float) -> None:
    """The generated input: its size, the 270 m window and what the fast path reads."""
    from ocr_core.risk import centre_pixel_sizes, kernel_set, make_kernel, plan_region
    from ocr_core.schema import WIND_DIRECTIONS

    ny, nx = inp.lat.size, inp.lon.size
    r0, r1, c0, c1 = inp.region
    dx, dy = centre_pixel_sizes(inp)
    ks = kernel_set([make_kernel(d, dx, dy) for d in WIND_DIRECTIONS])
    assert ks is not None, "the wind kernels are runs of one weight"
    plan = plan_region(inp, ks.reach)
    s0, s1, sc0, sc1 = plan.source
    print(
        f"input: buffered {ny} × {nx} px ({ny * nx / 1e6:.1f} Mpx, {(ny - r1 + r0) // 2} px of "
        f"buffer), region {r1 - r0} × {c1 - c0} px; 270 m window {inp.y270.size} × "
        f"{inp.x270.size} in chunks {[len(c) for c in inp.chunks270 or ()]}; the fast path reads "
        f"{s1 - s0} × {sc1 - sc0} px ({(s1 - s0) * (sc1 - sc0) / (ny * nx):.0%}); hazard "
        f"inputs {input_bytes(inp) / GiB:.2f} GiB; generated in {seconds:.1f} s"
    )


def compare_straightforward(scale: float, fast: dict, wall_b: float) -> None:
    """(a): the straightforward method on the same inputs, its time against (b)'s and the
    largest difference of every output variable."""
    from tests.straightforward_method import straightforward_region_risk

    inp = make_region_inputs(area=scale)
    shape = (inp.region[1] - inp.region[0], inp.region[3] - inp.region[2])
    for k, v in make_pass_through(shape).items():
        setattr(inp, k, v)
    slow, wall_a, mem_a, ta = run(straightforward_region_risk, inp)
    del inp
    report("(a) straightforward", wall_a, mem_a)
    for k, v in ta.items():
        print(f"      {k:<50s} {v:7.2f} s")
    print(f"\nratio (a)/(b): {wall_a / wall_b:.1f}×")
    print(f"{'variable':<15s} {'max |a - b|':>12s}  same NaN pattern")
    for name, diff, same in compare(slow, fast):
        print(f"{name:<15s} {diff:12.3g}  {same}")
    del slow


def report_startup(scale: float) -> None:
    """The production task's first call in a fresh process (empty and shipped numba cache)
    against a warm call."""
    _, warm, _, _ = run(production_region, [make_region_inputs(area=scale)])
    cold = fresh_process_first_call(cold=True)
    fresh = fresh_process_first_call(cold=False)
    print("\nstartup (full region, production region task):")
    print(f"  cold: fresh process, empty numba cache     {cold:7.2f} s ({cold / warm:.1f}× warm)")
    print(f"  first call, fresh process, shipped cache  {fresh:7.2f} s ({fresh / warm:.1f}× warm)")
    print(f"  warm: a later call in this process        {warm:7.2f} s")


def report_scaling() -> None:
    """Wall time and memory of (b) at a quarter, half and the whole of a region's area."""
    import numba

    print(f"\nscaling of (b) (fresh inputs each; numba threads {numba.get_num_threads()})")
    print(
        f"{'area':>6s} {'buffered px':>13s} {'region Mpx':>10s} {'wall s':>7s} "
        f"{'Mpx/s':>6s} {'peak GiB':>8s} {'added GiB':>9s}"
    )
    for area in (0.25, 0.5, 1.0):
        sub = make_region_inputs(area=area)
        rpx = (sub.region[1] - sub.region[0]) * (sub.region[3] - sub.region[2]) / 1e6
        shape = f"{sub.lat.size}×{sub.lon.size}"
        handed = [sub]
        del sub
        _, wall, mem, _ = run(production_region, handed)
        print(
            f"{area:6.2f} {shape:>13s} {rpx:10.1f} {wall:7.2f} {rpx / wall:6.2f} "
            f"{mem.peak_bytes / GiB:8.2f} {mem.delta_bytes / GiB:9.2f}"
        )


def _dispatchers(module):
    from numba.core.registry import CPUDispatcher

    return [v for v in vars(module).values() if isinstance(v, CPUDispatcher)]


def report(label: str, wall: float, mem) -> None:
    print(
        f"{label}: {wall:7.2f} s, peak RSS {mem.peak_bytes / GiB:.2f} GiB "
        f"({mem.peak_bytes / 1e9:.2f} GB) "
        f"(+{mem.delta_bytes / GiB:.2f} GiB over the {mem.start_bytes / GiB:.2f} GiB "
        "before the call)"
    )


if __name__ == "__main__":
    main()
