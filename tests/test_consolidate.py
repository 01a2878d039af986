"""Consolidated and partitioned building GeoParquet: rows, partitions, metadata, reruns, S3."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow.parquet as pq
import pytest

from ocr_core import consolidate
from ocr_core.consolidate import (
    BuildingDataError,
    RegionBuildingsMissingError,
    write_buildings_geoparquet,
)
from ocr_core.duck import DuckDBConfig
from ocr_core.geoparquet import write_geoparquet
from ocr_core.metadata import vector_metadata
from ocr_core.schema import OUTPUT_VARIABLES
from ocr_core.storage import Storage

if TYPE_CHECKING:
    import geopandas as gpd

RISK_COLUMNS = OUTPUT_VARIABLES
# region file -> (county GEOID prefix, buildings); r3 alone holds state 04.
REGIONS = {
    "y0_x0": (("06037", 100), ("06111", 50)),
    "y0_x1": (("06111", 120),),
    "y1_x0": (("04013", 90),),
}


def _region_frame(region: str, parts, seed: int):
    import geopandas as gpd
    import shapely

    rng = np.random.default_rng(seed)
    n = sum(count for _, count in parts)
    geoid = [
        f"{prefix}{rng.integers(0, 10**10):010d}" for prefix, count in parts for _ in range(count)
    ]
    x, y = rng.uniform(-119.0, -118.5, n), rng.uniform(34.0, 34.5, n)
    data = {
        c: np.where(rng.random(n) < 0.3, 0, rng.random(n)).astype("float32") for c in RISK_COLUMNS
    }
    data |= {"GEOID": geoid, "state": "CA", "county": f"County {region}"}
    geometry = shapely.box(x, y, x + 1e-4, y + 1e-4)
    return gpd.GeoDataFrame(data, geometry=geometry, crs="EPSG:4326")


def _write_regions(storage: Storage, regions=REGIONS) -> dict[str, gpd.GeoDataFrame]:
    frames = {}
    for seed, (region, parts) in enumerate(regions.items()):
        frames[region] = _region_frame(region, parts, seed)
        write_geoparquet(frames[region], storage, storage.region_geoparquet_uri(region))
    return frames


def _epsg(frame: gpd.GeoDataFrame) -> int | None:
    assert frame.crs is not None
    return frame.crs.to_epsg()


def _rows(frames) -> Counter:
    """Multiset of (WKB, GEOID) over frames: equal counters mean no loss and no duplicates."""
    out: Counter = Counter()
    for frame in frames:
        out.update(zip(frame.geometry.to_wkb(), frame["GEOID"], strict=True))
    return out


def _table_rows(table) -> Counter:
    geometry = table.column("geometry").to_pylist()
    return Counter(zip(geometry, table.column("GEOID").to_pylist(), strict=True))


def _files(storage: Storage, uri: str) -> list[str]:
    fs = storage.filesystem()
    base = storage.fs_path(uri).rstrip("/")
    return sorted(p[len(base) + 1 :] for p in fs.find(base)) if fs.exists(base) else []


DUCK = DuckDBConfig(memory_limit="1GB", threads=2)


def _hive():
    """FIPS codes are strings ("06"): readers must say so, or hive inference makes them ints."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    fields = [("state_fips", pa.string()), ("county_fips", pa.string())]
    return ds.partitioning(pa.schema(fields), flavor="hive")


@pytest.fixture
def storage(tmp_path, monkeypatch) -> Storage:
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "scratch"))
    (tmp_path / "scratch").mkdir()
    return Storage(str(tmp_path / "root"), version="1.2.3", environment="production")


def test_outputs_hold_exactly_the_input_rows(storage):
    import geopandas as gpd
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    frames = _write_regions(storage)
    result = write_buildings_geoparquet(storage, DUCK)

    expected = _rows(frames.values())
    assert result.buildings == sum(expected.values()) == 360
    assert result.partitions == 3
    assert result.region_files == 3
    assert result.consolidated_bytes == Path(storage.consolidated_buildings_uri).stat().st_size

    consolidated = gpd.read_parquet(storage.consolidated_buildings_uri)
    assert _epsg(consolidated) == 4326
    assert _rows([consolidated]) == expected
    assert list(consolidated["GEOID"]) == sorted(consolidated["GEOID"])
    schema = pq.read_schema(storage.consolidated_buildings_uri)
    geo = json.loads(schema.metadata[b"geo"])
    assert geo["version"] == "1.1.0"
    assert geo["columns"]["geometry"]["covering"]["bbox"]["xmin"] == ["bbox", "xmin"]
    assert "bbox" in schema.names
    assert schema.metadata[b"version"] == b"1.2.3"

    dataset = ds.dataset(storage.partitioned_buildings_uri, format="parquet", partitioning=_hive())
    table = dataset.to_table()
    assert _table_rows(table) == expected
    geoids = table.column("GEOID").to_pylist()
    assert table.column("state_fips").to_pylist() == [g[:2] for g in geoids]
    assert table.column("county_fips").to_pylist() == [g[2:5] for g in geoids]
    assert _files(storage, storage.partitioned_buildings_uri) == [
        "_common_metadata",
        "state_fips=04/county_fips=013/data_0.parquet",
        "state_fips=06/county_fips=037/data_0.parquet",
        "state_fips=06/county_fips=111/data_0.parquet",
    ]
    county = gpd.read_parquet(
        f"{storage.partitioned_buildings_uri}/state_fips=06/county_fips=111/data_0.parquet"
    )
    assert _epsg(county) == 4326
    assert len(county) == 170
    file_bbox = json.loads(
        pq.read_schema(
            f"{storage.partitioned_buildings_uri}/state_fips=06/county_fips=111/data_0.parquet"
        ).metadata[b"geo"]
    )["columns"]["geometry"]["bbox"]
    np.testing.assert_allclose(file_bbox, county.total_bounds)


def test_hidden_temp_files_in_the_region_folder_are_ignored(storage):
    import shutil

    _write_regions(storage)
    region = Path(storage.region_geoparquet_uri("y0_x0"))
    shutil.copy(region, region.with_name(f".{region.name}.tmp-0123abcd.parquet"))
    assert write_buildings_geoparquet(storage, DUCK).buildings == 360


def test_common_metadata_has_vector_keys_and_no_partition_fields(storage):
    import pyarrow.parquet as pq

    _write_regions(storage)
    write_buildings_geoparquet(storage, DUCK)
    schema = pq.read_schema(f"{storage.partitioned_buildings_uri}/_common_metadata")
    meta = {k.decode(): v.decode() for k, v in schema.metadata.items()}
    expected = vector_metadata("1.2.3")
    assert len(expected) == 7
    assert {k: meta[k] for k in expected} == expected
    assert "state_fips" not in schema.names and "county_fips" not in schema.names
    data_file = f"{storage.partitioned_buildings_uri}/state_fips=06/county_fips=037/data_0.parquet"
    assert schema.names == pq.read_schema(data_file).names
    assert json.loads(meta["geo"])["primary_column"] == "geometry"


def test_rerun_replaces_whole_without_stale_files(storage):
    import pyarrow.dataset as ds

    frames = _write_regions(storage)
    write_buildings_geoparquet(storage, DUCK)
    Path(storage.region_geoparquet_uri("y1_x0")).unlink()

    result = write_buildings_geoparquet(storage, DUCK)

    assert result.partitions == 2
    assert _files(storage, storage.partitioned_buildings_uri) == [
        "_common_metadata",
        "state_fips=06/county_fips=037/data_0.parquet",
        "state_fips=06/county_fips=111/data_0.parquet",
    ]
    assert _files(storage, storage.geoparquet_dir) == [
        "buildings.parquet/_common_metadata",
        "buildings.parquet/state_fips=06/county_fips=037/data_0.parquet",
        "buildings.parquet/state_fips=06/county_fips=111/data_0.parquet",
        "consolidated-buildings.parquet",
    ]
    remaining = _rows([frames["y0_x0"], frames["y0_x1"]])
    table = ds.dataset(storage.partitioned_buildings_uri, partitioning=_hive()).to_table()
    assert _table_rows(table) == remaining


def _snapshot(storage: Storage) -> dict[str, bytes]:
    return {
        f: storage.read_bytes(f"{storage.geoparquet_dir}/{f}")
        for f in _files(storage, storage.geoparquet_dir)
    }


def test_failure_mid_write_keeps_previous_outputs(storage, monkeypatch):
    _write_regions(storage)
    write_buildings_geoparquet(storage, DUCK)
    before = _snapshot(storage)
    Path(storage.region_geoparquet_uri("y1_x0")).unlink()

    def fail(folder, *args):
        assert list(Path(folder).rglob("data_0.parquet")), "scratch files exist by now"
        raise OSError("disk full")

    monkeypatch.setattr(consolidate, "_write_common_metadata", fail)
    with pytest.raises(OSError, match="disk full"):
        write_buildings_geoparquet(storage, DUCK)
    assert _snapshot(storage) == before
    scratch = Path(storage.root).parent / "scratch"
    assert [p for p in scratch.rglob("*") if p.is_file()] == []


def test_no_region_files_names_the_folder_and_writes_nothing(storage):
    with pytest.raises(RegionBuildingsMissingError, match="region_buildings") as err:
        write_buildings_geoparquet(storage, DUCK)
    assert storage.region_geoparquet_dir in str(err.value)
    assert not storage.exists(storage.geoparquet_dir)


def test_malformed_geoid_fails_before_publishing(storage):
    frames = _write_regions(storage)
    bad = frames["y0_x1"].copy()
    bad.loc[3, "GEOID"] = "06111"
    write_geoparquet(bad, storage, storage.region_geoparquet_uri("y0_x1"))
    with pytest.raises(BuildingDataError, match="'06111'"):
        write_buildings_geoparquet(storage, DUCK)
    assert _files(storage, storage.geoparquet_dir) == []


def test_s3_writes_both_outputs_and_rerun_removes_stale_files(s3_server, s3_bucket):
    import geopandas as gpd
    import pyarrow.dataset as ds

    storage = Storage(root=f"{s3_bucket}/x", s3_endpoint_url=s3_server, s3_region="us-east-1")
    fs = storage.filesystem()
    frames = _write_regions(storage)
    neighbour = f"{storage.geoparquet_dir}/buildings.parquet-notes/keep.txt"
    storage.write_bytes_atomic(neighbour, b"not part of the dataset")

    result = write_buildings_geoparquet(storage, DUCK)
    assert result.buildings == 360 and result.partitions == 3
    with fs.open(storage.fs_path(storage.consolidated_buildings_uri), "rb") as f:
        consolidated = gpd.read_parquet(f)  # pyright: ignore[reportArgumentType]  (a file works)
    assert _epsg(consolidated) == 4326
    assert _rows([consolidated]) == _rows(frames.values())
    assert "state_fips=04/county_fips=013/data_0.parquet" in _files(
        storage, storage.current_dir(storage.partitioned_buildings_uri)
    )

    fs.rm(storage.fs_path(storage.region_geoparquet_uri("y1_x0")))
    write_buildings_geoparquet(storage, DUCK)
    assert _files(storage, storage.current_dir(storage.partitioned_buildings_uri)) == [
        "_common_metadata",
        "state_fips=06/county_fips=037/data_0.parquet",
        "state_fips=06/county_fips=111/data_0.parquet",
    ]
    dataset = ds.dataset(
        storage.fs_path(storage.current_dir(storage.partitioned_buildings_uri)),
        filesystem=fs,
        format="parquet",
        partitioning=_hive(),
        exclude_invalid_files=True,
    )
    assert _table_rows(dataset.to_table()) == _rows([frames["y0_x0"], frames["y0_x1"]])
    assert storage.read_bytes(neighbour) == b"not part of the dataset"


def test_s3_prefix_with_glob_characters_is_read_as_a_name(s3_server, s3_bucket):
    """DuckDB reads s3:// through fsspec's glob: the region files and the county files under
    ``[x]`` and ``*`` are still found, each once."""
    from ocr_core import checks

    root = f"{s3_bucket}/o c r [x] it's *"
    storage = Storage(root=root, s3_endpoint_url=s3_server, s3_region="us-east-1")
    frames = _write_regions(storage)
    result = write_buildings_geoparquet(storage, DUCK)
    assert result.region_files == 3 and result.buildings == 360
    passed, details = checks.consolidated_matches_regions(storage, DUCK)
    assert passed and details["partitioned"]["rows"] == details["region_rows"] == 360
    with storage.filesystem().open(storage.fs_path(storage.consolidated_buildings_uri)) as f:
        assert _table_rows(pq.read_table(f)) == _rows(frames.values())
