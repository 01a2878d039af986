"""Regional statistics and analysis files against an independent geopandas computation.

The inputs and that computation are in tests/aggregate_inputs.py: square census polygons with
a subdivided state and a split tract, and ~500 buildings on a dyadic grid whose centroids are
exact, some on shared edges, with risk values at and next to every histogram boundary.
"""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import shapely
from aggregate_inputs import (
    ANALYSIS,
    DUCK,
    NAMES,
    analysis_columns,
    building_frame,
    building_total,
    census_frames,
    epsg,
    expected_level,
    make_inputs,
    stat_names,
)

from ocr_core.analysis_files import write_analysis_files
from ocr_core.catalog import InputCatalog
from ocr_core.errors import InputDataError
from ocr_core.metadata import vector_metadata
from ocr_core.schema import LEVELS, RISK_SCORE_BOUNDARIES
from ocr_core.schema import SUMMARY_VARIABLES as RISK_VARIABLES
from ocr_core.statistics import write_summary_stats
from ocr_core.storage import Storage


# --- fixtures --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def computed(tmp_path_factory):
    root = tmp_path_factory.mktemp("aggregate")
    storage = make_inputs(root)
    summary = write_summary_stats(storage, InputCatalog(storage), DUCK)
    analysis = write_analysis_files(storage, DUCK)
    return storage, summary, analysis


# --- summary statistics ----------------------------------------------------------------------
@pytest.mark.parametrize("level", LEVELS)
def test_statistics_match_independent_computation(computed, level):
    storage, summary, _ = computed
    buildings = building_frame()
    expected, shapes = expected_level(buildings, level)
    path = storage.summary_stats_uri(level)
    table = pq.read_table(path)
    assert table.column_names == [*stat_names(level), "geometry"]
    types = {f.name: f.type for f in table.schema}
    assert types["GEOID"] == pa.string() and types["building_count"] == pa.int64()
    for v in RISK_VARIABLES:
        assert types[f"{v}_mean"] == pa.float64() and types[f"{v}_median"] == pa.float32()
    assert types["risk_score_2011_hist"] == pa.list_(pa.float64())
    geo = json.loads(pq.read_metadata(path).metadata[b"geo"])
    assert geo["version"] == "1.1.0" and geo["columns"]["geometry"]["crs"]["id"]["code"] == 4326

    got = gpd.read_parquet(path).set_index("GEOID")
    assert got.crs.to_epsg() == 4326
    assert list(got.index) == sorted(expected.index)  # only geographies with buildings
    assert bool((got["building_count"] >= 1).all())
    for col in expected.columns:
        for geoid in expected.index:
            e, g = expected.loc[geoid, col], got.loc[geoid, col]
            if col.endswith("_hist"):
                assert list(g) == list(e), (level, geoid, col)
            elif col.endswith("_mean"):
                assert g == pytest.approx(e, rel=1e-12), (level, geoid, col)
            elif col.endswith("_median"):
                assert np.float32(g) == e, (level, geoid, col)
            else:
                assert g == e, (level, geoid, col)
    for geoid, geom in got.geometry.items():
        assert shapely.equals(geom, shapes[geoid]), (level, geoid)
        rings = [geom] if geom.geom_type == "Polygon" else list(geom.geoms)
        assert all(r.exterior.is_ccw for r in rings)

    info = summary.levels[level]
    assert info.path == path and info.rows == len(expected)
    assert info.counts.building_count == expected["building_count"].sum()
    assert info.counts.total_buildings == len(buildings)


def test_each_building_once_and_ties_to_lowest_geoid(computed):
    storage, summary, _ = computed
    n = len(building_frame())
    counts = {
        level: gpd.read_parquet(storage.summary_stats_uri(level)).set_index("GEOID")
        for level in LEVELS
    }
    nation = building_total(counts["nation"])
    assert nation == n
    for level in ("counties", "states", "tracts"):
        assert building_total(counts[level]) == nation, level
    assert building_total(counts["blocks"]) < nation
    blocks = summary.levels["blocks"].counts
    assert blocks.unassigned_buildings == n - building_total(counts["blocks"])
    footer = pq.read_metadata(storage.summary_stats_uri("blocks")).metadata[b"ocr:aggregation"]
    assert json.loads(footer) == blocks.figures()
    # x = -98 (4 buildings) is the CO/KS edge: all in CO ("08" < "20"); x = -99 lies on the
    # seam of CO's subdivision and is still one building each.
    states = counts["states"]["building_count"].to_dict()
    assert states["08"] == 4 * 64 and states["20"] == n - 4 * 64
    states_counts = summary.levels["states"].counts
    assert states_counts.boundary_ties == 4
    assert states_counts.subdivided_polygons == 1
    assert states_counts.pieces is not None and states_counts.pieces > 2
    counties = counts["counties"]["building_count"].to_dict()
    assert counties["08001"] == 4 * 32 and counties["08005"] == 4 * 32
    assert "31001" not in counties
    # The split tract (two rows, one GEOID): buildings on its inner edge x = -97 count once.
    assert summary.levels["tracts"].counts.duplicate_geoid_rows == 1
    assert counts["tracts"].loc["20001000100", "building_count"] == n - 4 * 64


def test_census_polygons_transformed_to_wgs84(computed):
    storage, summary, _ = computed
    for level in LEVELS:
        assert summary.levels[level].counts.crs_transform.startswith("ST_Transform EPSG:4269")
    got = gpd.read_parquet(storage.summary_stats_uri("counties")).set_index("GEOID")
    ref = census_frames()["counties"].to_crs(4326).set_index("GEOID")
    for geoid in got.index:
        a = shapely.normalize(got.geometry[geoid])
        b = shapely.normalize(ref.geometry[geoid])
        assert shapely.equals_exact(a, b, tolerance=1e-12)


@pytest.mark.parametrize("where", ["local", "s3"])
def test_stale_output_under_a_root_with_glob_characters_is_removed(where, tmp_path, request):
    """A republished folder drops the old version's files by exact name, even under ``[x]``
    and ``*`` (fsspec's rm would read them as a pattern on S3)."""
    odd = "o c r [x] it's *"
    if where == "local":
        storage = Storage(str(tmp_path / odd))
    else:
        endpoint, bucket = (request.getfixturevalue(f) for f in ("s3_server", "s3_bucket"))
        storage = Storage(f"{bucket}/{odd}", s3_endpoint_url=endpoint, s3_region="us-east-1")
    folder = storage.summary_stats_dir
    for names in (("blocks", "tracts"), ("tracts",), ("tracts",), ("tracts",)):
        with storage.atomic_local_dir(folder) as path:
            for name in names:
                (path / f"{name}_summary_stats.parquet").write_bytes(name.encode())
    assert storage.read_bytes(storage.published_summary_stats_uri("tracts")) == b"tracts"
    assert not storage.exists(storage.published_summary_stats_uri("blocks"))
    everything = storage.list_files(folder, recursive=True)
    assert not [f for f in everything if f.endswith("blocks_summary_stats.parquet")], everything


def test_blocks_skipped_when_absent(tmp_path):
    storage = make_inputs(tmp_path, blocks=False)
    stale = Path(storage.summary_stats_uri("blocks"))
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"stale")
    stale_csv = Path(storage.region_analysis_uri("block", "csv"))
    stale_csv.parent.mkdir(parents=True)
    stale_csv.write_text("stale")
    summary = write_summary_stats(storage, InputCatalog(storage), DUCK)
    assert "blocks" not in summary.levels
    assert "us-census-blocks" in summary.skipped["blocks"]
    assert not stale.exists()  # it went with the old folder
    assert set(summary.levels) == set(LEVELS) - {"blocks"}
    analysis = write_analysis_files(storage, DUCK)
    assert analysis.skipped == ("block",) and not stale_csv.exists()
    assert analysis.outputs["counties"].rows == 3


@pytest.mark.parametrize("missing", ["counties", "tracts", "states", "nation"])
def test_missing_census_dataset_is_a_clear_error(tmp_path, missing):
    storage = make_inputs(tmp_path)
    Path(InputCatalog(storage).uri(f"us-census-{missing}")).unlink()
    with pytest.raises(InputDataError, match=f"us-census-{missing}"):
        write_summary_stats(storage, InputCatalog(storage), DUCK)
    out = Path(storage.summary_stats_dir)
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("rps_2011", np.float32(100.5), "outside \\[0, 100\\]"),
        ("rps_2047", np.float32(-1), "outside \\[0, 100\\]"),
        ("bp_2011", np.float32("nan"), "NaN"),
    ],
)
def test_invalid_risk_values_raise(tmp_path, column, value, message):
    buildings = building_frame()
    buildings.loc[5, column] = value
    storage = make_inputs(tmp_path, buildings=buildings)
    with pytest.raises(InputDataError, match=message):
        write_summary_stats(storage, InputCatalog(storage), DUCK)
    assert not Path(storage.summary_stats_dir).exists()


# --- analysis files --------------------------------------------------------------------------
@pytest.mark.parametrize("level", LEVELS)
def test_analysis_files(computed, level):
    storage, _, analysis = computed
    name = ANALYSIS[level]
    summary = gpd.read_parquet(storage.summary_stats_uri(level)).set_index("GEOID")
    centroids = dict(zip(summary.index, shapely.centroid(summary.geometry.values), strict=True))
    records = summary.to_dict("index")
    info = analysis.outputs[name]
    assert info.rows == len(summary)
    assert info.paths == {
        e: storage.region_analysis_uri(name, e) for e in ("csv", "geojson", "parquet")
    }

    csv_path = storage.region_analysis_uri(name, "csv")
    lines = Path(csv_path).read_text().splitlines()
    meta = vector_metadata(storage.version)
    assert lines[: len(meta)] == [f"# {k}: {v}" for k, v in meta.items()]
    assert lines[len(meta)].replace('"', "").split(",") == analysis_columns(level)
    csv = pd.read_csv(csv_path, comment="#", dtype={"GEOID": str}, float_precision="round_trip")
    csv = csv.set_index("GEOID")
    assert list(csv.index) == list(summary.index)
    for geoid, row in zip(csv.index, csv.to_dict("records"), strict=True):
        s = records[geoid]
        assert row["building_count"] == s["building_count"]
        for v in RISK_VARIABLES:
            assert row[f"{v}_mean"] == s[f"{v}_mean"]
            assert np.float32(row[f"{v}_median"]) == np.float32(s[f"{v}_median"])
        for h in ("risk_score_2011_hist", "risk_score_2047_hist"):
            assert json.loads(row[h]) == list(s[h])
        for c in NAMES[level]:
            assert row[c] == s[c]
        assert row["longitude"] == pytest.approx(centroids[geoid].x, abs=1e-9)
        assert row["latitude"] == pytest.approx(centroids[geoid].y, abs=1e-9)

    with open(storage.region_analysis_uri(name, "geojson")) as f:
        doc = json.load(f)
    assert doc["type"] == "FeatureCollection" and doc["metadata"] == meta
    assert len(doc["features"]) == len(summary)
    for feature in doc["features"]:
        assert feature["type"] == "Feature"
        props = feature["properties"]
        assert list(props) == analysis_columns(level)
        s = records[props["GEOID"]]
        assert shapely.equals(shapely.geometry.shape(feature["geometry"]), s["geometry"])
        assert props["risk_score_2011_hist"] == list(s["risk_score_2011_hist"])
        assert np.float32(props["rps_2047_median"]) == np.float32(s["rps_2047_median"])
        assert props["longitude"] == pytest.approx(centroids[props["GEOID"]].x, abs=1e-9)
    if level == "nation":
        assert doc["features"][0]["properties"]["NAME"] == "United States"

    parquet_path = storage.region_analysis_uri(name, "parquet")
    frame = gpd.read_parquet(parquet_path)
    assert list(frame.columns) == [*analysis_columns(level), "geometry"]
    assert epsg(frame) == 4326 and len(frame) == len(summary)
    geo = json.loads(pq.read_metadata(parquet_path).metadata[b"geo"])
    assert geo["version"] == "1.1.0"


def test_rerun_replaces_files_whole(tmp_path):
    storage = make_inputs(tmp_path)
    catalog = InputCatalog(storage)
    write_summary_stats(storage, catalog, DUCK)
    write_analysis_files(storage, DUCK)
    Path(storage.region_geoparquet_uri("y2_x0")).unlink()
    remaining = len(building_frame()) - len(building_frame().iloc[2::3])
    summary = write_summary_stats(storage, catalog, DUCK)
    analysis = write_analysis_files(storage, DUCK)
    assert summary.levels["nation"].counts.building_count == remaining
    nation = gpd.read_parquet(storage.summary_stats_uri("nation"))
    assert nation["building_count"].tolist() == [remaining]
    with open(storage.region_analysis_uri("nation", "geojson")) as f:
        assert json.load(f)["features"][0]["properties"]["building_count"] == remaining
    csv = pd.read_csv(storage.region_analysis_uri("counties", "csv"), comment="#")
    assert len(csv) == analysis.outputs["counties"].rows == 3
    assert building_total(csv) == remaining
    leftovers = [p for p in Path(storage.root).rglob(".*") if ".tmp-" in p.name]
    assert leftovers == []


def test_runs_against_s3(tmp_path, s3_server, s3_bucket):
    """Same inputs on an S3 API: read through DuckDB's fsspec hook, written with single PUTs."""
    local = make_inputs(tmp_path / "local", blocks=False)
    storage = Storage(s3_bucket, s3_endpoint_url=s3_server, s3_region="us-east-1")
    storage.filesystem().put(local.root + "/", s3_bucket[len("s3://") :], recursive=True)
    summary = write_summary_stats(storage, InputCatalog(storage), DUCK)
    assert "blocks" in summary.skipped
    assert summary.levels["nation"].counts.building_count == len(building_frame())
    analysis = write_analysis_files(storage, DUCK)
    folder = storage.current_dir(storage.region_analysis_dir)  # the version CURRENT names
    doc = json.loads(storage.read_bytes(f"{folder}/states/stats.geojson"))
    assert len(doc["features"]) == analysis.outputs["states"].rows == 2


def test_risk_score_histogram_bins_are_the_reference_bins():
    """Exact zeros are score 0; (a, b] bins compared in float32; NaN and > 100 not counted."""
    from ocr_core.schema import risk_score_histogram

    b = np.array(RISK_SCORE_BOUNDARIES, dtype=np.float32)
    values = np.concatenate([[0.0, 0.0, 1e-9], b, np.nextafter(b, np.float32(np.inf))[:-1],
                             [np.nan, 150.0]]).astype(np.float32)  # fmt: skip
    counts = risk_score_histogram(values)
    assert counts[0] == 2 and len(counts) == 11
    assert counts[1] == 2  # 1e-9 and 0.01 itself
    assert counts[2:] == [2] * 9  # each boundary, and just above the previous one
    assert sum(counts) == values.size - 2
