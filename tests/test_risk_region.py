"""Whole synthetic regions through the production risk method (ocr_core/risk.py) and the
independent reference of tests/reference_method.py: the headline check of docs/method.md."""

from __future__ import annotations

import fast_method as F
import numpy as np
import pytest
import reference_method as R
import straightforward_method as S
from risk_checks import TOL, assert_close
from synthetic_region import PS, make_inputs

from ocr_core.schema import OUTPUT_VARIABLES

# ---------------------------------------------------------------- whole region


def test_wind_informed_bp_matches_reference():
    inp = make_inputs(seed=11)
    dx, dy = R.ref_centre_pixel_sizes(inp)
    bp30 = S.scenario_bp30(inp, "2047")
    out = F.wind_informed_bp(bp30, inp.wind, dx, dy, PS)
    assert out.dtype == np.float32
    assert_close(out, R.ref_wind_bp(bp30, inp.wind, dx, dy, PS))


CASES = {
    "socal_300x260": {},
    "wa_odd_edge_sw": dict(ny=257, nx=233, region=(0, 257, 0, 120), lat0=47.3, lon0=-120.5,
                           seed=1),
    "odd_edge_ne": dict(ny=211, nx=187, region=(90, 211, 60, 187), seed=2),
    "all_zero": dict(ny=181, nx=163, region=(10, 170, 12, 150), bp="zero"),
    "all_nan": dict(ny=181, nx=163, region=(10, 170, 12, 150), bp="nan"),
    "single_fire": dict(ny=221, nx=201, region=(30, 190, 30, 170), bp="single"),
}  # fmt: skip


@pytest.fixture(scope="module", params=list(CASES))
def region_case(request):
    inp = make_inputs(**CASES[request.param])
    return request.param, inp, F.compute_region_risk(inp), R.reference_region_risk(inp)


def test_region_matches_reference(region_case):
    """Headline: production == independent reference on every variable, same NaN pattern."""
    name, _inp, prod, ref = region_case
    assert tuple(prod) == OUTPUT_VARIABLES
    for var in OUTPUT_VARIABLES:
        p, r = prod[var], ref[var]
        assert p.dtype == np.float32, var
        np.testing.assert_array_equal(np.isnan(p), np.isnan(r), err_msg=f"{name} {var}")
        ok = ~np.isnan(r)
        # RPS = BP × CRPS (CRPS up to 100): float32 rounding scales with the value.
        bound = TOL * np.maximum(1.0, np.abs(r[ok])) if var.startswith("rps_2") else TOL
        assert (np.abs(p[ok].astype(np.float64) - r[ok]) <= bound).all(), (name, var)


def test_region_outputs_contract(region_case):
    name, inp, prod, _ = region_case
    r0, r1, c0, c1 = inp.region
    for var in OUTPUT_VARIABLES:
        assert prod[var].shape == (r1 - r0, c1 - c0)
    np.testing.assert_array_equal(prod["rps_scott"], inp.rps)
    np.testing.assert_array_equal(prod["crps_scott"], inp.crps)
    np.testing.assert_array_equal(prod["bp_2011_riley"], inp.riley30["2011"])
    np.testing.assert_array_equal(prod["bp_2047_riley"], inp.riley30["2047"])
    for scen in ("2011", "2047"):
        bp, rps = prod[f"bp_{scen}"], prod[f"rps_{scen}"]
        np.testing.assert_allclose(rps, bp * inp.crps, rtol=1e-6, atol=0, equal_nan=True)
        vals = bp[~np.isnan(bp)]
        assert ((vals >= 0) & (vals <= 1)).all()
        vals = rps[~np.isnan(rps)]
        assert ((vals >= 0) & (vals <= 100)).all()
    if name == "all_nan":
        assert np.isnan(prod["bp_2011"]).all() and np.isnan(prod["rps_2047"]).all()
    elif name == "all_zero":
        assert np.nanmax(prod["bp_2011"]) == 0 and np.isfinite(prod["bp_2011"]).mean() > 0.5
    elif name == "single_fire":
        bp = prod["bp_2011"]
        assert 0 < np.nanmax(bp) <= 0.04 * (1 + 1e-6) and np.count_nonzero(np.nan_to_num(bp)) > 100
    else:
        assert np.isfinite(prod["bp_2011"]).mean() > 0.5


def test_region_spreading_fills_zero_pixels():
    """In the main case the composite fills bp30 == 0 pixels near fire with positive BP."""
    inp = make_inputs()
    r0, r1, c0, c1 = inp.region
    bp30 = S.scenario_bp30(inp, "2011")[r0:r1, c0:c1]
    out = F.compute_region_risk(inp)["bp_2011"]
    filled = (bp30 == 0) & (out > 0)
    assert filled.sum() > 1000
    assert ((bp30 > 0) & np.isfinite(out)).sum() > 1000
