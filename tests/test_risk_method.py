"""Pin the production risk method (ocr_core/risk.py) to the method of docs/method.md, step by
step: pixel sizes, kernels, correlation and spreading, composite, gap-fill, reprojection and
smoothing, each for the behaviour the specification states and against the independent
implementation in tests/reference_method.py (whole regions: tests/test_risk_region.py).
"""

from __future__ import annotations

import math

import fast_method as F
import numpy as np
import pytest
import reference_method as R
import straightforward_method as S
from risk_checks import TOL, assert_close, max_abs, sizes
from synthetic_region import LON0, PS, bp_field, make_inputs

from ocr_core import risk as P
from ocr_core.reproject import take_cells
from ocr_core.schema import OUTPUT_VARIABLES, VARIABLE, WIND_DIRECTIONS

# Ellipse centres (m) from the spec: 110 m toward where the wind comes from, y north.
D = 110 / math.sqrt(2)
CENTRES = {
    "N": (0, 110), "NE": (D, D), "E": (110, 0), "SE": (D, -D),
    "S": (0, -110), "SW": (-D, -D), "W": (-110, 0), "NW": (-D, D),
}  # fmt: skip
STEPS = np.linspace(-41.0, 40.0, 81)


# ---------------------------------------------------------------- constants, pixel sizes


def test_constants():
    assert WIND_DIRECTIONS == ("N", "NE", "E", "SE", "S", "SW", "W", "NW")
    assert OUTPUT_VARIABLES == (
        "rps_scott", "rps_2011", "rps_2047", "bp_2011", "bp_2047", "crps_scott",
        "bp_2011_riley", "bp_2047_riley",
    )  # fmt: skip
    for name in OUTPUT_VARIABLES:
        if name.startswith(("rps", "crps")):
            assert VARIABLE[name].units == "percent"
        else:
            assert VARIABLE[name].units == "1 (annual probability)"


@pytest.mark.parametrize("lat", [24.0, 34.0, 41.5, 49.0])
def test_pixel_sizes_haversine(lat):
    dx, dy = P.pixel_sizes_m(lat, -100.0, PS)
    rdx, rdy = R.ref_pixel_sizes(lat, -100.0, PS)
    assert dx == pytest.approx(rdx, rel=1e-12)
    assert dy == pytest.approx(rdy, rel=1e-12)
    assert dy == pytest.approx(6371e3 * math.radians(PS), rel=1e-9)
    assert dx == pytest.approx(dy * math.cos(math.radians(lat)), rel=1e-6)


# ---------------------------------------------------------------- kernels


@pytest.mark.parametrize("lat", [24.0, 30.0, 34.0, 40.0, 45.0, 49.0])
def test_kernel_shape_dtype_sum_count(lat):
    dx, dy = sizes(lat)
    kernels = P.make_kernels(dx, dy)
    assert set(kernels) == set(WIND_DIRECTIONS)
    for d in WIND_DIRECTIONS:
        k = kernels[d]
        assert k.shape == (81, 81)
        assert k.dtype == np.float32
        assert abs(float(k.astype(np.float64).sum()) - 1.0) < 1e-6
        taps = k[k != 0]
        assert 200 <= taps.size <= 500
        assert np.all(taps == taps[0])  # normalized indicator: one value
        assert (k >= 0).all()
        np.testing.assert_array_equal(k, P.make_kernel(d, dx, dy))
        np.testing.assert_array_equal(k, R.ref_kernel(d, dx, dy))


def test_kernel_exact_tap_counts_at_34n():
    dx, dy = sizes(34.0, LON0)
    assert dx == pytest.approx(28.3923, abs=1e-3)
    assert dy == pytest.approx(34.2474, abs=1e-3)
    expected = {"N": 254, "NE": 252, "E": 256, "SE": 252, "S": 254, "SW": 252, "W": 256, "NW": 252}
    got = {d: int(np.count_nonzero(P.make_kernel(d, dx, dy))) for d in WIND_DIRECTIONS}
    assert got == expected


def test_kernel_tap_bound_is_enforced():
    """Pixel sizes far from CONUS 30 m violate the 200-500 tap sanity bound."""
    for size in (10.0, 100.0):
        assert not 200 <= np.count_nonzero(R.ref_kernel("N", size, size)) <= 500
        with pytest.raises(ValueError):
            P.make_kernel("N", size, size)


@pytest.mark.parametrize("direction", WIND_DIRECTIONS)
def test_kernel_orientation(direction):
    """Tap-weighted centroid sits at the stated ellipse centre (y north = higher row)."""
    dx, dy = sizes()
    k = P.make_kernel(direction, dx, dy).astype(np.float64)
    rows, cols = np.indices(k.shape)
    x_m = float((k * STEPS[cols] * dx).sum())
    y_m = float((k * STEPS[rows] * dy).sum())
    ex, ey = CENTRES[direction]
    assert x_m == pytest.approx(ex, abs=5.0)
    assert y_m == pytest.approx(ey, abs=5.0)
    row_c, col_c = float((k * rows).sum()), float((k * cols).sum())
    zero = 41 / (81 / 80)  # index whose tap coordinate is 0 m (quirk: not 40)
    assert np.sign(round(row_c - zero, 1)) == np.sign(ey)
    assert np.sign(round(col_c - zero, 1)) == np.sign(ex)


def test_kernel_quirk_asymmetry():
    """Taps run −41..40 pixel steps, so the centre tap is −0.5 px and kernels lean east/north."""
    dx, dy = sizes()
    ks = P.make_kernels(dx, dy)
    for d in ("N", "S"):
        k = ks[d].astype(np.float64)
        col_c = float((k * np.indices(k.shape)[1]).sum())
        assert col_c == pytest.approx(40.5, abs=0.05)  # a symmetric kernel would give 40.0
        assert np.count_nonzero(k[:, 41:]) > np.count_nonzero(k[:, :40])
        assert not np.array_equal(k, k[:, ::-1])
    assert not np.array_equal(ks["N"][::-1, :], ks["S"])
    assert not np.array_equal(ks["E"][:, ::-1], ks["W"])


# ---------------------------------------------------------------- correlation and spreading


def test_correlate_is_correlation_with_reflect101_border():
    rng = np.random.default_rng(1)
    arr = rng.random((97, 83)).astype(np.float32)
    dx, dy = sizes()
    k = P.make_kernel("NE", dx, dy)
    out = S.correlate(arr, k)
    assert out.shape == arr.shape
    assert max_abs(out, R.ref_filter(arr, k)) <= TOL
    pad = np.pad(arr.astype(np.float64), 40, mode="reflect")  # numpy reflect = REFLECT_101
    for i, j in [(0, 0), (96, 82), (0, 82), (48, 0), (96, 41), (50, 40)]:
        expected = float((pad[i : i + 81, j : j + 81] * k).sum())
        assert out[i, j] == pytest.approx(expected, abs=1e-6)
    impulse = np.zeros((121, 121), np.float32)
    impulse[60, 60] = 1.0
    resp = S.correlate(impulse, P.make_kernel("N", dx, dy)).astype(np.float64)
    resp[np.abs(resp) < 1e-9] = 0
    row_c = (resp * np.indices(resp.shape)[0]).sum() / resp.sum()
    assert row_c < 57  # not flipped: a fire reaches the cells south of it under a north wind


def test_spread_zeros_do_not_dilute():
    """A uniform field v with zero holes spreads to exactly v; far pixels stay 0."""
    dx, dy = sizes()
    rng = np.random.default_rng(2)
    v = 0.037
    arr = np.zeros((120, 260), np.float32)
    arr[:, 100:160] = v
    arr[rng.random(arr.shape) < 0.3] = 0.0
    for d in WIND_DIRECTIONS:
        out = F.directional_spread(arr, P.make_kernel(d, dx, dy))
        assert out.shape == arr.shape
        assert (out >= 0).all()
        np.testing.assert_allclose(out[arr > 0], v, rtol=1e-5)
        np.testing.assert_allclose(out[out > 0], v, rtol=1e-5)
        assert (out[:, 100:160] > 0).all()  # holes filled with v, not v × coverage
        assert (out[:, :30] == 0).all() and (out[:, 230:] == 0).all()


def test_spread_edge_cases_and_nan():
    dx, dy = sizes()
    k = P.make_kernel("SW", dx, dy)
    zero = np.zeros((90, 70), np.float32)
    np.testing.assert_array_equal(F.directional_spread(zero, k), zero)
    rng = np.random.default_rng(3)
    arr = bp_field(rng, (140, 125), zero_frac=0.55)
    arr[rng.random(arr.shape) < 0.05] = np.nan
    arr[0, :] = 0.02  # fire on the array edges
    arr[:, -1] = np.nan
    for d in WIND_DIRECTIONS:
        kd = P.make_kernel(d, dx, dy)
        out = F.directional_spread(arr, kd)
        assert out.shape == arr.shape
        np.testing.assert_array_equal(np.isnan(out), np.isnan(arr))
        assert (out[~np.isnan(out)] >= 0).all()
        assert_close(out, R.ref_spread(arr, kd))
        assert_close(out[:, :3], R.ref_spread(arr, kd)[:, :3])


def test_spread_iterations_grow_the_footprint():
    dx, dy = sizes()
    k = P.make_kernel("E", dx, dy)
    arr = np.zeros((101, 101), np.float32)
    arr[50, 50] = 0.02
    counts = [np.count_nonzero(F.directional_spread(arr, k, iterations=n)) for n in (1, 2, 3)]
    assert counts[0] < counts[1] < counts[2]
    assert_close(F.directional_spread(arr, k, iterations=1), R.ref_spread(arr, k, 1))
    assert_close(F.directional_spread(arr, k), R.ref_spread(arr, k, 3))


# ---------------------------------------------------------------- composite


def spreads(rng, shape):
    return {d: rng.random(shape).astype(np.float32) * 0.05 for d in WIND_DIRECTIONS}


def test_composite_normalizes_and_matches_reference():
    rng = np.random.default_rng(4)
    sp = spreads(rng, (40, 30))
    f = rng.random((40, 30, 8)).astype(np.float32)
    f[1, 1] = 0.0
    f[2, 2, 5] = np.nan
    out = S.weighted_composite(sp, f)
    assert out.shape == (40, 30)
    assert np.isnan(out[1, 1]) and np.isnan(out[2, 2])
    assert np.isnan(out).sum() == 2
    np.testing.assert_allclose(S.weighted_composite(sp, f * 7.5), out, rtol=1e-6)
    assert_close(out, R.ref_composite(sp, f))
    onehot = np.zeros((40, 30, 8), np.float32)
    onehot[..., 6] = 0.3
    np.testing.assert_allclose(S.weighted_composite(sp, onehot), sp["W"], rtol=1e-6)
    stack = np.stack([sp[d] for d in WIND_DIRECTIONS], -1).astype(np.float64)
    manual = (stack[3:, 3:] * f[3:, 3:]).sum(-1) / f[3:, 3:].sum(-1)
    np.testing.assert_allclose(out[3:, 3:], manual, rtol=1e-5)


def test_composite_rejects_negative_fractions():
    sp = spreads(np.random.default_rng(5), (4, 4))
    f = np.full((4, 4, 8), 0.125, np.float32)
    f[2, 3, 1] = -0.01
    with pytest.raises(ValueError):
        S.weighted_composite(sp, f)


# ---------------------------------------------------------------- gap-fill


def test_gap_fill_rule():
    b = np.full((9, 9), 0.2, np.float32)
    b[4, :] = 0.0
    b[1, 1] = 0.0  # fill: mean over the 3×3 with the zero centre included
    b[2, 3] = np.nan  # fill: NaN centre skipped
    b[6, 1] = 0.0
    b[5, 1] = np.nan  # not filled: a neighbour is NaN (not > 0)
    b[6, 6] = 0.0
    b[7, 7] = 0.0  # diagonal pair: both filled from the input values
    b[8, 4] = 0.0  # array edge: untouched
    b[3, 8] = 0.0  # array edge: untouched
    out = P.gap_fill(b)
    exp = b.astype(np.float64).copy()
    exp[1, 1] = 0.2 * 8 / 9
    exp[2, 3] = 0.2
    exp[6, 6] = (0.2 * 7 + 0.0 * 2) / 9
    exp[7, 7] = (0.2 * 7 + 0.0 * 2) / 9
    np.testing.assert_array_equal(np.isnan(out), np.isnan(exp))
    np.testing.assert_allclose(out, exp, rtol=1e-6, equal_nan=True)
    assert out[6, 1] == 0.0 and out[8, 4] == 0.0 and out[3, 8] == 0.0
    assert (out[4, :] == 0).all()  # neighbours in the zero row are not all > 0
    edge = np.full((5, 5), 0.3, np.float32)
    edge[0, 2] = edge[2, 0] = edge[4, 4] = 0.0
    np.testing.assert_array_equal(P.gap_fill(edge), edge)


def test_gap_fill_nan_corner_skipped_and_matches_reference():
    b = np.array([[np.nan, 0.1, 0.2], [0.3, 0.0, 0.4], [0.5, 0.6, 0.7]], np.float32)
    out = P.gap_fill(b)
    assert out[1, 1] == pytest.approx((0.1 + 0.2 + 0.3 + 0.0 + 0.4 + 0.5 + 0.6 + 0.7) / 8)
    rng = np.random.default_rng(6)
    for _ in range(5):
        a = rng.random((40, 37)).astype(np.float32)
        a[rng.random(a.shape) < 0.15] = 0.0
        a[rng.random(a.shape) < 0.1] = np.nan
        assert_close(P.gap_fill(a), R.ref_gap_fill(a))


# ---------------------------------------------------------------- reprojection


def test_reprojection_makes_gdals_choices():
    """Production's cell index ≡ xr_reproject of the data itself (north-up or south-up source,
    several chunks, a source that covers only part of the window)."""
    inp = make_inputs(ny=160, nx=150, region=(0, 160, 0, 150))
    src = inp.bp270["2011"]

    def both(x, y, values, chunks):
        cells = P.RegionInputs(
            **{**inp.__dict__, "x270": x, "y270": y, "chunks270": chunks, "bp270": {"2011": values}}
        ).cell_index()
        ref = R.ref_bp30(values, x, y, "EPSG:5070", chunks, inp.lat, inp.lon, gap_fill=False)
        return take_cells(values, cells), ref

    for x, y, values, chunks in (
        (inp.x270, inp.y270, src, None),
        (inp.x270, inp.y270[::-1], src[::-1], ((5, src.shape[0] - 5), (src.shape[1],))),
        (inp.x270[:6], inp.y270, src[:, :6], None),
    ):
        out, ref = both(x, y, values, chunks)
        assert out.shape == (160, 150)
        np.testing.assert_array_equal(out, ref)
    assert np.isnan(out[:, -1]).all() and np.isfinite(out[:, 0]).any()


# ---------------------------------------------------------------- smoothing


def test_smoothing_kernel_size():
    assert P.smoothing_kernel_size(PS) == 17
    for ps in (1e-4, 2e-4, PS, 5e-4, 1e-3, 5e-3, 0.1):
        k = P.smoothing_kernel_size(ps)
        assert k % 2 == 1 and k >= 3
        assert k == R.ref_smoothing_size(ps)


@pytest.mark.parametrize("ps", [PS, 5e-4])
def test_smooth_matches_reference_gaussian(ps):
    rng = np.random.default_rng(7)
    a = bp_field(rng, (150, 133))
    out = S.smooth(a, ps)
    assert out.dtype == np.float32 and out.shape == a.shape
    assert_close(out, R.ref_smooth(a, ps))
    const = np.full((60, 50), 0.01, np.float32)
    np.testing.assert_allclose(S.smooth(const, ps), const, rtol=1e-6)
    g = R.ref_gaussian_1d(17)
    assert g[8] == pytest.approx(max(g)) and g.sum() == pytest.approx(1.0)
