"""Fast region kernel: iterated normalized convolution by line prefix sums, streamed by rows.

Every spreading kernel of the method is an ellipse indicator divided by its tap count: all its
non-zero taps share one weight ``w`` and, the ellipse being convex, the taps on any grid line
(row, column or diagonal) form one contiguous run. A correlation is then ``w`` times a sum of
run sums, each the difference of two prefix sums along the line: two lookups per run (12-26
runs) instead of ~300 multiply-adds. Values and valid-pixel counts share one exact integer:
``(v > 0) << shift`` plus ``v`` in fixed point (``fixed_point``), summed in uint64 whose
wraparound keeps prefix differences exact; the count is exact and the value sum is within
~1e-13·max|v| of the true sum. The result is rounded like the straightforward method:
``c = float32(w·S)``, ``m = float32(w·count)``, the 1e-11 thresholds, ``c / m`` in float32.

The iterations never materialise full-size intermediates: each output row of iteration 3 comes
from a ring of prefix rows of iteration 2, whose rows come from a small row cache that
iteration 2 fills on demand from iteration 1, itself fed from the source rows. Borders mirror
OpenCV's BORDER_REFLECT_101 at the edges of each iteration's input window, index by index, so
arrays smaller than the kernel work too. The work is split into independent units (row chunk ×
column tile, each recomputing its halo) run in parallel; a column tile keeps a direction's
rings in the L2 cache while it handles a batch of rows.

Geometry (the windows each iteration covers, units, column maps) is planned in Python; the
numba functions only stream rows.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numba as nb
import numpy as np

HORIZONTAL, VERTICAL, DIAGONAL, ANTIDIAGONAL = 0, 1, 2, 3
# Relative cost of the sequential horizontal prefix scan, in "runs": the other line kinds build
# a prefix row with one vector add, the horizontal one with a dependent scalar chain.
HORIZONTAL_SCAN_COST = 3.0
TILE_WIDTH = 1024  # output columns per unit: rings of ~1100 × 30 uint64 stay in L2
SPAN_GAP = 48  # zero spans of the last iteration closer than this are computed as one
ROW_BATCH = 16  # output rows per direction in turn: its rings stay in L2 meanwhile
UNITS_PER_THREAD = 4  # handed out one at a time: a busy core does not hold the others up
EPS32 = np.float32(1e-11)  # the method's threshold, compared in float32 like numpy does
MODE_SPREAD, MODE_COMPOSITE = 0, 1
# numba's fallback "workqueue" threading layer crashes on concurrent parallel calls from
# several Python threads (e.g. a threaded Dask worker); each call uses every core anyway.
PARALLEL = threading.Lock()


# ------------------------------------------------------------------------------ kernel runs


@dataclass(frozen=True)
class RunKernel:
    """A uniform-weight kernel as runs along one line kind.

    A run sum is ``P[row rb][col cb] - P[row ra][col ca]`` of the prefix rows, offsets relative
    to the output pixel; ``rows``/``cols`` are the value rows/columns the prefix sums read and
    ``reach`` the largest tap offset (rows, cols).
    """

    kind: int
    weight: float
    rb: np.ndarray
    ra: np.ndarray
    cb: np.ndarray
    ca: np.ndarray
    rows: tuple[int, int]
    cols: tuple[int, int]
    reach: tuple[int, int]
    taps: int


def _line_runs(keys: np.ndarray, pos: np.ndarray):
    """{key: (first, last)} of the positions on each line, or None if a line has a gap."""
    runs = {}
    for key in np.unique(keys):
        p = np.sort(pos[keys == key])
        if p[-1] - p[0] + 1 != p.size:
            return None
        runs[int(key)] = (int(p[0]), int(p[-1]))
    return runs


def decompose_kernel(kernel: np.ndarray) -> RunKernel | None:
    """Runs of the cheapest line kind, or None when the kernel has no such structure.

    Requires every non-zero tap to hold the same finite positive weight. The anchor is the
    kernel centre ``(rows // 2, cols // 2)`` as for ``cv2.filter2D``.
    """
    k = np.asarray(kernel)
    if k.ndim != 2 or k.size == 0:
        return None
    nz = k != 0
    if not nz.any():
        return None
    taps = k[nz]
    w = taps.flat[0]
    if not (np.isfinite(w) and w > 0 and np.all(taps == w)):
        return None
    i, j = np.nonzero(nz)
    dy, dx = i - k.shape[0] // 2, j - k.shape[1] // 2
    reach = (int(np.abs(dy).max()), int(np.abs(dx).max()))
    best = None
    for kind, keys, pos in (
        (HORIZONTAL, dy, dx),
        (VERTICAL, dx, dy),
        (DIAGONAL, dx - dy, dy),
        (ANTIDIAGONAL, dx + dy, dy),
    ):
        runs = _line_runs(keys, pos)
        if runs is None:
            continue
        cost = len(runs) + (HORIZONTAL_SCAN_COST if kind == HORIZONTAL else 0.0)
        if best is None or cost < best[0]:
            best = (cost, kind, runs)
    if best is None:
        return None
    _, kind, runs = best
    ends = []  # per run: (row before, row after, col before, col after) of its prefix sums
    for key, (a, b) in runs.items():
        if kind == HORIZONTAL:  # exclusive prefix along the row: P[c] = sum of cols < c
            ends.append((key, key, b + 1, a))
        elif kind == VERTICAL:  # inclusive prefix down the column
            ends.append((b, a - 1, key, key))
        elif kind == DIAGONAL:  # chain (r, c) <- (r - 1, c - 1); taps dx = dy + key
            ends.append((b, a - 1, b + key, a - 1 + key))
        else:  # chain (r, c) <- (r - 1, c + 1); taps dx = key - dy
            ends.append((b, a - 1, key - b, key - a + 1))
    rb, ra, cb, ca = (np.array(v, dtype=np.int64) for v in zip(*ends, strict=True))
    if kind == HORIZONTAL:
        rows = (int(rb.min()), int(rb.max()))
        cols = (int(ca.min()), int(cb.max()) - 1)
    else:
        rows = (int(ra.min()), int(rb.max()))
        cols = (int(min(ca.min(), cb.min())), int(max(ca.max(), cb.max())))
    return RunKernel(kind, float(w), rb, ra, cb, ca, rows, cols, reach, int(taps.size))


# ------------------------------------------------------------------------------ geometry


def reflect101(p: np.ndarray, n: int) -> np.ndarray:
    """OpenCV BORDER_REFLECT_101 index mapping (iterated: works for any offset)."""
    p = np.asarray(p, dtype=np.int64)
    if n == 1:
        return np.zeros_like(p)
    period = 2 * n - 2
    p = np.mod(p, period)
    return np.where(p < n, p, period - p)


@dataclass(frozen=True)
class Windows:
    """Nested windows of a pipeline: ``shapes[s]`` is iteration s's input (s = 0: the source),
    ``offsets[s]`` where iteration s's output window starts inside its input window."""

    shapes: tuple[tuple[int, int], ...]
    offsets: tuple[tuple[int, int], ...]

    @property
    def origin(self) -> tuple[int, int]:
        """Position of the final window inside the source window."""
        return (sum(o[0] for o in self.offsets), sum(o[1] for o in self.offsets))


def full_windows(shape: tuple[int, int], iterations: int) -> Windows:
    """Every iteration on the whole array (the straightforward method's extent)."""
    return Windows(tuple([shape] * (iterations + 1)), tuple([(0, 0)] * iterations))


def nested_windows(
    shape: tuple[int, int],
    final: tuple[int, int, int, int],
    iterations: int,
    reach: tuple[int, int],
) -> tuple[tuple[int, int, int, int], Windows]:
    """Windows (in full-array coordinates) for a final window ``final`` of a full array.

    Iteration s (1-based) is only needed on ``final`` grown by (iterations - s) × reach,
    clipped to the array; its input is one reach larger. A side clipped by the array keeps the
    array's mirrored border; an inner side is one reach inside its input, so mirroring there
    never reaches the final window. Returns the source window and the nested Windows.
    """
    ny, nx = shape
    r0, r1, c0, c1 = final
    boxes = []
    for s in range(iterations + 1):
        g = iterations - s
        boxes.append(
            (
                max(r0 - g * reach[0], 0),
                min(r1 + g * reach[0], ny),
                max(c0 - g * reach[1], 0),
                min(c1 + g * reach[1], nx),
            )
        )
    shapes = tuple((b[1] - b[0], b[3] - b[2]) for b in boxes)
    offsets = tuple(
        (boxes[s + 1][0] - boxes[s][0], boxes[s + 1][2] - boxes[s][2]) for s in range(iterations)
    )
    return boxes[0], Windows(shapes, offsets)


@dataclass(frozen=True)
class KernelSet:
    """Runs of D kernels packed for numba, offsets shifted to be non-negative ring indices."""

    kinds: np.ndarray
    weights: np.ndarray
    nruns: np.ndarray
    rbp: np.ndarray
    rap: np.ndarray
    cbp: np.ndarray
    cap: np.ndarray
    rmin: int
    rmax: int
    cmin: int
    cmax: int
    reach: tuple[int, int]
    max_taps: int


def pack_kernels(runs: list[RunKernel]) -> KernelSet:
    rmin = min(r.rows[0] for r in runs)
    rmax = max(r.rows[1] for r in runs)
    cmin = min(r.cols[0] for r in runs)
    cmax = max(r.cols[1] for r in runs)
    width = max(r.rb.size for r in runs)
    d = len(runs)
    rbp, rap, cbp, cap = (np.zeros((d, width), dtype=np.int64) for _ in range(4))
    for i, r in enumerate(runs):
        n = r.rb.size
        rbp[i, :n], rap[i, :n] = r.rb - rmin, r.ra - rmin
        cbp[i, :n], cap[i, :n] = r.cb - cmin, r.ca - cmin
    return KernelSet(
        kinds=np.array([r.kind for r in runs], dtype=np.int64),
        weights=np.array([r.weight for r in runs], dtype=np.float64),
        nruns=np.array([r.rb.size for r in runs], dtype=np.int64),
        rbp=rbp,
        rap=rap,
        cbp=cbp,
        cap=cap,
        rmin=rmin,
        rmax=rmax,
        cmin=cmin,
        cmax=cmax,
        reach=(max(r.reach[0] for r in runs), max(r.reach[1] for r in runs)),
        max_taps=max(r.taps for r in runs),
    )


def fixed_point(max_taps: int, vmax: float) -> np.ndarray:
    """Packing of a value v as ``(v > 0) << shift`` plus ``trunc(v · 2^F)``, as a float64
    array (shift, 2^-F, 2^F) for numba.

    The count field (top bits) must hold ``max_taps``; the value field keeps a window's signed
    sum below 2^(shift - 1) (so that it can be told from the count) and below 2^53 (exact
    float64); F is as large as that allows for |v| ≤ vmax: quantization ≤ 2^-F ≈ 1e-13·vmax.
    """
    shift = min(54, 64 - max(1, math.ceil(math.log2(max_taps + 1))))
    top = max(vmax, 1e-30) * max_taps * 1.01
    frac = min(300, math.floor(shift - 2 - math.log2(top)))
    return np.array([shift, 2.0**-frac, 2.0**frac], dtype=np.float64)


def _splits(n: int, parts: int) -> list[tuple[int, int]]:
    parts = max(1, min(parts, n))
    edges = [round(i * n / parts) for i in range(parts + 1)]
    return [(edges[i], edges[i + 1]) for i in range(parts) if edges[i + 1] > edges[i]]


def plan_units(win: Windows, ks: KernelSet, threads: int, tile_width: int | None = None):
    """Per-unit output ranges of every iteration and column maps (arrays for numba).

    A unit is a rectangle of the final window; walking back through the iterations gives the
    rows/columns each one must produce (the rectangle grown by the kernels' rows/columns,
    mirrored into the iteration's window).
    """
    n = len(win.offsets)
    fh, fw = win.shapes[-1]
    col_tiles = _splits(fw, max(1, math.ceil(fw / (tile_width or TILE_WIDTH))))
    row_parts = max(1, math.ceil(UNITS_PER_THREAD * threads / len(col_tiles)))
    units = [(y, x) for y in _splits(fh, row_parts) for x in col_tiles]
    u = len(units)
    plo, phi, qlo, qhi = (np.zeros((u, n), dtype=np.int64) for _ in range(4))
    widths = np.zeros((u, n), dtype=np.int64)
    maps = []
    for k, ((y0, y1), (x0, x1)) in enumerate(units):
        plo[k, n - 1], phi[k, n - 1], qlo[k, n - 1], qhi[k, n - 1] = y0, y1 - 1, x0, x1 - 1
        for s in range(n - 1, 0, -1):
            oy, ox = win.offsets[s]
            h, w = win.shapes[s]
            rows = reflect101(np.arange(plo[k, s] + oy + ks.rmin, phi[k, s] + oy + ks.rmax + 1), h)
            cols = reflect101(np.arange(qlo[k, s] + ox + ks.cmin, qhi[k, s] + ox + ks.cmax + 1), w)
            plo[k, s - 1], phi[k, s - 1] = rows.min(), rows.max()
            qlo[k, s - 1], qhi[k, s - 1] = cols.min(), cols.max()
        unit_maps = []
        for s in range(n):
            ox = win.offsets[s][1]
            vc = np.arange(qlo[k, s] + ox + ks.cmin, qhi[k, s] + ox + ks.cmax + 1)
            cols = reflect101(vc, win.shapes[s][1])
            unit_maps.append(cols - (qlo[k, s - 1] if s > 0 else 0))
            widths[k, s] = vc.size
        maps.append(unit_maps)
    lmax = int(widths.max())
    colmap = np.zeros((u, n, lmax), dtype=np.int64)
    inner = np.zeros((u, n, 2), dtype=np.int64)
    for k in range(u):
        for s in range(n):
            colmap[k, s, : widths[k, s]] = maps[k][s]
            inner[k, s] = _contiguous_part(maps[k][s])
    return plo, phi, qlo, qhi, widths, colmap, inner


def _contiguous_part(m: np.ndarray) -> tuple[int, int]:
    """Longest [lo, hi) where the column map steps by +1 (copied without a gather)."""
    if m.size < 2:
        return (0, m.size)
    step = np.concatenate([[False], np.diff(m) == 1, [False]])
    edges = np.flatnonzero(np.diff(step.astype(np.int8)))
    starts, stops = edges[::2], edges[1::2]
    if starts.size == 0:
        return (0, 1)
    k = int(np.argmax(stops - starts))
    return (int(starts[k]), int(stops[k]) + 1)


# ------------------------------------------------------------------------------ numba kernels


@nb.njit(cache=True, inline="always")
def _refl(p, n):
    if n == 1:
        return 0
    period = 2 * n - 2
    p = p % period
    return p if p < n else period - p


@nb.njit(cache=True)
def _prefix_row(kind, packed, n, prev, cur):
    """One prefix row of the packed value row (uint64: wraparound keeps differences exact)."""
    if kind == 0:
        s = np.uint64(0)
        cur[0] = s
        for t in range(n):
            s += packed[t]
            cur[t + 1] = s
    elif kind == 1:
        for t in range(n):
            cur[t] = prev[t] + packed[t]
    elif kind == 2:
        cur[0] = packed[0]
        a, b, v = cur[1:n], prev[: n - 1], packed[1:n]
        for t in range(n - 1):
            a[t] = b[t] + v[t]
    else:
        cur[n - 1] = packed[n - 1]
        a, b, v = cur[: n - 1], prev[1:n], packed[: n - 1]
        for t in range(n - 1):
            a[t] = b[t] + v[t]


@nb.njit(cache=True)
def _sum4(acc, init, h1, l1, h2, l2, h3, l3, h4, l4, n):
    if init:
        for t in range(n):
            acc[t] = ((h1[t] - l1[t]) + (h2[t] - l2[t])) + ((h3[t] - l3[t]) + (h4[t] - l4[t]))
    else:
        for t in range(n):
            acc[t] += ((h1[t] - l1[t]) + (h2[t] - l2[t])) + ((h3[t] - l3[t]) + (h4[t] - l4[t]))


@nb.njit(cache=True)
def _sum1(acc, init, h, lo, n):
    if init:
        for t in range(n):
            acc[t] = h[t] - lo[t]
    else:
        for t in range(n):
            acc[t] += h[t] - lo[t]


@nb.njit(cache=True)
def _run_sums(pk, rel, nr, rbp, rap, cbp, cap, ring, t0, n, acc):
    """Packed window sums of output pixels t0 .. t0+n-1 of the output row at ring index
    ``rel``, four runs per pass over the row."""
    r = 0
    while r + 4 <= nr:
        h1 = pk[(rel + rbp[r]) % ring, cbp[r] + t0 : cbp[r] + t0 + n]
        l1 = pk[(rel + rap[r]) % ring, cap[r] + t0 : cap[r] + t0 + n]
        h2 = pk[(rel + rbp[r + 1]) % ring, cbp[r + 1] + t0 : cbp[r + 1] + t0 + n]
        l2 = pk[(rel + rap[r + 1]) % ring, cap[r + 1] + t0 : cap[r + 1] + t0 + n]
        h3 = pk[(rel + rbp[r + 2]) % ring, cbp[r + 2] + t0 : cbp[r + 2] + t0 + n]
        l3 = pk[(rel + rap[r + 2]) % ring, cap[r + 2] + t0 : cap[r + 2] + t0 + n]
        h4 = pk[(rel + rbp[r + 3]) % ring, cbp[r + 3] + t0 : cbp[r + 3] + t0 + n]
        l4 = pk[(rel + rap[r + 3]) % ring, cap[r + 3] + t0 : cap[r + 3] + t0 + n]
        _sum4(acc, r == 0, h1, l1, h2, l2, h3, l3, h4, l4, n)
        r += 4
    while r < nr:
        h = pk[(rel + rbp[r]) % ring, cbp[r] + t0 : cbp[r] + t0 + n]
        lo = pk[(rel + rap[r]) % ring, cap[r] + t0 : cap[r] + t0 + n]
        _sum1(acc, r == 0, h, lo, n)
        r += 1


@nb.njit(cache=True, error_model="numpy")
def _finish(acc, w, fx, n, dst):
    """dst = c / m where m > 0 else 0, with the method's float32 rounding and thresholds.

    ``acc`` holds packed window sums (count << shift) + Σ trunc(v·2^F) of values v ≥ 0;
    c = float32(w·S), m = float32(w·count) as the straightforward float correlation gives
    (w·2^-F is exact: one rounding, like w·S).
    """
    shift = np.uint64(fx[0])
    mask = (np.uint64(1) << shift) - np.uint64(1)
    w_scaled = w * fx[1]
    zero = np.float32(0.0)
    for t in range(n):
        p = acc[t]
        c = np.float32(w_scaled * np.float64(p & mask))
        m = np.float32(w * np.float64(p >> shift))
        if c < EPS32:
            c = zero
        if m < EPS32:
            m = zero
        dst[t] = c / m if m > zero else zero


@nb.njit(cache=True, inline="always")
def _pack(v, scale, one):
    """(v > 0) << shift plus v ≥ 0 in fixed point (truncated)."""
    return np.uint64(np.int64(v * scale)) + (one if v > 0 else np.uint64(0))


@nb.njit(cache=True)
def _source_row(src, idx, flat, a, colmap, inner, n, scale, one, packed):
    """Packed value row of the source (NaN counts as 0): ``src`` or, if ``idx`` is not empty,
    ``flat[idx]`` with -1 meaning no data. Columns ``inner[0]:inner[1]`` map contiguously."""
    lo, hi = inner[0], inner[1]
    if idx.shape[0] > 0:
        ir = idx[a]
        seg = ir[colmap[lo] : colmap[lo] + hi - lo] if hi > lo else ir[:0]
        dst = packed[lo:hi]
        for u in range(hi - lo):
            k = seg[u]
            v = flat[k] if k >= 0 else np.float32(0.0)
            dst[u] = _pack(v if v == v else np.float32(0.0), scale, one)
        for t in range(lo):
            k = ir[colmap[t]]
            v = flat[k] if k >= 0 else np.float32(0.0)
            packed[t] = _pack(v if v == v else np.float32(0.0), scale, one)
        for t in range(hi, n):
            k = ir[colmap[t]]
            v = flat[k] if k >= 0 else np.float32(0.0)
            packed[t] = _pack(v if v == v else np.float32(0.0), scale, one)
    else:
        row = src[a]
        seg = row[colmap[lo] : colmap[lo] + hi - lo] if hi > lo else row[:0]
        dst = packed[lo:hi]
        for u in range(hi - lo):
            v = seg[u]
            dst[u] = _pack(v if v == v else np.float32(0.0), scale, one)
        for t in range(lo):
            v = row[colmap[t]]
            packed[t] = _pack(v if v == v else np.float32(0.0), scale, one)
        for t in range(hi, n):
            v = row[colmap[t]]
            packed[t] = _pack(v if v == v else np.float32(0.0), scale, one)


@nb.njit(cache=True)
def _cached_row(row, colmap, inner, n, scale, one, packed):
    """Packed values of ``row[colmap]`` (an iteration's output: finite, ≥ 0)."""
    lo, hi = inner[0], inner[1]
    seg = row[colmap[lo] : colmap[lo] + hi - lo] if hi > lo else row[:0]
    dst = packed[lo:hi]
    for u in range(hi - lo):
        dst[u] = _pack(seg[u], scale, one)
    for t in range(lo):
        packed[t] = _pack(row[colmap[t]], scale, one)
    for t in range(hi, n):
        packed[t] = _pack(row[colmap[t]], scale, one)


@nb.njit(cache=True)
def _final_source_row(src, idx, flat, a, c0, n, out):
    """Row ``a`` of the source, columns c0 .. c0+n-1, NaN kept."""
    if idx.shape[0] > 0:
        for t in range(n):
            k = idx[a, c0 + t]
            out[t] = flat[k] if k >= 0 else np.float32(np.nan)
    else:
        for t in range(n):
            out[t] = src[a, c0 + t]


@nb.njit(cache=True)
def _zero_spans(row, lo, hi):
    """[lo[k], hi[k]) covering the exact zeros of ``row``, gaps under SPAN_GAP merged (a
    short vector loop costs more than the few extra pixels); returns their number."""
    n = 0
    t = 0
    size = row.size
    while t < size:
        if row[t] == 0:
            t1 = t + 1
            while t1 < size and row[t1] == 0:
                t1 += 1
            if n > 0 and t - hi[n - 1] < SPAN_GAP:
                hi[n - 1] = t1
            else:
                lo[n] = t
                hi[n] = t1
                n += 1
            t = t1
        else:
            t += 1
    return n


@nb.njit(cache=True, error_model="numpy")
def _composite_pixel(spread, b, t, f):
    """Σ_d spread_d × (f_d / Σ f) in float32 with numpy's pairwise order for the two sums of 8
    (as the straightforward broadcast computes it); NaN where the total is not > 0."""
    total = ((f[0] + f[1]) + (f[2] + f[3])) + ((f[4] + f[5]) + (f[6] + f[7]))
    if not total > 0:
        return np.float32(np.nan)
    p0 = spread[0, b, t] * (f[0] / total)
    p1 = spread[1, b, t] * (f[1] / total)
    p2 = spread[2, b, t] * (f[2] / total)
    p3 = spread[3, b, t] * (f[3] / total)
    p4 = spread[4, b, t] * (f[4] / total)
    p5 = spread[5, b, t] * (f[5] / total)
    p6 = spread[6, b, t] * (f[6] / total)
    p7 = spread[7, b, t] * (f[7] / total)
    return ((p0 + p1) + (p2 + p3)) + ((p4 + p5) + (p6 + p7))


@nb.njit(cache=True, error_model="numpy")
def _run_unit(
    src,
    idx,
    flat,
    hs,
    oys,
    kinds,
    weights,
    nruns,
    rbp,
    rap,
    cbp,
    cap,
    rmin,
    span,
    fx,
    plo,
    phi,
    qlo,
    qhi,
    widths,
    colmap,
    inner,
    mode,
    out,
    wind,
    wy,
    wx,
    by,
    bx,
):
    """Stream one unit through the iterations (see the module docstring).

    Iteration s produces rows plo[s]..phi[s], columns qlo[s]..qhi[s] of its output window;
    the directions take turns by batches of ROW_BATCH output rows.
    Its prefix ring holds ``span + 1`` virtual input rows; its outputs go to a row cache read
    by iteration s + 1, deep enough for the rows that mirroring revisits.
    The last iteration writes ``out`` (MODE_SPREAD) or, only where the source is 0, feeds the
    wind-weighted composite whose result, or the source elsewhere, goes to ``out``
    (MODE_COMPOSITE).
    """
    n_it = plo.size
    n_dir = kinds.size
    ring = span + 1
    # mirroring at a window edge revisits rows at most max(-rmin, rmax) back
    cache_rows = max(span, -rmin, rmin + span) + 3
    lmax = widths.max() + 1
    wmax = 1
    for s in range(n_it):
        wmax = max(wmax, qhi[s] - qlo[s] + 1)
    pk = np.empty((n_dir, n_it, ring, lmax), dtype=np.uint64)
    pk[:, :, ring - 1, :] = 0
    cache = np.empty((n_dir, max(n_it - 1, 1), cache_rows, wmax), dtype=np.float32)
    packed = np.empty(lmax, dtype=np.uint64)
    # packed source rows, shared by the directions (they all read the same rows in step)
    src_rows = 4 * ring
    src_packed = np.empty((src_rows, lmax), dtype=np.uint64)
    src_key = np.full(src_rows, -1, dtype=np.int64)
    acc = np.empty(wmax, dtype=np.uint64)
    scale = fx[2]
    one = np.uint64(1) << np.uint64(fx[0])
    last = n_it - 1
    fw = qhi[last] - qlo[last] + 1
    spread = np.zeros((n_dir, ROW_BATCH, fw), dtype=np.float32)
    base = np.empty((ROW_BATCH, fw), dtype=np.float32)
    span_lo = np.empty((ROW_BATCH, fw + 1), dtype=np.int64)
    span_hi = np.empty((ROW_BATCH, fw + 1), dtype=np.int64)
    n_spans = np.zeros(ROW_BATCH, dtype=np.int64)
    produced = np.empty((n_dir, n_it), dtype=np.int64)
    prefixed = np.full((n_dir, n_it), -1, dtype=np.int64)
    for d in range(n_dir):
        for s in range(n_it):
            produced[d, s] = plo[s] - 1
    target = np.empty(n_it, dtype=np.int64)

    for y0 in range(plo[last], phi[last] + 1, ROW_BATCH):
        y1 = min(y0 + ROW_BATCH, phi[last] + 1)
        if mode == MODE_COMPOSITE:
            for y in range(y0, y1):
                b = y - y0
                _final_source_row(src, idx, flat, y + by, qlo[last] + bx, fw, base[b])
                n_spans[b] = _zero_spans(base[b], span_lo[b], span_hi[b])
        for d in range(n_dir):
            kind = kinds[d]
            w = weights[d]
            nr = nruns[d]
            for y in range(y0, y1):
                b = y - y0
                target[last] = y
                s = last
                while True:
                    if produced[d, s] >= target[s]:
                        if s == last:
                            break
                        s += 1
                        continue
                    j = produced[d, s] + 1
                    if prefixed[d, s] >= j - plo[s] + span:
                        rel = j - plo[s]
                        ncols = qhi[s] - qlo[s] + 1
                        pks = pk[d, s]
                        if s < last:
                            dst = cache[d, s, rel % cache_rows]
                            _run_sums(pks, rel, nr, rbp[d], rap[d], cbp[d], cap[d], ring, 0,
                                      ncols, acc)  # fmt: skip
                            _finish(acc, w, fx, ncols, dst)
                        elif mode == MODE_SPREAD:
                            _run_sums(pks, rel, nr, rbp[d], rap[d], cbp[d], cap[d], ring, 0,
                                      ncols, acc)  # fmt: skip
                            _finish(acc, w, fx, ncols, out[j, qlo[s] : qhi[s] + 1])
                        else:
                            for k in range(n_spans[b]):
                                t0 = span_lo[b, k]
                                nn = span_hi[b, k] - t0
                                _run_sums(pks, rel, nr, rbp[d], rap[d], cbp[d], cap[d], ring,
                                          t0, nn, acc)  # fmt: skip
                                _finish(acc, w, fx, nn, spread[d, b, t0 : t0 + nn])
                        produced[d, s] = j
                        continue
                    k = prefixed[d, s] + 1
                    a = _refl(plo[s] + oys[s] + rmin + k, hs[s])
                    if s > 0 and produced[d, s - 1] < a:
                        target[s - 1] = a
                        s -= 1
                        continue
                    nv = widths[s]
                    if s == 0:
                        slot = k % src_rows
                        if src_key[slot] != k:
                            _source_row(src, idx, flat, a, colmap[0], inner[0], nv, scale, one,
                                        src_packed[slot])  # fmt: skip
                            src_key[slot] = k
                        row_packed = src_packed[slot]
                    else:
                        if a <= produced[d, s - 1] - cache_rows:
                            raise RuntimeError("row cache too small")
                        row = cache[d, s - 1, (a - plo[s - 1]) % cache_rows]
                        _cached_row(row, colmap[s], inner[s], nv, scale, one, packed)
                        row_packed = packed
                    _prefix_row(kind, row_packed, nv, pk[d, s, (k - 1) % ring],
                                pk[d, s, k % ring])  # fmt: skip
                    prefixed[d, s] = k
        if mode == MODE_COMPOSITE:
            c0 = qlo[last]
            for y in range(y0, y1):
                b = y - y0
                orow = out[y]
                orow[c0 : c0 + fw] = base[b]
                for k in range(n_spans[b]):
                    for t in range(span_lo[b, k], span_hi[b, k]):
                        if base[b, t] == 0:
                            f = wind[y + wy, c0 + t + wx]
                            orow[c0 + t] = _composite_pixel(spread, b, t, f)


@nb.njit(cache=True, parallel=True)
def _run_units(
    src, idx, flat, hs, oys, kinds, weights, nruns, rbp, rap, cbp, cap, rmin, span, fx,
    plo, phi, qlo, qhi, widths, colmap, inner, mode, out, wind, wy, wx, by, bx,
):  # fmt: skip
    for u in nb.prange(plo.shape[0]):
        _run_unit(
            src, idx, flat, hs, oys, kinds, weights, nruns, rbp, rap, cbp, cap, rmin, span, fx,
            plo[u], phi[u], qlo[u], qhi[u], widths[u], colmap[u], inner[u], mode, out, wind,
            wy, wx, by, bx,
        )  # fmt: skip


def run_pipeline(
    ks: KernelSet,
    win: Windows,
    *,
    mode: int,
    out: np.ndarray,
    src: np.ndarray | None = None,
    idx: np.ndarray | None = None,
    flat: np.ndarray | None = None,
    wind: np.ndarray | None = None,
    wind_origin: tuple[int, int] = (0, 0),
    vmax: float,
) -> None:
    """Run the iterations of ``win`` over the source and fill ``out`` (the final window).

    The source is ``src`` (float32, the first window) or ``flat[idx]`` (idx int32 of the first
    window's shape, -1 = no data), with values in [0, vmax] or NaN (see ``value_range``).
    MODE_COMPOSITE needs ``wind`` (rows, cols, 8) float32 and the final window's position in it.
    """
    if mode == MODE_COMPOSITE and ks.kinds.size != 8:
        raise ValueError("the wind composite needs the 8 direction kernels")
    threads = nb.get_num_threads()
    plo, phi, qlo, qhi, widths, colmap, inner = plan_units(win, ks, threads)
    empty2 = np.zeros((0, 0), dtype=np.float32)
    src = empty2 if src is None else src
    idx = np.zeros((0, 0), dtype=np.int32) if idx is None else idx
    flat = np.zeros(0, dtype=np.float32) if flat is None else flat
    wind = np.zeros((1, 1, 8), dtype=np.float32) if wind is None else wind
    hs = np.array([s[0] for s in win.shapes], dtype=np.int64)
    oys = np.array([o[0] for o in win.offsets], dtype=np.int64)
    by, bx = win.origin
    fx = fixed_point(ks.max_taps, vmax)
    with PARALLEL, nb.parallel_chunksize(1):
        _run_units(
            src, idx, flat, hs, oys, ks.kinds, ks.weights, ks.nruns, ks.rbp, ks.rap, ks.cbp,
            ks.cap, ks.rmin, ks.rmax - ks.rmin, fx, plo, phi, qlo, qhi, widths, colmap, inner,
            mode, out, wind, wind_origin[0], wind_origin[1], by, bx,
        )  # fmt: skip


# ------------------------------------------------------------------------------ helpers


@nb.njit(cache=True, parallel=True)
def _row_ranges(a2):
    rows = a2.shape[0]
    top = np.zeros(rows, dtype=np.float64)
    low = np.zeros(rows, dtype=np.float64)
    inf = np.zeros(rows, dtype=np.bool_)
    for i in nb.prange(rows):
        hi, lo, bad = 0.0, 0.0, False
        for v in a2[i]:
            if v - v != 0:
                bad = bad or v == v  # ±inf (NaN is skipped)
            elif v > hi:
                hi = v
            elif v < lo:
                lo = v
        top[i], low[i], inf[i] = hi, lo, bad
    return top, low, inf


def value_range(a: np.ndarray) -> tuple[float, bool]:
    """(largest finite value, whether the array can take the fast path: no ±inf, nothing < 0).

    The fixed-point budget assumes every average stays within [0, max]; negative BP (malformed
    input) or ±inf go to the straightforward method.
    """
    if a.size == 0:
        return 0.0, True
    with PARALLEL:
        top, low, inf = _row_ranges(np.ascontiguousarray(a).reshape(a.shape[0], -1))
    return float(top.max()), not (inf.any() or low.min() < 0)


@nb.njit(cache=True, parallel=True)
def _negative_rows(a3):
    rows = a3.shape[0]
    bad = np.zeros(rows, dtype=np.bool_)
    for i in nb.prange(rows):
        row = a3[i]
        for j in range(row.shape[0]):
            for k in range(row.shape[1]):
                if row[j, k] < 0:
                    bad[i] = True
    return bad


def any_negative(a: np.ndarray) -> bool:
    """``np.any(a < 0)`` for a (rows, cols, k) array without a full-size boolean temporary."""
    if a.ndim != 3 or a.size == 0:
        return bool(np.any(a < 0))
    with PARALLEL:
        return bool(_negative_rows(a).any())
