"""Synthetic region inputs for the risk tests: a 30 m buffered grid near Los Angeles, the
270 m EPSG:5070 window covering it, correlated BP with zero patches and holes, wind fractions
with zero and NaN pixels."""

from __future__ import annotations

import numpy as np
from pyproj import Transformer
from scipy import ndimage

from ocr_core.risk import RegionInputs

PS = 0.00030799387843671866  # CONUS pixel size, degrees
LAT0, LON0 = 34.0, -118.8


def grid_coordinates(
    ny: int, nx: int, lat0: float = LAT0, lon0: float = LON0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(lat, lon) pixel centres of an ny × nx 30 m grid from (lat0, lon0), and the (x, y)
    centres of a 270 m EPSG:5070 window 3 cells wider on every side, y descending (north-up);
    offsets keep the 30 m centres off exact 270 m half-pixel ties."""
    lat = lat0 + PS * (np.arange(ny) + 0.5)
    lon = lon0 + PS * (np.arange(nx) + 0.5)
    tr = Transformer.from_crs("EPSG:4326", "EPSG:5070", always_xy=True)
    cx, cy = tr.transform(*np.meshgrid([lon[0], lon[-1]], [lat[0], lat[-1]]))
    x270 = np.arange(cx.min() - 3 * 270 + 37.3, cx.max() + 3 * 270, 270.0) + 135
    y270 = (np.arange(cy.min() - 3 * 270 + 101.9, cy.max() + 3 * 270, 270.0) + 135)[::-1]
    return lat, lon, x270, y270


def bp_field(rng, shape, scale=0.05, zero_frac=0.45):
    """Spatially correlated BP-like field with zero patches."""
    f = ndimage.gaussian_filter(rng.standard_normal(shape), 3.0)
    f = (f - f.min()) / (f.max() - f.min())
    return np.where(f > zero_frac, 0.001 + scale * (f - zero_frac), 0.0).astype(np.float32)


def make_inputs(ny=300, nx=260, region=(20, 280, 30, 230), lat0=LAT0, lon0=LON0, seed=0,
                bp="field"):  # fmt: skip
    """Synthetic RegionInputs: 30 m buffered grid and a 270 m EPSG:5070 BP window covering it."""
    rng = np.random.default_rng(seed)
    lat, lon, x270, y270 = grid_coordinates(ny, nx, lat0, lon0)
    shape = (y270.size, x270.size)
    bp270 = {}
    for k, scen in enumerate(("2011", "2047")):
        if bp == "field" and min(shape) < 32:
            b = bp_field(rng, shape).astype(np.float64)
        elif bp == "field":
            b = bp_field(rng, shape, scale=0.06 * (1 + 0.3 * k)).astype(np.float64)
            b[rng.random(shape) < 0.01] = np.nan
            b[3:6, 4:7] = np.nan
            b[9:12, 10:13] = 0.03
            b[10, 11] = 0.0  # isolated zero hole
            b[13:16, 14:17] = 0.025
            b[14, 15] = np.nan  # isolated NaN hole
            b[17:22, 25:30] = 0.015
            b[19, 27] = b[20, 28] = 0.0  # diagonal pair of holes
        elif bp == "zero":
            b = np.zeros(shape)
        elif bp == "nan":
            b = np.full(shape, np.nan)
        else:
            b = np.zeros(shape)
            b[shape[0] // 2, shape[1] // 2] = 0.04
        bp270[scen] = b.astype(np.float32)
    wind = rng.dirichlet(np.full(8, 0.7), size=(ny, nx)).astype(np.float32)
    wind[50:60, 40:55] = 0.0
    wind[100:103, 150:160, 3] = np.nan
    wind[rng.random((ny, nx)) < 0.002] = 0.0
    r0, r1, c0, c1 = region
    rshape = (r1 - r0, c1 - c0)
    return RegionInputs(
        lat=lat, lon=lon, region=region, wind=wind, bp270=bp270, x270=x270, y270=y270,
        crs270="EPSG:5070", crps=(rng.random(rshape) * 100).astype(np.float32),
        rps=(rng.random(rshape) * 5).astype(np.float32),
        riley30={s: (rng.random(rshape) * 0.05).astype(np.float32) for s in ("2011", "2047")},
        pixel_size=PS,
    )  # fmt: skip
