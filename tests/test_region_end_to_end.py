"""Production region risk ≡ the reference's calculation, end to end, from the stores.

Stores are written as the real ones are (tests/synthetic_stores.py) at two latitudes, one with
its 270 m data ending inside the eastern regions' buffer; the oracle (tests/reference_pipeline.py)
reads them as the reference does and reprojects with odc-geo's xr_reproject (method step 2.2).
Every variable must agree within 1e-6 (for RPS, in percent up to 100: 1e-6 of its magnitude,
one float32 rounding of the product) with an identical NaN pattern.
"""

from __future__ import annotations

import numpy as np
import pytest
import reference_pipeline as RP
import synthetic_stores as SS
from fast_method import compute_region_risk

from ocr_core.catalog import InputCatalog
from ocr_core.process_region import load_region_inputs
from ocr_core.schema import OUTPUT_VARIABLES
from ocr_core.storage import Storage

TOL = 1e-6
SCENES = {
    "south-34n": dict(lat0=34.05, lon0=-118.95, seed=1, riley_east_cut_deg=None),
    # one chunk, as a region's window usually is in the real 6000 × 4500-chunked stores
    "north-47n": dict(
        lat0=47.10, lon0=-117.60, seed=2, riley_east_cut_deg=0.03, chunks_270m=(6000, 4500)
    ),
}


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    """name -> (grid, catalog) of every scene, written once."""
    built = {}
    for name, opts in SCENES.items():
        opts = dict(opts)
        grid = SS.test_grid(name, opts.pop("lat0"), opts.pop("lon0"))
        catalog = InputCatalog(Storage(str(tmp_path_factory.mktemp(name))))
        SS.write_raster_stores(catalog, grid, **opts)
        built[name] = (grid, catalog)
    return built


@pytest.fixture(params=sorted(SCENES))
def scene(request, scenes):
    return scenes[request.param]


def assert_same(prod: np.ndarray, ref: np.ndarray, name: str) -> None:
    assert prod.shape == ref.shape, name
    np.testing.assert_array_equal(np.isnan(prod), np.isnan(ref), err_msg=f"{name}: NaN pattern")
    ok = np.isfinite(prod)
    ref64 = ref[ok].astype(np.float64)
    err = np.abs(prod[ok] - ref64) / np.maximum(1.0, np.abs(ref64))
    worst = float(err.max()) if ok.any() else 0.0
    assert worst <= TOL, f"{name}: max error {worst:.3g}"


@pytest.mark.parametrize("region_id", ["y0_x0", "y0_x1", "y1_x0", "y1_x1"])
def test_region_matches_the_reference_end_to_end(scene, region_id):
    grid, catalog = scene
    prod = compute_region_risk(load_region_inputs(catalog, grid, region_id))
    ref = RP.reference_region_from_stores(catalog, grid, region_id)
    for name in OUTPUT_VARIABLES:
        assert_same(prod[name], ref[name], f"{region_id} {name}")
    finite = np.isfinite(prod["bp_2011"])
    assert finite.mean() > 0.2, "the region should be mostly land"


def test_windows_are_the_references(scene):
    """487 px of buffer on CONUS, 162 on a 0.05° buffer: centres within edges ± buffer."""
    grid, catalog = scene
    inputs = load_region_inputs(catalog, grid, "y1_x1")
    r0, r1, c0, c1 = inputs.region
    assert (r0, c0) == (162, 162)
    assert (inputs.lat.size - r1, inputs.lon.size - c1) == (162, 162)
    assert inputs.chunks270 is not None
    assert len(inputs.chunks270[0]) == (1 if grid.name == "north-47n" else 3)


def test_gdal_choice_differs_from_exact_nearest(scene):
    """The oracle is sharp: an exact nearest-cell lookup would pick other cells here."""
    from pyproj import Transformer

    grid, catalog = scene
    inputs = load_region_inputs(catalog, grid, "y0_x0")
    idx = inputs.cell_index()
    lon2, lat2 = np.meshgrid(inputs.lon, inputs.lat)
    px, py = Transformer.from_crs("EPSG:4326", "EPSG:5070", always_xy=True).transform(lon2, lat2)
    step = inputs.x270[1] - inputs.x270[0]
    col = np.floor((px - inputs.x270[0]) / step + 0.5).astype(np.int64)
    row = np.floor((py - inputs.y270[0]) / (inputs.y270[1] - inputs.y270[0]) + 0.5).astype(np.int64)
    inside = (col >= 0) & (col < inputs.x270.size) & (row >= 0) & (row < inputs.y270.size)
    exact = np.where(inside, row * inputs.x270.size + col, -1)
    assert np.count_nonzero(exact != idx) >= 10


def test_region_at_the_edge_of_the_270m_data(scenes):
    """The northern scene's 270 m data stops inside the eastern regions' buffer."""
    grid, catalog = scenes["north-47n"]
    inputs = load_region_inputs(catalog, grid, "y0_x1")
    idx = inputs.cell_index()
    assert (idx[:, -40:] < 0).all(), "the eastern buffer lies beyond the 270 m data"
