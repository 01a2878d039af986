"""Phase 01 end to end through Dagster: demo inputs -> region_risk -> region_buildings.

Real Dagster instance, real icechunk repository, real GeoParquet, Dask LocalCluster compute.
"""

from __future__ import annotations

import json

import dagster as dg
import numpy as np
import pyarrow.parquet as pq
import pytest

from ocr_assets.phase01_regions import region_buildings, region_risk
from ocr_core import raster_store
from ocr_core.catalog import InputCatalog
from ocr_core.grid import DEMO
from ocr_core.process_region import BUILDINGS
from ocr_core.risk import OUTPUT_VARIABLES
from ocr_core.storage import Storage
from ocr_resources import ComputeResource, InputCatalogResource, StorageResource

REFERENCE_COLUMNS = [*OUTPUT_VARIABLES, "GEOID", "state", "county", "geometry", "bbox"]


def resources_for(root: str, inputs_root: str | None = None, compute=None) -> dict:
    return {
        "storage": StorageResource(root=root),
        "catalog": InputCatalogResource(root=inputs_root or root),
        "compute": compute or ComputeResource(),
    }


def materialize_region(instance, root, region, inputs_root=None, compute=None, **kwargs):
    return dg.materialize(
        [region_risk, region_buildings],
        partition_key=region,
        instance=instance,
        resources=resources_for(root, inputs_root, compute),
        **kwargs,
    )


@pytest.fixture(scope="module")
def instance():
    with dg.instance_for_test() as inst:
        yield inst


@pytest.fixture(scope="module")
def inputs_root(demo_inputs_root) -> str:
    return str(demo_inputs_root)


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory, instance, inputs_root):
    """Every valid demo region run through Dagster into a fresh output root."""
    root = str(tmp_path_factory.mktemp("ocr-root"))
    for rid in DEMO.valid_region_ids:
        assert materialize_region(instance, root, rid, inputs_root).success
    return root


def test_one_commit_per_valid_region(demo_root):
    storage = Storage(demo_root)
    commits = raster_store.committed_regions(storage)
    assert sorted(commits) == sorted(DEMO.valid_region_ids)
    messages = [m for _, m in raster_store.region_commit_log(storage)]
    assert messages.count(raster_store.TEMPLATE_MESSAGE) == 1
    assert len([m for m in messages if m.startswith("wrote region_id")]) == 12


def test_raster_matches_grid_and_schema(demo_root):
    import xarray as xr

    repo = raster_store.open_repository(Storage(demo_root))
    ds = xr.open_zarr(repo.readonly_session("main").store, consolidated=False)
    assert list(ds.data_vars) == list(OUTPUT_VARIABLES)
    assert ds.sizes == {"latitude": DEMO.n_lat, "longitude": DEMO.n_lon}
    assert ds.attrs["ocr:grid"] == "demo" and ds.attrs["license_name"] == "CC-BY-4.0"
    assert bool((np.diff(ds.latitude.values) > 0).all())
    region = ds.isel(latitude=slice(600, 1200), longitude=slice(450, 900)).load()  # y1_x1
    for var in OUTPUT_VARIABLES:
        assert region[var].dtype == np.float32
        assert np.isfinite(region[var].values).any(), var
    for var in ("bp_2011", "bp_2047", "bp_2011_riley", "bp_2047_riley"):
        vals = region[var].values[np.isfinite(region[var].values)]
        assert vals.min() >= 0 and vals.max() <= 1
    for var in ("rps_scott", "rps_2011", "rps_2047", "crps_scott"):
        vals = region[var].values[np.isfinite(region[var].values)]
        assert vals.min() >= 0 and vals.max() <= 100
    np.testing.assert_allclose(
        region.rps_2011.values, region.bp_2011.values * region.crps_scott.values, rtol=1e-6
    )
    # the ocean row was never written: still the NaN fill
    assert np.isnan(ds.rps_2011.isel(latitude=slice(0, 600)).values).all()


def test_region_geoparquet_files(demo_root):
    storage = Storage(demo_root)
    files = storage.glob(f"{storage.region_geoparquet_dir}/*.parquet")
    assert sorted(f.rsplit("/", 1)[-1][:-8] for f in files) == sorted(DEMO.valid_region_ids)
    for path in files:
        pf = pq.ParquetFile(path)
        assert pf.schema_arrow.names == REFERENCE_COLUMNS
        geo = json.loads(pf.schema_arrow.metadata[b"geo"])
        assert geo["version"] == "1.1.0"
        assert geo["columns"]["geometry"]["encoding"] == "WKB"
        assert "covering" in geo["columns"]["geometry"]
        assert pf.metadata.row_group(0).column(0).compression == "ZSTD"
    assert sum(pq.ParquetFile(p).metadata.num_rows for p in files) > 0


def test_every_building_lands_in_exactly_one_region(demo_root, inputs_root):
    """No seam strip lost, no building in two regions: region rows + NaN drops = input."""
    import geopandas as gpd

    storage = Storage(demo_root)
    buildings = gpd.read_parquet(InputCatalog(Storage(inputs_root)).uri(BUILDINGS))
    corner = buildings.bbox.apply(lambda b: DEMO.region_id_at(b["xmin"], b["ymin"]))
    expected = corner[corner.isin(DEMO.valid_region_ids)].value_counts()
    seen = {}
    for rid in DEMO.valid_region_ids:
        frame = gpd.read_parquet(storage.region_geoparquet_uri(rid))
        seen[rid] = frame
    total_rows = sum(len(f) for f in seen.values())
    all_wkb = np.concatenate([f.geometry.to_wkb().values for f in seen.values()])
    assert len(set(all_wkb)) == total_rows  # no duplicates across regions
    for rid, frame in seen.items():
        assert len(frame) <= expected.get(rid, 0)
    # seam buildings: lower-left corner within one pixel of an interior edge are kept
    near_seam = buildings[
        buildings.bbox.apply(
            lambda b: (
                min(
                    abs((b["xmin"] - DEMO.lon0) / DEMO.pixel_size / 450 % 1 - 0.5),
                    abs((b["ymin"] - DEMO.lat0) / DEMO.pixel_size / 600 % 1 - 0.5),
                )
                > 0.49
            )
        )
    ]
    kept = set(all_wkb)
    on_land = near_seam[
        near_seam.bbox.apply(
            lambda b: DEMO.region_id_at(b["xmin"], b["ymin"]) in DEMO.valid_region_ids
        )
    ]
    assert len(on_land) > 0
    assert np.mean([g in kept for g in on_land.geometry.to_wkb()]) > 0.9


def test_materialization_metadata_in_instance(demo_root, instance):
    event = instance.get_latest_materialization_event(dg.AssetKey("region_buildings"))
    md = event.asset_materialization.metadata
    assert md["building_count"].value >= 0 and "dropped_nan_count" in md
    assert md["dagster/uri"].value.endswith(".parquet")
    risk = instance.get_latest_materialization_event(dg.AssetKey("region_risk"))
    rmd = risk.asset_materialization.metadata
    assert rmd["preview_rps_2011"].value.startswith("![rps_2011 preview](data:image/png;base64,")
    assert rmd["kernel_seconds"].value > 0 and rmd["kernel_peak_mb"].value > 0
    assert rmd["compute"].value["vm_type"] == "m8g.2xlarge"


def test_rerun_one_partition_replaces_it_cleanly(demo_root, instance, inputs_root):
    storage = Storage(demo_root)
    uri = storage.region_geoparquet_uri("y2_x1")
    before = pq.read_table(uri)
    old_commit = raster_store.committed_regions(storage)["y2_x1"]
    assert materialize_region(instance, demo_root, "y2_x1", inputs_root).success
    new_commit = raster_store.committed_regions(storage)["y2_x1"]
    assert new_commit != old_commit
    after = pq.read_table(uri)
    assert after.equals(before)  # deterministic method, whole-file replacement
    leftovers = [p for p in storage.glob(f"{storage.region_geoparquet_dir}/.*")]
    assert leftovers == []
