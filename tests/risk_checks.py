"""Comparisons shared by the risk method tests: production pixel sizes, and closeness to the
reference with the same NaN pattern."""

from __future__ import annotations

import numpy as np
from synthetic_region import LAT0, LON0, PS

from ocr_core import risk as P

TOL = 1e-6


def sizes(lat=LAT0, lon=LON0):
    """Production pixel sizes (dx, dy) in metres."""
    return P.pixel_sizes_m(lat, lon, PS)


def max_abs(a, b):
    """Max |a - b| over pixels finite in both (0 if none)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    return float(np.abs(a[ok] - b[ok]).max()) if ok.any() else 0.0


def assert_close(prod, ref, tol=TOL):
    """Same shape, identical NaN pattern, max abs diff ≤ tol."""
    assert prod.shape == ref.shape
    np.testing.assert_array_equal(np.isnan(prod), np.isnan(ref))
    assert max_abs(prod, ref) <= tol
