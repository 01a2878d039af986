"""Pin the production region kernel (prefix sums, streamed, trimmed) to the straightforward
method it replaces: same numbers (max abs difference ≤ 1e-6) and the same NaN pattern, on
several shapes, at array edges, and on all-zero, all-NaN and single-pixel inputs."""

from __future__ import annotations

import cv2
import fast_method as F
import numpy as np
import pytest
import reference_method as R
import straightforward_method as S
from pyproj import Transformer
from scipy import ndimage
from synthetic_region import PS, grid_coordinates

from ocr_core import fast_kernels as fk
from ocr_core import reproject as RP
from ocr_core import risk as P
from ocr_core.risk import RegionInputs
from ocr_core.schema import OUTPUT_VARIABLES, SCENARIO_YEARS, WIND_DIRECTIONS

TOL = 1e-6


def sizes(lat=34.0):
    return P.pixel_sizes_m(lat, -118.8, PS)


def field(rng, shape, zero_frac=0.35, nan_frac=0.03, scale=0.06):
    """Correlated BP-like values with zero patches, a few NaN and fire on the array edges."""
    f = (
        ndimage.gaussian_filter(rng.standard_normal(shape), 2.0)
        if min(shape) > 1
        else (rng.standard_normal(shape))
    )
    f = (f - f.min()) / (np.ptp(f) or 1.0)
    out = np.where(f > zero_frac, 0.001 + scale * f, 0.0).astype(np.float32)
    out[rng.random(shape) < nan_frac] = np.nan
    out[0, :: max(1, shape[1] // 5)] = 0.02
    out[:, -1] = np.where(rng.random(shape[0]) < 0.5, 0.03, out[:, -1])
    return out


def assert_same(fast, slow, tol=TOL):
    """Same shape, identical NaN pattern, max abs diff ≤ tol (relative for values > 1)."""
    assert fast.shape == slow.shape and fast.dtype == slow.dtype
    np.testing.assert_array_equal(np.isnan(fast), np.isnan(slow))
    ok = ~np.isnan(slow)
    err = np.abs(fast[ok].astype(np.float64) - slow[ok])
    assert (err <= tol * np.maximum(1.0, np.abs(slow[ok]))).all(), float(err.max(initial=0))


# ---------------------------------------------------------------- kernel structure


@pytest.mark.parametrize("lat", [24.0, 34.0, 41.5, 49.0])
def test_every_kernel_is_runs_of_one_weight(lat):
    """Each kernel row (and column) holds one contiguous run of equal taps; the decomposition
    rebuilds exactly the kernel's taps."""
    dx, dy = sizes(lat)
    for d in WIND_DIRECTIONS:
        k = P.make_kernel(d, dx, dy)
        nz = k != 0
        for line in (*nz, *nz.T):
            idx = np.flatnonzero(line)
            assert idx.size == 0 or idx[-1] - idx[0] + 1 == idx.size
        rk = fk.decompose_kernel(k)
        assert rk is not None and rk.weight == float(k[nz][0]) and rk.taps == nz.sum()
        rebuilt = np.zeros_like(nz)
        c = k.shape[0] // 2
        for rb, ra, cb, ca in zip(rk.rb, rk.ra, rk.cb, rk.ca, strict=True):
            if rk.kind == fk.HORIZONTAL:
                rebuilt[c + rb, c + ca : c + cb] = True
            elif rk.kind == fk.VERTICAL:
                rebuilt[c + ra + 1 : c + rb + 1, c + cb] = True
            else:
                step = 1 if rk.kind == fk.DIAGONAL else -1
                for t in range(rb - ra):
                    rebuilt[c + ra + 1 + t, c + ca + step * (1 + t)] = True
        np.testing.assert_array_equal(rebuilt, nz)
        assert rk.rb.size <= min(np.any(nz, 1).sum(), np.any(nz, 0).sum()) + 5


def test_kernels_without_structure_are_rejected():
    k = np.zeros((9, 9), np.float32)
    assert fk.decompose_kernel(k) is None
    k[4, 4], k[4, 5] = 0.5, 0.25
    assert fk.decompose_kernel(k) is None  # unequal taps
    k = np.zeros((9, 9), np.float32)
    k[::2, ::2] = 1 / 25  # gaps on every line
    assert fk.decompose_kernel(k) is None
    k = np.zeros((9, 9), np.float32)
    k[4, 4] = -1.0
    assert fk.decompose_kernel(k) is None


def test_reflect101_is_opencv_border_interpolate():
    for n in (1, 2, 3, 7, 40):
        p = np.arange(-130, 130)
        expected = [cv2.borderInterpolate(int(i), n, cv2.BORDER_REFLECT_101) for i in p]
        np.testing.assert_array_equal(fk.reflect101(p, n), expected)


def test_fixed_point_budget():
    for taps, vmax in ((200, 1.0), (500, 0.08), (6561, 1.0), (300, 1e-9), (300, 1e6)):
        shift, inv, scale = fk.fixed_point(taps, vmax)
        assert 2.0 ** (64 - shift) > taps and shift <= 54
        assert taps * vmax * scale < 2.0 ** (shift - 1)
        assert inv * scale == 1.0


# ---------------------------------------------------------------- correlation and spreading

SHAPES = [(97, 83), (40, 30), (13, 7), (2, 2), (1, 1), (1, 57), (61, 1), (131, 260)]


@pytest.mark.parametrize("shape", SHAPES)
def test_prefix_correlation_is_filter2d_reflect101(shape):
    """On positive input every tap is valid (m = w · taps), so one iteration is the plain
    correlation: it must equal cv2.filter2D with BORDER_REFLECT_101 at every edge."""
    rng = np.random.default_rng(sum(shape))
    arr = (0.5 + rng.random(shape)).astype(np.float32)
    dx, dy = sizes()
    for d in WIND_DIRECTIONS:
        k = P.make_kernel(d, dx, dy)
        m = np.float32(float(k[k != 0][0]) * np.count_nonzero(k))
        corr = F.directional_spread(arr, k, iterations=1).astype(np.float64) * m
        ref = cv2.filter2D(arr, -1, k, borderType=cv2.BORDER_REFLECT_101)
        np.testing.assert_allclose(corr, ref, rtol=1e-6, atol=0)


@pytest.mark.parametrize("shape", SHAPES)
def test_spread_matches_straightforward(shape):
    rng = np.random.default_rng(7 + sum(shape))
    arr = field(rng, shape)
    dx, dy = sizes(44.0)
    for d in WIND_DIRECTIONS:
        k = P.make_kernel(d, dx, dy)
        for it in (1, 3):
            fast = F.directional_spread(arr, k, it)
            slow = S.straightforward_directional_spread(arr, k, it)
            assert_same(fast, slow)
            np.testing.assert_array_equal(fast == 0, slow == 0)


def special_input(kind: str, shape: tuple[int, int]) -> np.ndarray:
    """All zero, all NaN, one fire pixel at the edge, or a field with negative, huge, tiny or
    infinite values."""
    if kind in ("zero", "nan", "single"):
        arr = np.full(shape, np.nan if kind == "nan" else 0.0, np.float32)
        if kind == "single":
            arr[0, shape[1] - 1] = 0.04
        return arr
    arr = field(np.random.default_rng(3), shape)
    if kind == "negative":
        arr[10:14, 20:30] = -0.01
    elif kind == "inf":
        arr[5, 5] = np.inf
    return arr * {"large": 1e6, "tiny": 1e-7}.get(kind, 1.0)


@pytest.mark.parametrize("kind", ["zero", "nan", "single", "negative", "large", "tiny", "inf"])
def test_spread_special_inputs(kind):
    arr = special_input(kind, (70, 64))
    dx, dy = sizes()
    for d in ("N", "E", "NE", "NW"):
        k = P.make_kernel(d, dx, dy)
        fast = F.directional_spread(arr, k)
        slow = S.straightforward_directional_spread(arr, k)
        tol = TOL * 1e6 if kind == "large" else TOL
        if kind == "inf":
            np.testing.assert_array_equal(fast, slow)  # the straightforward fallback
        else:
            assert_same(fast, slow, tol)
        if kind in ("zero", "nan"):
            expected = np.where(np.isnan(arr), 1.0, 0.0)
            np.testing.assert_array_equal(np.nan_to_num(fast, nan=1.0), expected)


@pytest.mark.parametrize(
    "taps",
    [
        (slice(0, 3), slice(2, 7)),  # all taps south of the anchor
        (slice(6, 9), slice(0, 9)),  # all taps north of it
        (slice(1, 8), slice(7, 9)),  # east only
    ],
)
@pytest.mark.parametrize("size", [9, 10])
def test_off_centre_and_even_kernels(taps, size):
    """Kernels whose taps lie on one side of the anchor (size // 2, as cv2) and even sizes."""
    k = np.zeros((size, size), np.float32)
    k[taps] = 1.0
    k /= k.sum()
    assert fk.decompose_kernel(k) is not None
    rng = np.random.default_rng(size)
    for shape in ((50, 40), (6, 5), (1, 3)):
        arr = field(rng, shape)
        for it in (1, 3):
            assert_same(
                F.directional_spread(arr, k, it), S.straightforward_directional_spread(arr, k, it)
            )


def test_spread_falls_back_for_unstructured_kernel():
    k = np.zeros((81, 81), np.float32)
    k[30:50:2, 30:50:2] = 1.0  # gaps along every row, column and diagonal
    k /= k.sum()
    assert fk.decompose_kernel(k) is None
    arr = field(np.random.default_rng(5), (90, 80))
    np.testing.assert_array_equal(
        F.directional_spread(arr, k), S.straightforward_directional_spread(arr, k)
    )


# ---------------------------------------------------------------- whole region


def make_inputs(ny, nx, region, seed=0, bp="field", lat0=34.0, lon0=-118.8):
    """Synthetic RegionInputs: 30 m buffered grid and a 270 m EPSG:5070 window covering it."""
    rng = np.random.default_rng(seed)
    lat, lon, x270, y270 = grid_coordinates(ny, nx, lat0, lon0)
    shape = (y270.size, x270.size)
    bp270 = {}
    for k, scen in enumerate(SCENARIO_YEARS):
        if bp == "field":
            b = field(rng, shape, zero_frac=0.4 + 0.05 * k, nan_frac=0.02)
            b[: shape[0] // 4, : shape[1] // 4] = np.nan  # NaN corner
        elif bp == "zero":
            b = np.zeros(shape, np.float32)
        elif bp == "nan":
            b = np.full(shape, np.nan, np.float32)
        else:
            b = np.zeros(shape, np.float32)
            b[shape[0] // 2, shape[1] // 2] = 0.04
        bp270[scen] = b
    wind = rng.dirichlet(np.full(8, 0.7), size=(ny, nx)).astype(np.float32)
    wind[rng.random((ny, nx)) < 0.01] = 0.0
    wind[rng.random((ny, nx)) < 0.01] = np.nan
    wind[: ny // 5, nx // 2 :, 2] = np.nan
    r0, r1, c0, c1 = region
    rshape = (r1 - r0, c1 - c0)
    return RegionInputs(
        lat=lat,
        lon=lon,
        region=region,
        wind=wind,
        bp270=bp270,
        x270=x270,
        y270=y270,
        crs270="EPSG:5070",
        crps=(rng.random(rshape) * 100).astype(np.float32),
        rps=(rng.random(rshape) * 5).astype(np.float32),
        riley30={s: (rng.random(rshape) * 0.05).astype(np.float32) for s in SCENARIO_YEARS},
        pixel_size=PS,
    )


REGIONS = {
    "interior_odd": dict(ny=331, nx=297, region=(101, 230, 97, 200)),
    "buffer_edges_sw": dict(ny=263, nx=241, region=(0, 130, 0, 101), seed=1, lat0=47.3),
    "buffer_edges_ne": dict(ny=211, nx=187, region=(150, 211, 120, 187), seed=2),
    "whole_array": dict(ny=157, nx=149, region=(0, 157, 0, 149), seed=3),
    "smaller_than_kernel": dict(ny=37, nx=29, region=(5, 30, 4, 25), seed=4),
    "thin_strip": dict(ny=301, nx=9, region=(120, 200, 2, 7), seed=5),
    "single_pixel": dict(ny=1, nx=1, region=(0, 1, 0, 1), seed=6),
    "all_zero": dict(ny=181, nx=163, region=(40, 140, 30, 130), bp="zero"),
    "all_nan": dict(ny=181, nx=163, region=(40, 140, 30, 130), bp="nan"),
    "single_fire": dict(ny=221, nx=201, region=(60, 160, 50, 150), bp="single"),
}


@pytest.mark.parametrize("name", list(REGIONS))
def test_region_matches_straightforward(name):
    inp = make_inputs(**REGIONS[name])
    fast = F.compute_region_risk(inp)
    slow = S.straightforward_region_risk(inp)
    assert tuple(fast) == OUTPUT_VARIABLES
    r0, r1, c0, c1 = inp.region
    for var in OUTPUT_VARIABLES:
        assert fast[var].shape == (r1 - r0, c1 - c0)
        assert fast[var].flags.c_contiguous
        assert_same(fast[var], slow[var])
    if name == "all_nan":
        assert np.isnan(fast["bp_2011"]).all()


def test_wind_informed_bp_matches_straightforward():
    rng = np.random.default_rng(8)
    bp30 = field(rng, (173, 151))
    bp30[:20, :30] = np.nan
    wind = rng.dirichlet(np.full(8, 0.5), size=bp30.shape).astype(np.float32)
    wind[rng.random(bp30.shape) < 0.02] = 0.0
    wind[50:60, 40:45, 5] = np.nan
    dx, dy = sizes(40.0)
    fast = F.wind_informed_bp(bp30, wind, dx, dy, PS)
    slow = S.straightforward_wind_informed_bp(bp30, wind, dx, dy, PS)
    assert_same(fast, slow)
    assert np.isnan(fast).any() and (fast > 0).any()


def test_negative_fractions_raise_like_straightforward():
    inp = make_inputs(ny=60, nx=50, region=(10, 50, 10, 40))
    inp.wind[55, 3, 4] = -0.1  # outside the trimmed area: still an input error
    for fn in (F.compute_region_risk, S.straightforward_region_risk):
        with pytest.raises(ValueError, match="negative fractions"):
            fn(inp)


def test_trimmed_windows_cover_the_dependencies():
    """The fast path reads only region + Gaussian radius + 3 kernel reaches, clipped."""
    inp = make_inputs(ny=900, nx=800, region=(300, 500, 250, 450))
    dx, dy = P.centre_pixel_sizes(inp)
    ks = P.kernel_set([P.make_kernel(d, dx, dy) for d in WIND_DIRECTIONS])
    assert ks is not None
    plan = P.plan_region(inp, ks.reach)
    g = P.smoothing_kernel_size(PS) // 2
    ry, rx = ks.reach
    assert plan.final == (300 - g, 500 + g, 250 - g, 450 + g)
    assert plan.source == (300 - g - 3 * ry, 500 + g + 3 * ry, 250 - g - 3 * rx, 450 + g + 3 * rx)
    assert ry <= 20 and rx <= 30


# ---------------------------------------------------------------- reprojection


def test_window_chunks_follow_the_store_chunking():
    assert RP.window_chunks(0, 10, 4) == (4, 4, 2)
    assert RP.window_chunks(5, 19, 6) == (1, 6, 6, 1)
    assert RP.window_chunks(7, 11, 6000) == (4,)
    assert RP.window_chunks(3, 3, 6) == ()


def test_label_window_is_label_selection():
    import xarray as xr

    coords = np.arange(20) * 0.5 + 0.25
    for lo, hi in ((1.0, 4.75), (0.25, 0.25), (-3, 2.0), (9.0, 30.0)):
        da = xr.DataArray(np.arange(20), dims="c", coords={"c": coords})
        i0, i1 = RP.label_window(coords, lo, hi)
        np.testing.assert_array_equal(da.sel(c=slice(lo, hi)).values, np.arange(i0, i1))
        desc = xr.DataArray(np.arange(20), dims="c", coords={"c": coords[::-1]})
        j0, j1 = RP.label_window(coords[::-1], lo, hi)
        np.testing.assert_array_equal(desc.sel(c=slice(hi, lo)).values, np.arange(j0, j1))


def test_gap_filled_chunks_are_those_xarray_makes():
    """The chunks that reach the warp: the reference's xarray gap-fill refines the store's."""
    import dask.array as dsa
    import xarray as xr

    for chunks in (((28, 41, 31), (31, 37, 16)), ((100,), (84,)), ((1, 40), (3, 3, 3))):
        shape = tuple(sum(c) for c in chunks)
        da = xr.DataArray(dsa.zeros(shape, chunks=chunks), dims=("y", "x"))
        assert RP.gap_filled_chunks(chunks) == R.xr_gap_fill(da).chunks
    assert RP.gap_filled_chunks(((28, 41, 31), (84,)))[0] != (28, 41, 31)


def test_cell_index_of_a_window_is_the_full_index_cut():
    """Warping only the tiles meeting a window gives the full result's cells there."""
    lat = 34.0 + PS * (np.arange(300) + 0.5)
    lon = -118.8 + PS * (np.arange(260) + 0.5)
    tr = Transformer.from_crs("EPSG:4326", "EPSG:5070", always_xy=True)
    cx, cy = tr.transform(*np.meshgrid([lon[0], lon[-1]], [lat[0], lat[-1]]))
    x = np.arange(cx.min() - 810, cx.max() + 810, 270.0) + 17.0
    y = np.arange(cy.min() - 810, cy.max() + 810, 270.0) + 41.0
    chunks = (RP.window_chunks(0, y.size, 20), RP.window_chunks(0, x.size, 15))
    full = RP.nearest_cell_index(x, y, "EPSG:5070", chunks, lat, lon)
    part = RP.nearest_cell_index(x, y, "EPSG:5070", chunks, lat, lon, window=(40, 250, 30, 200))
    np.testing.assert_array_equal(part, full[40:250, 30:200])
    assert (full >= 0).all() and full.max() < x.size * y.size
