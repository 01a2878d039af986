"""Inputs of the regional statistics tests and the independent computation they are checked
against.

Square census polygons in EPSG:4269 (one state densified so it is subdivided, one tract split
into two rows sharing a GEOID) and ~500 small square buildings on a dyadic grid, so footprint
centroids are exact and some lie exactly on shared edges, in three region files. Risk values
include every histogram boundary as float32 and the float32 values next to them.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from ocr_core.catalog import InputCatalog
from ocr_core.duck import DuckDBConfig
from ocr_core.geoparquet import write_geoparquet
from ocr_core.schema import RISK_SCORE_BOUNDARIES
from ocr_core.schema import SUMMARY_VARIABLES as RISK_VARIABLES
from ocr_core.storage import Storage

DUCK = DuckDBConfig(memory_limit="1GB", threads=2)
NAMES = {"counties": ["NAME"], "tracts": [], "states": ["STUSPS", "NAME"], "nation": ["NAME"]}
NAMES["blocks"] = []
ANALYSIS = {"blocks": "block", "counties": "counties", "tracts": "tracts", "states": "states"}
ANALYSIS["nation"] = "nation"
HALF = 2.0**-10  # half side of a building footprint (dyadic: exact centroids)


def box(x0, y0, x1, y1):
    return shapely.box(x0, y0, x1, y1)


def census_frames() -> dict[str, gpd.GeoDataFrame]:
    """Census polygons in EPSG:4269; CO is densified (> 256 vertices) to force subdivision."""
    co = shapely.segmentize(box(-100, 40, -98, 41), 0.005)
    assert shapely.get_num_coordinates(co) > 256
    rows = {
        "states": [
            {"GEOID": "08", "STUSPS": "CO", "NAME": "Colorado", "geometry": co},
            {"GEOID": "20", "STUSPS": "KS", "NAME": "Kansas", "geometry": box(-98, 40, -96, 41)},
            {"GEOID": "31", "STUSPS": "NE", "NAME": "Nebraska", "geometry": box(-100, 42, -96, 43)},
        ],
        "counties": [
            {"NAME": "Adams", "GEOID": "08001", "geometry": box(-100, 40, -99, 41)},
            {"NAME": "Arapahoe", "GEOID": "08005", "geometry": box(-99, 40, -98, 41)},
            {"NAME": "Allen", "GEOID": "20001", "geometry": box(-98, 40, -96, 41)},
            {"NAME": "Empty", "GEOID": "31001", "geometry": box(-100, 42, -99, 43)},
        ],
        "tracts": [
            {"GEOID": "08001000100", "geometry": box(-100, 40, -99.5, 41)},
            {"GEOID": "08001000200", "geometry": box(-99.5, 40, -99, 41)},
            {"GEOID": "08005000100", "geometry": box(-99, 40, -98, 41)},
            {"GEOID": "20001000100", "geometry": box(-98, 40, -97, 41)},
            {"GEOID": "20001000100", "geometry": box(-97, 40, -96, 41)},
        ],
        "blocks": [
            {"GEOID": "080010001001000", "geometry": box(-100, 40, -99.75, 41)},
            {"GEOID": "080010001001001", "geometry": box(-99.75, 40, -99.5, 40.6)},
            {"GEOID": "080050001001000", "geometry": box(-99, 40, -98.5, 41)},
            {"GEOID": "200010001001000", "geometry": box(-98, 40, -97, 40.5)},
        ],
        "nation": [
            {"GEOID": "US", "NAME": "United States", "geometry": box(-125, 24, -66, 50)},
        ],
    }
    return {k: gpd.GeoDataFrame(v, geometry="geometry", crs="EPSG:4269") for k, v in rows.items()}


def special_values() -> np.ndarray:
    """0, every boundary as float32 and its float32 neighbours (inside [0, 100])."""
    b = np.array(RISK_SCORE_BOUNDARIES, dtype=np.float32)
    near = np.concatenate([np.nextafter(b, np.float32(0)), np.nextafter(b, np.float32(200))])
    values = np.concatenate([[np.float32(0)], b, near[near <= np.float32(100)]])
    return values.astype(np.float32)


def building_frame(seed: int = 7) -> gpd.GeoDataFrame:
    """~500 buildings on x = -100 + i/32, y in {40.25, 40.5, 40.75, 41} (edges included)."""
    rng = np.random.default_rng(seed)
    xs = -100 + np.arange(1, 128) / 32
    ys = np.array([40.25, 40.5, 40.75, 41.0])
    cx, cy = (a.ravel() for a in np.meshgrid(xs, ys))
    n = cx.size
    special = special_values()
    rps11 = rng.uniform(0, 100, n).astype(np.float32)
    rps47 = rng.uniform(0, 5, n).astype(np.float32)
    rps11[: special.size * 3] = np.tile(special, 3)
    rps47[-special.size :] = special[::-1]
    rps47[::17] = 0
    data = {
        "rps_scott": rng.uniform(0, 10, n).astype(np.float32),
        "rps_2011": rps11,
        "rps_2047": rps47,
        "bp_2011": rng.uniform(0, 0.1, n).astype(np.float32),
        "bp_2047": rng.uniform(0, 0.1, n).astype(np.float32),
        "crps_scott": rng.uniform(0, 100, n).astype(np.float32),
        "bp_2011_riley": rng.uniform(0, 0.1, n).astype(np.float32),
        "bp_2047_riley": rng.uniform(0, 0.1, n).astype(np.float32),
        "GEOID": ["080010001001000"] * n,
        "state": ["CO"] * n,
        "county": ["Adams"] * n,
    }
    data["crps_scott"][:50] = np.float32(0)
    geoms = shapely.box(cx - HALF, cy - HALF, cx + HALF, cy + HALF)
    frame = gpd.GeoDataFrame(data, geometry=geoms, crs="EPSG:4326")
    c = shapely.get_coordinates(shapely.centroid(geoms))
    assert np.array_equal(c[:, 0], cx) and np.array_equal(c[:, 1], cy)
    return frame


def make_inputs(root: Path, blocks: bool = True, buildings=None) -> Storage:
    storage = Storage(str(root))
    catalog = InputCatalog(storage)
    for level, frame in census_frames().items():
        if level == "blocks" and not blocks:
            continue
        write_geoparquet(frame, storage, catalog.uri(f"us-census-{level}"))
    buildings = building_frame() if buildings is None else buildings
    for k in range(3):
        part = buildings.iloc[k::3].reset_index(drop=True)
        write_geoparquet(part, storage, storage.region_geoparquet_uri(f"y{k}_x0"))
    return storage


# --- the independent computation -------------------------------------------------------------
def expected_bin(values: np.ndarray) -> np.ndarray:
    """0 for exact zeros, else 1 + index of the first float32 boundary >= value."""
    b = np.array(RISK_SCORE_BOUNDARIES, dtype=np.float32)
    bins = np.searchsorted(b, values.astype(np.float32), side="left") + 1
    return np.where(values == 0, 0, bins)


def expected_level(buildings: gpd.GeoDataFrame, level: str) -> tuple[pd.DataFrame, dict]:
    """Statistics per GEOID with a pandas/geopandas spatial join; also polygon per GEOID."""
    polys = census_frames()[level].to_crs(4326)
    shapes = polys.dissolve(by="GEOID", aggfunc="first")
    pts = gpd.GeoDataFrame(
        buildings.drop(columns=["geometry", "GEOID"]),
        geometry=shapely.centroid(buildings.geometry.values),
        crs=4326,
    )
    if level == "nation":
        pts["GEOID"] = polys["GEOID"].iloc[0]
    else:
        right = cast(gpd.GeoDataFrame, polys[["GEOID", "geometry"]])
        joined = gpd.sjoin(pts, right, predicate="intersects")
        lowest = cast(pd.Series, joined.groupby(level=0)["GEOID"].min())
        pts = pts.loc[lowest.index].assign(GEOID=lowest)
    rows = []
    for geoid, g in pts.groupby("GEOID"):
        row = {"GEOID": geoid, "building_count": len(g)}
        for c in NAMES[level]:
            row[c] = shapes.loc[geoid, c]
        for v in RISK_VARIABLES:
            row[f"{v}_mean"] = float(np.mean(g[v].to_numpy(np.float64)))
        for v in RISK_VARIABLES:
            row[f"{v}_median"] = np.float32(np.median(g[v].to_numpy(np.float64)))
        for name, v in (("risk_score_2011_hist", "rps_2011"), ("risk_score_2047_hist", "rps_2047")):
            row[name] = np.bincount(expected_bin(g[v].to_numpy()), minlength=11).astype(float)
        rows.append(row)
    return pd.DataFrame(rows).set_index("GEOID"), shapes.geometry.to_dict()


def stat_names(level: str) -> list[str]:
    return [
        "GEOID",
        *NAMES[level],
        "building_count",
        *(f"{v}_mean" for v in RISK_VARIABLES),
        *(f"{v}_median" for v in RISK_VARIABLES),
        "risk_score_2011_hist",
        "risk_score_2047_hist",
    ]


def building_total(frame: pd.DataFrame) -> int:
    return int(frame["building_count"].to_numpy().sum())


def epsg(frame: gpd.GeoDataFrame) -> int | None:
    assert frame.crs is not None
    return frame.crs.to_epsg()


def analysis_columns(level: str) -> list[str]:
    return [*stat_names(level), "longitude", "latitude"]
