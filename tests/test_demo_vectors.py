"""The synthetic demo inputs' census polygons and buildings: GeoParquet 1.1, real counties and
states, tracts and blocks that tile them, small footprints tagged with existing blocks."""

from __future__ import annotations

import json
import math
from typing import cast

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import shapely
from demo_generation import lonlat_index
from grid_helpers import region_id_at

from ocr_core import demo
from ocr_core.catalog import DATASETS, InputCatalog
from ocr_core.errors import InputDataError
from ocr_core.grid import DEMO
from ocr_core.schema import BUILDINGS, CENSUS_DATASETS
from ocr_core.storage import Storage

BLOCKS, TRACTS, COUNTIES, STATES, NATION = CENSUS_DATASETS  # finest first


# --- census ------------------------------------------------------------------------------------
def _geo_metadata(path) -> dict:
    return json.loads(pq.read_schema(path).metadata[b"geo"])


def test_census_files_are_geoparquet_1_1_with_covering_bbox(demo_catalog):
    for name in (*CENSUS_DATASETS, BUILDINGS):
        path = demo_catalog.uri(name)
        geo = _geo_metadata(path)
        assert geo["version"] == "1.1.0", name
        covering = geo["columns"]["geometry"]["covering"]["bbox"]
        assert covering["xmin"] == ["bbox", "xmin"], name
        schema = pq.read_schema(path)
        bbox = schema.field("bbox").type
        assert [bbox.field(i).name for i in range(4)] == ["xmin", "ymin", "xmax", "ymax"]
        gdf = gpd.read_parquet(path)
        assert gdf.crs is not None
        assert gdf.crs.to_epsg() == int(DATASETS[name].crs.split(":")[1]), name
        for col in DATASETS[name].variables:
            assert col in schema.names, (name, col)


def test_real_counties_states_and_nation(demo_catalog):
    counties = gpd.read_parquet(demo_catalog.uri(COUNTIES))
    assert {"06037", "06111"} <= set(counties.GEOID)
    assert dict(zip(counties.GEOID, counties.NAME, strict=True))["06037"] == "Los Angeles"
    states = gpd.read_parquet(demo_catalog.uri(STATES))
    assert len(states) == 49 and states.GEOID.str.len().eq(2).all()
    assert {"06", "11", "53"} <= set(states.GEOID) and not {"02", "15", "72"} & set(states.GEOID)
    assert dict(zip(states.GEOID, states.STUSPS, strict=True))["06"] == "CA"
    nation = gpd.read_parquet(demo_catalog.uri(NATION))
    assert list(nation.GEOID) == ["US"] and list(nation.NAME) == ["United States"]
    west, south, east, north = nation.total_bounds
    assert west >= -125 and south >= 24 and east <= -66 and north <= 50
    assert nation.geometry.iloc[0].contains(shapely.Point(-118.6, 34.2))


def test_tracts_tile_the_county_parts_and_carry_their_county(demo_catalog):
    counties = gpd.read_parquet(demo_catalog.uri(COUNTIES))
    tracts = gpd.read_parquet(demo_catalog.uri(TRACTS))
    assert tracts.GEOID.str.len().eq(11).all() and tracts.GEOID.is_unique
    assert set(tracts.GEOID.str[:5]) <= set(counties.GEOID)
    assert len(tracts) > 100
    domain = shapely.box(*demo.domain_bounds(DEMO))
    for geoid, geometry in zip(counties.GEOID, counties.geometry, strict=True):
        part = shapely.intersection(geometry, domain).area
        mine = tracts[tracts.GEOID.str[:5] == geoid]
        if part == 0:
            assert mine.empty
            continue
        assert math.isclose(shapely.area(mine.geometry.values).sum(), part, rel_tol=1e-6)
        assert math.isclose(shapely.union_all(mine.geometry.values).area, part, rel_tol=1e-6)


def test_blocks_tile_their_tracts(demo_catalog):
    tracts = gpd.read_parquet(demo_catalog.uri(TRACTS)).set_index("GEOID")
    blocks = gpd.read_parquet(demo_catalog.uri(BLOCKS))
    assert blocks.GEOID.str.len().eq(15).all() and blocks.GEOID.is_unique
    assert set(blocks.GEOID.str[:11]) == set(tracts.index)
    area = shapely.area(blocks.geometry.values)
    sums = cast(pd.Series, pd.Series(area).groupby(blocks.GEOID.str[:11].to_numpy()).sum())
    tract_area = shapely.area(tracts.geometry.values)
    np.testing.assert_allclose(sums.loc[tracts.index].values, tract_area, rtol=1e-6)
    rng = np.random.default_rng(0)
    tract_geometry = dict(zip(tracts.index, tracts.geometry, strict=True))
    for geoid in rng.choice(np.asarray(tracts.index), 25, replace=False):  # union = sum
        mine = blocks[blocks.GEOID.str[:11] == geoid].geometry.values
        union = shapely.union_all(mine).area
        assert math.isclose(union, tract_geometry[geoid].area, rel_tol=1e-6), geoid


# --- buildings ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def buildings(demo_catalog):
    return gpd.read_parquet(demo_catalog.uri(BUILDINGS))


def test_buildings_are_tagged_with_existing_blocks(buildings, demo_catalog):
    blocks = gpd.read_parquet(demo_catalog.uri(BLOCKS))
    counties = gpd.read_parquet(demo_catalog.uri(COUNTIES))
    assert len(buildings) == 60_000
    assert buildings["id"].is_unique and buildings["id"].str.len().eq(36).all()
    assert set(buildings.block_geoid) <= set(blocks.GEOID)
    assert (buildings.tract_geoid == buildings.block_geoid.str[:11]).all()
    assert (buildings.state_fips == "06").all() and (buildings.state_abbrev == "CA").all()
    assert (buildings.county_fips == buildings.block_geoid.str[2:5]).all()
    names = dict(zip(counties.GEOID, counties.NAME, strict=True))
    assert (buildings.county_name == buildings.block_geoid.str[:5].map(names)).all()
    assert set(buildings.county_name) == {"Los Angeles", "Ventura"}
    by_geoid = blocks.set_index("GEOID").geometry
    sample = buildings.sample(2000, random_state=0)
    own = by_geoid.loc[sample.block_geoid].values
    assert shapely.covers(own, shapely.centroid(sample.geometry.values)).all()


def test_buildings_are_small_separate_footprints_on_land_in_valid_regions(buildings, demo_scott):
    geoms = buildings.geometry.values
    assert (shapely.get_num_coordinates(geoms) == 5).all()
    lat_mid = math.radians(34.2)
    area_m2 = shapely.area(geoms) * 110_574 * 111_320 * math.cos(lat_mid)
    assert area_m2.min() > 60 and area_m2.max() < 950
    tree = shapely.STRtree(geoms)
    left, right = tree.query(geoms, predicate="intersects")
    assert ((left == right) | shapely.touches(geoms[left], geoms[right])).all()
    bounds = shapely.bounds(geoms)
    valid = set(DEMO.valid_region_ids)
    regions = [region_id_at(DEMO, x, y) for x, y in bounds[:, :2]]
    assert set(regions) <= valid
    assert len(set(regions)) >= 10
    row, col = lonlat_index(*shapely.get_coordinates(shapely.centroid(geoms)).T)
    assert np.isfinite(demo_scott["CRPS"].values[row, col]).all()  # no footprint over the sea


def test_some_buildings_sit_on_region_seams(buildings, demo_generation):
    table = pq.read_table(demo_generation[0].uri(BUILDINGS), columns=["bbox"])
    bbox = table["bbox"].combine_chunks()
    xmin, ymin = bbox.field("xmin").to_numpy(), bbox.field("ymin").to_numpy()
    seams_lon = [DEMO.lon_edge(k * DEMO.chunk_lon) for k in range(1, DEMO.n_cols)]
    seams_lat = [DEMO.lat_edge(k * DEMO.chunk_lat) for k in range(2, DEMO.n_rows)]
    exact_lon = np.isin(xmin, seams_lon)
    exact_lat = np.isin(ymin, seams_lat)
    assert exact_lon.sum() >= 6 and exact_lat.sum() >= 4
    assert (exact_lon & exact_lat).sum() >= 1  # on a seam crossing
    near = np.zeros(len(xmin), bool)
    for s in seams_lon:
        near |= (np.abs(xmin - s) <= DEMO.pixel_size) & (xmin != s)
    assert near.sum() >= 6
    written = demo_generation[1][BUILDINGS]
    assert isinstance(written, demo.WrittenTable) and written.buildings is not None
    assert written.buildings.seam_buildings >= 20


def _region_at(lon: float, lat: float) -> str:
    region = region_id_at(DEMO, lon, lat)
    assert region is not None, (lon, lat)
    return region


def test_buildings_are_sorted_by_region_in_row_groups(demo_generation):
    path = demo_generation[0].uri(BUILDINGS)
    meta = pq.ParquetFile(path).metadata
    assert meta.num_row_groups >= 5
    assert max(meta.row_group(i).num_rows for i in range(meta.num_row_groups)) <= 10_000
    bbox = pq.read_table(path, columns=["bbox"])["bbox"].combine_chunks()
    xmin, ymin = bbox.field("xmin").to_numpy(), bbox.field("ymin").to_numpy()
    order = [DEMO.all_region_ids().index(_region_at(x, y)) for x, y in zip(xmin, ymin, strict=True)]
    assert (np.diff(order) >= 0).mean() > 0.999  # float rounding at seams aside


def test_buildings_need_the_census_blocks(tmp_path):
    empty = InputCatalog(Storage(str(tmp_path)))
    with pytest.raises(InputDataError, match="write_census_polygons"):
        demo.write_tagged_buildings(empty, n_buildings=100)


# --- determinism -------------------------------------------------------------------------------
