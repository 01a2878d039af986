"""Phase 01 end to end through Dagster: demo inputs -> region_risk -> region_buildings.

Real Dagster instance, real icechunk repository, real GeoParquet, Dask LocalCluster compute.
"""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import numpy as np
import pyarrow.parquet as pq
import pytest
from grid_helpers import region_id_at
from raster_commits import region_commit_log

from ocr_assets.phase01_regions import process_region
from ocr_core import raster_store
from ocr_core.catalog import InputCatalog
from ocr_core.grid import DEMO
from ocr_core.schema import BUILDINGS, OUTPUT_VARIABLES
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
        [process_region],
        partition_key=region,
        instance=instance,
        resources=resources_for(root, inputs_root, compute),
        **kwargs,
    )


def latest_metadata(instance, asset: str, partition: str) -> dict:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition]), limit=1
    ).records
    return records[0].event_log_entry.asset_materialization.metadata


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
    messages = [m for _, m in region_commit_log(storage)]
    assert messages.count(raster_store.TEMPLATE_MESSAGE) == 1
    assert len([m for m in messages if m.startswith("wrote region_id")]) == 12


def test_raster_matches_grid_and_schema(demo_root):
    import xarray as xr

    repo = raster_store.open_repository(Storage(demo_root))
    ds = xr.open_zarr(repo.readonly_session("main").store, consolidated=False)
    assert sorted(map(str, ds.data_vars)) == sorted(OUTPUT_VARIABLES)
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
    files = storage.list_files(storage.region_geoparquet_dir, ".parquet")
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


def test_every_building_lands_in_exactly_one_region(demo_root, inputs_root, instance):
    """No seam strip lost, no building in two regions: region rows + NaN drops = input."""
    import shapely

    table = pq.read_table(
        InputCatalog(Storage(inputs_root)).uri(BUILDINGS), columns=["bbox", "geometry"]
    )
    bbox = table.column("bbox").combine_chunks()
    xmin = bbox.field("xmin").to_numpy()
    ymin = bbox.field("ymin").to_numpy()
    home = np.array([region_id_at(DEMO, x, y) for x, y in zip(xmin, ymin, strict=True)])
    wkb = np.array(table.column("geometry").to_pylist(), dtype=object)
    storage = Storage(demo_root)
    rows, dropped = 0, 0
    for rid in DEMO.valid_region_ids:
        out = pq.read_table(storage.region_geoparquet_uri(rid), columns=["geometry"])
        got = {shapely.from_wkb(g).wkt for g in out.column("geometry").to_pylist()}
        expected = {shapely.from_wkb(g).wkt for g in wkb[home == rid]}
        assert got <= expected, rid  # only its own buildings
        md = latest_metadata(instance, "region_buildings", rid)
        assert md["building_count"].value == len(got) == out.num_rows  # no duplicates
        assert md["building_count"].value + md["dropped_nan_count"].value == len(expected)
        rows += out.num_rows
        dropped += md["dropped_nan_count"].value
    assert rows + dropped == int(np.isin(home, DEMO.valid_region_ids).sum())
    # buildings whose bbox corner sits exactly on an interior seam are assigned, not lost
    on_seam = np.isclose((xmin - DEMO.lon0) / DEMO.pixel_size % 450, 0) & (
        np.isin(home, DEMO.valid_region_ids)
    )
    assert on_seam.sum() > 0
    assert rows > 0.9 * int(np.isin(home, DEMO.valid_region_ids).sum())


def test_materialization_metadata_in_instance(demo_root, instance):
    event = instance.get_latest_materialization_event(dg.AssetKey("region_buildings"))
    md = event.asset_materialization.metadata
    assert md["building_count"].value >= 0 and "dropped_nan_count" in md
    table = md["risk_score_histogram"].value.splitlines()
    assert table[0] == "| score | RPS (%) | rps_2011 | rps_2047 |" and len(table) == 2 + 11
    for column in (2, 3):
        counts = [int(row.split(" | ")[column].split()[0].replace(",", "")) for row in table[2:]]
        assert sum(counts) == md["building_count"].value
    assert md["value_ranges"].value.startswith("| variable | min | max |")
    assert md["dagster/uri"].value.endswith(".parquet")
    risk = instance.get_latest_materialization_event(dg.AssetKey("region_risk"))
    rmd = risk.asset_materialization.metadata
    assert rmd["preview_rps_2011"].value.startswith("![rps_2011 preview](data:image/png;base64,")
    assert "Colour bar" in rmd["preview_rps_2011"].value and "rps_2011 ranges over" in (
        rmd["preview_rps_2011"].value
    )
    assert rmd["kernel_seconds"].value > 0 and rmd["kernel_peak_mb"].value > 0
    assert rmd["compute"].value["compute_platform"] == "local"


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
    names = sorted(p.name for p in Path(storage.region_geoparquet_dir).iterdir())
    assert names == sorted(f"{rid}.parquet" for rid in DEMO.valid_region_ids)  # no scratch files


def test_region_outputs_on_s3(demo_inputs_root, s3_server, s3_bucket, instance):
    """Outputs on an S3 root (a real S3 API on loopback): icechunk repo and GeoParquet."""
    import geopandas as gpd
    import s3fs

    result = dg.materialize(
        [process_region],
        partition_key="y3_x1",
        instance=instance,
        resources={
            "storage": StorageResource(
                root=f"{s3_bucket}/ocr",
                environment="production",
                version="1.2.3",
                s3_endpoint_url=s3_server,
                s3_region="us-east-1",
            ),
            "catalog": InputCatalogResource(root=str(demo_inputs_root)),
            "compute": ComputeResource(),
        },
    )
    assert result.success
    storage = Storage(f"{s3_bucket}/ocr", "production", "1.2.3", s3_server, "us-east-1")
    assert "/production/v1.2.3/ocr.icechunk" in storage.icechunk_uri
    assert list(raster_store.committed_regions(storage)) == ["y3_x1"]
    arrays = raster_store.read_region(storage, DEMO, "y3_x1")
    assert np.isfinite(arrays["rps_2011"]).any()
    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": s3_server, "region_name": "us-east-1"})
    key = storage.region_geoparquet_uri("y3_x1")[len("s3://") :]
    frame = gpd.read_parquet(key, filesystem=fs)
    assert len(frame) > 0 and list(frame.columns)[:8] == list(OUTPUT_VARIABLES)
    assert fs.ls(key.rsplit("/", 1)[0]) == [key]  # nothing but the finished file
