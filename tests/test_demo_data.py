"""The synthetic demo inputs: written where the catalog says, deterministic, plausible, aligned.

The rasters and the determinism of the generation; the census polygons and buildings are in
test_demo_vectors.py. One full generation (``demo_generation``, conftest.py) is shared by both;
one test regenerates in place with the same seed and another generates with a different seed.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import cast

import numpy as np
from demo_generation import PAD, SEED, digest, generate, lonlat_index, same
from pyproj import CRS, Transformer
from scipy import ndimage

from ocr_core import demo
from ocr_core.catalog import DATASETS, grid_offsets
from ocr_core.grid import DEMO
from ocr_core.schema import (
    CENSUS_DATASETS,
    RASTER_DATASETS,
    RILEY_30M,
    RILEY_270M,
    SCENARIO_YEARS,
    WIND_DIRECTIONS,
    WIND_VARIABLE,
)
from ocr_core.schema import SCOTT_2024 as SCOTT
from ocr_core.schema import WIND_DISTRIBUTION as WIND

BLOCKS, TRACTS, COUNTIES, STATES, NATION = CENSUS_DATASETS  # finest first
# GeoNames coordinates of three large places: their centres are built up (town zeros).
TOWN_CENTRES = {
    "Santa Clarita": (-118.54259, 34.39166),
    "Simi Valley": (-118.78148, 34.26945),
    "Thousand Oaks": (-118.83759, 34.17056),
}


# --- layout and metadata -----------------------------------------------------------------------
def test_every_catalog_dataset_is_written_where_the_catalog_says(demo_generation):
    demo_catalog, meta = demo_generation
    assert set(meta) == set(DATASETS)
    for name, m in meta.items():
        assert m.uri == demo_catalog.uri(name)
        assert demo_catalog.storage.exists(m.uri)
        assert m.crs == DATASETS[name].crs
    json.dumps({name: asdict(m) for name, m in meta.items()})  # small JSON-able values only
    total = sum(m.bytes for m in meta.values())
    assert total < 150e6, f"demo inputs take {total / 1e6:.0f} MB"


def test_rasters_sit_on_the_grid_with_the_expected_attributes(demo_catalog):
    for name, d in DATASETS.items():
        if not d.on_processing_grid:
            continue
        ds = demo_catalog.open_zarr(name)
        assert grid_offsets(d, ds, DEMO) == (-PAD, -PAD)
        assert ds.sizes["latitude"] == DEMO.n_lat + 2 * PAD
        assert ds.sizes["longitude"] == DEMO.n_lon + 2 * PAD
        assert ds["latitude"].dtype == np.float64 and ds["longitude"].dtype == np.float64
        np.testing.assert_array_equal(
            ds["latitude"].values, DEMO.lat_centers(-PAD, DEMO.n_lat + PAD)
        )
        np.testing.assert_array_equal(
            ds["longitude"].values, DEMO.lon_centers(-PAD, DEMO.n_lon + PAD)
        )
        assert ds.attrs["data_source"] == demo.SOURCE and ds.attrs["seed"] == SEED
        assert "crs" not in ds.attrs  # the real stores carry no root crs attribute
        assert ds["spatial_ref"].ndim == 0 and int(ds["spatial_ref"]) == 4326  # odc-geo style
        assert CRS.from_wkt(ds["spatial_ref"].attrs["crs_wkt"]).to_epsg() == 4326
        assert ds["spatial_ref"].attrs["spatial_ref"] == ds["spatial_ref"].attrs["crs_wkt"]
        assert ds["latitude"].attrs["crs"] == "EPSG:4326"
        for var in d.variables:
            assert ds[var].dtype == np.float32
            assert ds[var].dims[:2] == ("latitude", "longitude")
            assert ds[var].encoding["chunks"][:2] == demo.RASTER_CHUNKS


def test_scott_values_are_in_range_and_rps_is_bp_times_crps(demo_scott):
    bp, crps, rps = (demo_scott[v].values for v in ("BP", "CRPS", "RPS"))
    assert np.nanmin(bp) == 0 and 0.05 < np.nanmax(bp) <= 0.08
    assert np.nanmin(crps) > 0 and np.nanmax(crps) <= 100
    assert np.nanmin(rps) >= 0 and np.nanmax(rps) <= 100
    ok = np.isfinite(rps)
    np.testing.assert_allclose(rps[ok], (bp * crps)[ok], rtol=2e-3, atol=1e-7)
    assert np.array_equal(np.isnan(rps), np.isnan(bp))


def test_fields_are_spatially_correlated_not_white_noise(demo_scott):
    bp = demo_scott["BP"].values
    a, b = bp[:, :-1], bp[:, 1:]
    ok = np.isfinite(a) & np.isfinite(b) & (a > 0) & (b > 0)
    assert np.corrcoef(a[ok], b[ok])[0, 1] > 0.9


def test_riley_2047_is_2011_scaled_by_a_varying_factor(demo_catalog):
    bp11 = demo_catalog.open_zarr(RILEY_30M["2011"])["BP"].values
    bp47 = demo_catalog.open_zarr(RILEY_30M["2047"])["BP"].values
    assert np.array_equal(np.isnan(bp11), np.isnan(bp47))
    assert np.array_equal(bp11 == 0, bp47 == 0)
    ok = bp11 > 1e-3
    ratio = bp47[ok] / bp11[ok]
    assert ratio.min() > 1.2 * 0.998 and ratio.max() < 1.8 * 1.002
    assert ratio.max() - ratio.min() > 0.3  # spatially varying
    assert np.nanmax(bp47) <= 1


def test_scott_and_riley_30m_root_attributes_are_the_reals(demo_catalog):
    for name in (SCOTT, RILEY_30M["2047"]):
        attrs = demo_catalog.open_zarr(name).attrs
        assert attrs["EPSG"] == "4326" and attrs["resolution"] == "30m", name
        assert {"title", "version", "data_source", "description"} <= set(attrs), name
    assert demo_catalog.open_zarr(RILEY_30M["2047"]).attrs["climate_run_year"] == "2047"


def test_wind_store_has_the_real_layout(demo_catalog):
    ds = demo_catalog.open_zarr(WIND)
    var = ds[WIND_VARIABLE]
    assert var.dims == ("latitude", "longitude", "wind_direction")
    assert var.encoding["chunks"] == (*demo.RASTER_CHUNKS, 8)
    assert "wind_direction" not in ds.coords  # "Dimensions without coordinates"
    assert ", ".join(WIND_DIRECTIONS) in var.attrs["description"]  # the order, N first
    assert ds.attrs["reprojected_to"] == SCOTT and "EPSG" not in ds.attrs
    assert float(ds["quantile"]) == 0.99
    operation = CRS.from_wkt(ds["crs"].attrs["crs_wkt"]).coordinate_operation
    assert operation is not None
    assert operation.method_name.startswith(
        "Lambert Conic Conformal"
    )  # CONUS404's, kept by the reprojection
    assert int(ds["spatial_ref"]) == 4326


def test_wind_shares_are_valid_fractions(demo_catalog, demo_scott):
    ds = demo_catalog.open_zarr(WIND)
    w = ds[WIND_VARIABLE].values
    assert w.shape[2] == 8
    valid = np.isfinite(w).all(axis=2)
    assert np.array_equal(np.isnan(w).any(axis=2), ~valid)  # all eight or none
    assert np.array_equal(
        valid, np.isfinite(demo_scott["CRPS"].values)
    )  # NaN exactly over the ocean
    assert np.abs(w[valid].sum(axis=1) - 1).max() <= 1e-5
    assert w[valid].min() >= 0
    mean = dict(zip(WIND_DIRECTIONS, w[valid].mean(axis=0), strict=True))
    assert mean["NE"] + mean["E"] > mean["S"] + mean["SE"] + 0.2  # Santa Ana dominates
    assert mean["W"] + mean["SW"] > 0.15  # with an onshore component
    ne = w[..., 1]
    a, b = ne[:, :-1], ne[:, 1:]
    ok = np.isfinite(a) & np.isfinite(b)
    assert np.abs(a[ok] - b[ok]).max() < 0.01  # smooth


def _label(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """Connected components of ``mask`` and their count (scipy's stubs allow an int alone)."""
    return cast(tuple[np.ndarray, int], ndimage.label(mask))


# --- masks: ocean, regions, towns, rock --------------------------------------------------------
def test_ocean_and_southern_row_are_nan_and_every_valid_region_has_data(demo_scott):
    crps = demo_scott["CRPS"].values
    lat = demo_scott["latitude"].values
    assert np.isnan(crps[lat < DEMO.lat_edge(DEMO.chunk_lat)]).all()
    valid = set(DEMO.valid_region_ids)
    for region in DEMO.all_region_ids():
        r0, r1, c0, c1 = DEMO.pixel_window(region)
        window = crps[r0 + PAD : r1 + PAD, c0 + PAD : c1 + PAD]
        if region in valid:
            assert np.isfinite(window).mean() > 0.3, region
        else:
            assert np.isnan(window).all(), region
    row, col = lonlat_index(-118.9, 33.95)  # open sea south of Malibu
    for var in ("BP", "CRPS", "RPS"):
        assert np.isnan(demo_scott[var].values[row, col])


def test_towns_and_lakes_are_zero_with_crps_kept(demo_scott, demo_catalog):
    bp, crps = demo_scott["BP"].values, demo_scott["CRPS"].values
    riley = demo_catalog.open_zarr(RILEY_30M["2011"])["BP"].values
    for name, (lon, lat) in TOWN_CENTRES.items():
        row, col = lonlat_index(lon, lat)
        assert bp[row, col] == 0, name
        assert riley[row, col] == 0, name
        assert crps[row, col] > 0, name
    land = np.isfinite(crps)
    zero = (bp == 0) & land
    assert 0.05 < zero.sum() / land.sum() < 0.5
    _, n_zero_areas = _label(zero)
    assert n_zero_areas >= 10  # many towns plus lakes


def test_rock_patches_are_small_nan_holes_on_land(demo_scott):
    bp, crps = demo_scott["BP"].values, demo_scott["CRPS"].values
    rock = np.isnan(bp) & np.isfinite(crps)
    labels, n = _label(rock)
    assert n >= 10
    sizes = np.bincount(labels.ravel())[1:]
    assert sizes.max() < 1500  # well under 1.5 km²
    assert np.isnan(demo_scott["RPS"].values[rock]).all()


# --- 270 m EPSG:5070 Riley ---------------------------------------------------------------------
def test_riley_270m_grid_covers_the_domain(demo_catalog, demo_scott):
    for year in SCENARIO_YEARS:
        ds = demo_catalog.open_zarr(RILEY_270M[year])
        x, y = ds["x"].values, ds["y"].values
        assert ds["BP"].dims == ("y", "x")
        assert {"FLP1", "FLP6"} <= set(ds.data_vars) and "crs" not in ds.attrs
        assert ds["BP"].attrs["grid_mapping"] == "spatial_ref"
        assert CRS.from_wkt(ds["spatial_ref"].attrs["crs_wkt"]).to_epsg() == 5070
        assert ds["BP"].encoding["chunks"] == ds["BP"].shape  # {y: 6000, x: 4500}: one chunk
        np.testing.assert_allclose(np.diff(x), 270.0)
        np.testing.assert_allclose(np.diff(y), 270.0)  # sortby(['y', 'x']): south first
        lon, lat = demo_scott["longitude"].values, demo_scott["latitude"].values
        edge_lon = np.concatenate([lon, np.full(lat.size, lon[-1]), lon, np.full(lat.size, lon[0])])
        edge_lat = np.concatenate([np.full(lon.size, lat[0]), lat, np.full(lon.size, lat[-1]), lat])
        px, py = Transformer.from_crs("EPSG:4326", "EPSG:5070", always_xy=True).transform(
            edge_lon, edge_lat
        )
        margin = 3 * 270 + 135
        assert x[0] <= px.min() - margin and x[-1] >= px.max() + margin
        assert y[0] <= py.min() - margin and y[-1] >= py.max() + margin
        bp = ds["BP"].values
        assert np.nanmin(bp) == 0 and np.nanmax(bp) <= 1
        flp = np.add.reduce([ds[f"FLP{k}"].values for k in range(1, 7)])
        ok = np.isfinite(bp)
        np.testing.assert_allclose(flp[ok], 1.0, atol=1e-5)
        assert np.array_equal(np.isnan(flp), ~ok)


def test_riley_270m_agrees_with_30m(demo_catalog):
    coarse = demo_catalog.open_zarr(RILEY_270M["2011"])
    fine = demo_catalog.open_zarr(RILEY_30M["2011"])["BP"].values
    xx, yy = np.meshgrid(coarse["x"].values, coarse["y"].values)
    lon, lat = Transformer.from_crs("EPSG:5070", "EPSG:4326", always_xy=True).transform(xx, yy)
    row, col = lonlat_index(lon, lat)
    inside = (row >= 0) & (row < fine.shape[0]) & (col >= 0) & (col < fine.shape[1])
    a = coarse["BP"].values[inside]
    b = fine[row[inside], col[inside]]
    assert inside.sum() > 50_000
    same_class = (np.isnan(a) == np.isnan(b)) & ((a == 0) == (b == 0))
    assert same_class.mean() > 0.98
    both = (a > 0) & (b > 0)
    rel = np.abs(a[both] - b[both]) / b[both]
    assert np.median(rel) < 0.01 and np.quantile(rel, 0.95) < 0.05


def test_riley_270m_has_isolated_gaps_for_the_gap_fill(demo_catalog):
    bp = demo_catalog.open_zarr(RILEY_270M["2011"])["BP"].values
    core = bp[1:-1, 1:-1]
    neighbours_positive = (
        (bp[:-2, 1:-1] > 0) & (bp[2:, 1:-1] > 0) & (bp[1:-1, :-2] > 0) & (bp[1:-1, 2:] > 0)
    )
    gaps = neighbours_positive & ~(core > 0)
    assert (gaps & (core == 0)).sum() >= 3
    assert (gaps & np.isnan(core)).sum() >= 3


def test_rerun_with_the_same_seed_replaces_with_identical_content(demo_generation):
    import icechunk

    demo_catalog, meta = demo_generation
    before = digest(demo_catalog)
    _, again = generate(demo_catalog.storage.root, SEED)
    after = digest(demo_catalog)
    assert before.keys() == after.keys()
    different = [k for k in before if not same(before[k], after[k])]
    assert not different
    for name in RASTER_DATASETS:  # old snapshots expired and collected
        repo = icechunk.Repository.open(
            demo_catalog.storage.icechunk_storage(demo_catalog.uri(name))
        )
        assert len(list(repo.ancestry(branch="main"))) <= 2, name
        assert again[name].bytes <= meta[name].bytes * 1.05, name


def test_a_different_seed_gives_different_data(demo_generation, tmp_path):
    demo_catalog, _ = demo_generation
    other, _ = generate(tmp_path, 7, n_buildings=5_000)
    a, b = digest(demo_catalog), digest(other)
    for key in (f"{SCOTT}/BP", f"{WIND}/{WIND_VARIABLE}", TRACTS):
        assert not same(a[key], b[key]), key
    np.testing.assert_array_equal(a[f"{SCOTT}/latitude"], b[f"{SCOTT}/latitude"])  # same grid
    assert a[COUNTIES].equals(b[COUNTIES])  # real data does not change
