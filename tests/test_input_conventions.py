"""The catalog reads each store's CRS from the convention the reference's ingestion left in it.

Tiny stores are written to icechunk (zarr) or GeoParquet in tmp_path with the metadata layout of
each real store, then opened through ``InputCatalog`` exactly as the pipeline opens them.
"""

from __future__ import annotations

import json

import geopandas as gpd
import icechunk
import numpy as np
import pyarrow.parquet as pq
import pytest
import shapely
import xarray as xr
from pyproj import CRS

from ocr_core.catalog import InputCatalog, spec
from ocr_core.errors import InputDataError
from ocr_core.schema import BUILDINGS, GEOGRAPHY, RILEY_270M, WIND_VARIABLE
from ocr_core.schema import SCOTT_2024 as SCOTT
from ocr_core.schema import WIND_DISTRIBUTION as WIND
from ocr_core.storage import Storage

RILEY_270 = RILEY_270M["2011"]
COUNTIES = GEOGRAPHY["counties"].census_dataset
RES = 0.00030799387843671866
# The WKT the USFS GeoTIFFs carry (ESRI's name for NAD83 / Conus Albers), as rasterio reports it.
USGS_ALBERS_WKT = (
    'PROJCS["USA_Contiguous_Albers_Equal_Area_Conic_USGS_version",GEOGCS["NAD83",'
    'DATUM["North_American_Datum_1983",SPHEROID["GRS 1980",6378137,298.257222101004]],'
    'PRIMEM["Greenwich",0],UNIT["degree",0.0174532925199433]],'
    'PROJECTION["Albers_Conic_Equal_Area"],PARAMETER["latitude_of_center",23],'
    'PARAMETER["longitude_of_center",-96],PARAMETER["standard_parallel_1",29.5],'
    'PARAMETER["standard_parallel_2",45.5],PARAMETER["false_easting",0],'
    'PARAMETER["false_northing",0],UNIT["metre",1],AXIS["Easting",EAST],AXIS["Northing",NORTH]]'
)


@pytest.fixture
def catalog(tmp_path) -> InputCatalog:
    return InputCatalog(Storage(str(tmp_path)))


def _commit(catalog: InputCatalog, name: str, ds: xr.Dataset) -> None:
    repo = icechunk.Repository.create(icechunk.local_filesystem_storage(catalog.uri(name)))
    session = repo.writable_session("main")
    ds.to_zarr(session.store, zarr_format=3, consolidated=False, mode="w")
    session.commit("test store")


def _odc_crs(epsg: int) -> xr.DataArray:
    """odc-geo's CRS coordinate: value = EPSG code, CF attrs + GDAL spatial_ref."""
    crs = CRS.from_epsg(epsg)
    return xr.DataArray(np.int32(epsg), attrs={"spatial_ref": crs.to_wkt(), **crs.to_cf()})


def _geographic(variables, extra_dims=()) -> xr.Dataset:
    """A 4 × 5 pixel dataset on 30 m lat/lon centres, as odc-geo's xr_reproject returns it."""
    lat = 34.0 + (np.arange(4) + 0.5) * RES
    lon = -118.5 + (np.arange(5) + 0.5) * RES
    shape = (4, 5, *(n for _, n in extra_dims))
    dims = ("latitude", "longitude", *(d for d, _ in extra_dims))
    data = {v: (dims, np.full(shape, 0.01, dtype="float32")) for v in variables}
    axis = {"resolution": RES, "crs": "EPSG:4326"}
    return xr.Dataset(
        data,
        coords={
            "latitude": ("latitude", lat, {"units": "degrees_north", **axis}),
            "longitude": ("longitude", lon, {"units": "degrees_east", **axis}),
            "spatial_ref": _odc_crs(4326),
        },
    )


def _scott_store() -> xr.Dataset:
    """usfs_scott_2024.reproject_to_4326: odc-geo output plus the root attributes it sets."""
    ds = _geographic(("BP", "CRPS", "RPS"))
    ds.attrs = {
        "title": "RDS-2020-0016-02",
        "version": "2024-V2",
        "data_source": "https://www.fs.usda.gov/rds/archive/catalog/RDS-2020-0016-2",
        "description": "Wildfire Risk to Communities ... stored in the Icechunk storage format.",
        "EPSG": "4326",
        "resolution": "30m",
    }
    return ds


def _riley_270_store(wkt: str = USGS_ALBERS_WKT) -> xr.Dataset:
    """usfs_riley_2025.merge_tiffs_to_icechunk: rasterio-opened GeoTIFFs, band squeezed and
    dropped, sorted by (y, x) so y ascends; rioxarray's spatial_ref, bands pointing at it."""
    y = 1_500_000.0 + 135 + 270.0 * np.arange(3)
    x = -2_000_000.0 + 135 + 270.0 * np.arange(4)
    ref = xr.DataArray(
        np.int64(0),
        attrs={"crs_wkt": wkt, "spatial_ref": wkt, "GeoTransform": "-2000000 270 0 1500810 0 -270"},
    )
    band = {"AREA_OR_POINT": "Area", "grid_mapping": "spatial_ref"}
    variables = ("BP", "FLP1", "FLP2", "FLP3", "FLP4", "FLP5", "FLP6")
    return xr.Dataset(
        {v: (("y", "x"), np.full((3, 4), 0.02, dtype="float32"), band) for v in variables},
        coords={"y": y, "x": x, "spatial_ref": ref},
    )


def _lambert_crs_variable() -> xr.DataArray:
    crs = CRS.from_proj4(
        "+proj=lcc +lat_1=30 +lat_2=50 +lat_0=39.100006 +lon_0=-97.9 +R=6370000 +units=m"
    )
    return xr.DataArray(np.int64(1), attrs={"crs_wkt": crs.to_wkt(), **crs.to_cf()})


def _wind_store() -> xr.Dataset:
    """compute_fosberg_fire_weather_index.reproject: odc-geo output with CONUS404's Lambert
    ``crs`` variable and the quantile scalar carried along; root reprojected_to only."""
    ds = _geographic((WIND_VARIABLE,), extra_dims=(("wind_direction", 8),))
    ds = ds.assign_coords(crs=_lambert_crs_variable(), quantile=np.float64(0.99))
    ds.attrs = {"reprojected_to": SCOTT}
    return ds


# --- accepted conventions ----------------------------------------------------------------------
def test_4326_store_written_by_odc_geo_is_accepted(catalog):
    _commit(catalog, SCOTT, _scott_store())
    ds = catalog.open_zarr(SCOTT)
    assert catalog.crs(SCOTT, ds) == ("EPSG:4326", "'spatial_ref' variable attr 'crs_wkt'")


def test_4326_store_with_only_the_root_epsg_attribute_is_accepted(catalog):
    ds = _scott_store().drop_vars("spatial_ref")
    for axis in ("latitude", "longitude"):
        ds[axis].attrs.pop("crs")
    _commit(catalog, SCOTT, ds)
    assert catalog.crs(SCOTT) == ("EPSG:4326", "root attribute EPSG='4326'")


def test_270m_store_written_from_the_geotiffs_is_accepted(catalog):
    _commit(catalog, RILEY_270, _riley_270_store())
    ds = catalog.open_zarr(RILEY_270)
    crs, where = catalog.crs(RILEY_270, ds)
    assert crs == "EPSG:5070"
    assert where == "variable 'BP' grid_mapping -> 'spatial_ref' attr 'crs_wkt'"
    assert np.all(np.diff(ds["y"].values) > 0)  # ascending, as the ingestion sorted it


def test_270m_store_with_the_epsg_wkt_of_nad83_conus_albers_is_accepted(catalog):
    wkt = CRS.from_epsg(5070).to_wkt()
    assert "NAD83 / Conus Albers" in wkt
    _commit(catalog, RILEY_270, _riley_270_store(wkt))
    assert catalog.crs(RILEY_270)[0] == "EPSG:5070"


def test_wind_store_reads_spatial_ref_not_conus404s_stale_lambert_crs(catalog):
    _commit(catalog, WIND, _wind_store())
    ds = catalog.open_zarr(WIND)
    assert ds[WIND_VARIABLE].dims == ("latitude", "longitude", "wind_direction")
    assert catalog.crs(WIND, ds) == ("EPSG:4326", "'spatial_ref' variable attr 'crs_wkt'")


def test_wind_store_with_only_reprojected_to_takes_the_named_datasets_crs(catalog):
    ds = _wind_store().drop_vars(["spatial_ref", "crs"])
    for axis in ("latitude", "longitude"):
        ds[axis].attrs.pop("crs")
    _commit(catalog, WIND, ds)
    assert catalog.crs(WIND) == ("EPSG:4326", f"root attribute reprojected_to={SCOTT!r}")


def _write_geoparquet(path, crs) -> None:
    frame = gpd.GeoDataFrame(
        {
            "block_geoid": ["060371234001000"],
            "state_abbrev": ["CA"],
            "county_name": ["Los Angeles"],
            "NAME": ["Los Angeles"],
            "GEOID": ["06037"],
        },
        geometry=[shapely.box(-118.5, 34.0, -118.49, 34.01)],
        crs=crs,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, geometry_encoding="WKB", write_covering_bbox=True)


def _set_geo_crs(path, **change) -> None:
    """Rewrite the primary column's 'geo' metadata: crs=None writes null, drop=True removes it."""
    table = pq.read_table(path)
    geo = json.loads(table.schema.metadata[b"geo"])
    column = geo["columns"]["geometry"]
    if change.get("drop"):
        column.pop("crs", None)
    else:
        column["crs"] = change["crs"]
    meta = {**table.schema.metadata, b"geo": json.dumps(geo).encode()}
    pq.write_table(table.replace_schema_metadata(meta), path)


def test_census_geoparquet_with_its_nad83_crs_is_accepted(catalog, tmp_path):
    _write_geoparquet(tmp_path / spec(COUNTIES).prefix, 4269)
    crs, where = catalog.crs(COUNTIES)
    assert crs == "EPSG:4269" and where == "GeoParquet 'geo' metadata of column 'geometry'"
    assert catalog.geoparquet_uri(COUNTIES) == catalog.uri(COUNTIES)


def test_geoparquet_without_a_crs_is_crs84_as_geopandas_reads_it(catalog, tmp_path):
    path = tmp_path / spec(BUILDINGS).prefix
    _write_geoparquet(path, 4326)
    _set_geo_crs(path, drop=True)  # how DuckDB's COPY ... (FORMAT parquet) writes it
    assert gpd.read_parquet(path).crs == CRS("OGC:CRS84")
    crs, where = catalog.crs(BUILDINGS)
    assert crs == "EPSG:4326" and "no crs: the OGC:CRS84 default" in where


# --- refusals ----------------------------------------------------------------------------------
def _without_stated_crs(ds):
    """``ds`` without its spatial_ref variable, root attributes and coordinates' crs."""
    ds = ds.drop_vars("spatial_ref").drop_attrs(deep=False)
    for axis in ("latitude", "longitude"):
        ds[axis].attrs.pop("crs")
    return ds


def test_store_with_no_crs_anywhere_is_refused_with_the_fix(catalog):
    _commit(catalog, SCOTT, _without_stated_crs(_scott_store()))
    with pytest.raises(InputDataError) as err:
        catalog.open_zarr(SCOTT)
    msg = str(err.value)
    assert f"input dataset {SCOTT!r} at {catalog.uri(SCOTT)} has no CRS" in msg
    assert "found none" in msg and "'spatial_ref' variable" in msg
    assert "Fix: write the CRS" in msg and "EPSG='4326'" in msg


def test_web_mercator_in_spatial_ref_is_refused_naming_what_and_where(catalog):
    _commit(catalog, RILEY_270, _riley_270_store(CRS.from_epsg(3857).to_wkt()))
    with pytest.raises(InputDataError) as err:
        catalog.open_zarr(RILEY_270)
    msg = str(err.value)
    assert f"input dataset {RILEY_270!r}" in msg
    assert "has CRS EPSG:3857 (found in variable 'BP' grid_mapping -> 'spatial_ref'" in msg
    assert "catalog expects EPSG:5070" in msg and "Fix: reproject it to EPSG:5070" in msg


def test_conflicting_crs_statements_are_refused(catalog):
    ds = _scott_store()
    ds.attrs["EPSG"] = "5070"
    _commit(catalog, SCOTT, ds)
    with pytest.raises(InputDataError, match="states conflicting CRSs") as err:
        catalog.open_zarr(SCOTT)
    assert "EPSG:5070 in root attribute EPSG='5070'" in str(err.value)


def test_geoparquet_with_a_null_crs_is_refused(catalog, tmp_path):
    path = tmp_path / spec(COUNTIES).prefix
    _write_geoparquet(path, 4269)
    _set_geo_crs(path, crs=None)
    with pytest.raises(InputDataError) as err:
        catalog.geoparquet_uri(COUNTIES)
    msg = str(err.value)
    assert f"{COUNTIES!r}" in msg and "crs: null, an unknown CRS" in msg
    assert "Fix: write it as GeoParquet from a GeoDataFrame whose crs is EPSG:4269" in msg


def test_census_geoparquet_in_another_crs_is_refused(catalog, tmp_path):
    _write_geoparquet(tmp_path / spec(COUNTIES).prefix, 4326)
    with pytest.raises(InputDataError) as err:
        catalog.geoparquet_uri(COUNTIES)
    assert "has CRS EPSG:4326 (found in GeoParquet 'geo' metadata" in str(err.value)
    assert "catalog expects EPSG:4269" in str(err.value)


def test_plain_parquet_without_geo_metadata_is_refused(catalog, tmp_path):
    path = tmp_path / spec(BUILDINGS).prefix
    _write_geoparquet(path, 4326)
    table = pq.read_table(path)
    pq.write_table(table.replace_schema_metadata({}), path)
    with pytest.raises(InputDataError, match="no GeoParquet 'geo' metadata"):
        catalog.geoparquet_uri(BUILDINGS)


def test_wind_store_left_with_only_conus404s_lambert_crs_is_refused(catalog):
    _commit(catalog, WIND, _without_stated_crs(_wind_store()))
    with pytest.raises(InputDataError) as err:
        catalog.open_zarr(WIND)
    msg = str(err.value)
    assert "(no EPSG code) (found in 0-d variable 'crs' attr 'crs_wkt')" in msg
    assert "catalog expects EPSG:4326" in msg
