"""Writing and reading the demo's GeoParquet files through the catalog."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ocr_core.catalog import DATASETS, InputCatalog
from ocr_core.demo.written import WrittenTable
from ocr_core.errors import InputDataError
from ocr_core.geoparquet import write_geoparquet

if TYPE_CHECKING:
    import geopandas as gpd
    import pandas as pd


def write_table(catalog: InputCatalog, name: str, gdf: gpd.GeoDataFrame, **kwargs) -> WrittenTable:
    """GeoParquet 1.1 (zstd, WKB, covering bbox), replacing the file whole (``kwargs`` go to
    pyarrow's writer)."""
    uri = catalog.uri(name)
    size = write_geoparquet(gdf, catalog.storage, uri, **kwargs)
    west, south, east, north = (round(float(v), 6) for v in gdf.total_bounds)
    return WrittenTable(
        uri=uri,
        crs=DATASETS[name].crs,
        rows=len(gdf),
        columns=(*(str(c) for c in gdf.columns if c != "geometry"), "bbox", "geometry"),
        bounds=(west, south, east, north),
        bytes=size,
    )


def read_geo_table(catalog: InputCatalog, name: str, columns: list[str]) -> gpd.GeoDataFrame:
    """Columns of a census GeoParquet file the catalog holds (``_census_path``)."""
    import geopandas as gpd

    storage = catalog.storage
    fs = storage.filesystem() if storage.is_s3 else None
    return gpd.read_parquet(_census_path(catalog, name), columns=columns, filesystem=fs)


def read_table(catalog: InputCatalog, name: str, columns: list[str]) -> pd.DataFrame:
    """Non-geometry columns of a census GeoParquet file the catalog holds, as a DataFrame."""
    import pyarrow.parquet as pq

    storage = catalog.storage
    fs = storage.filesystem() if storage.is_s3 else None
    return pq.read_table(_census_path(catalog, name), columns=columns, filesystem=fs).to_pandas()


def _census_path(catalog: InputCatalog, name: str) -> str:
    """The file system path of a census file; InputDataError saying to write the census
    polygons first if it is missing or unusable."""
    try:
        uri = catalog.geoparquet_uri(name)
    except InputDataError as exc:
        raise InputDataError(
            f"{exc} The tagged buildings need the census polygons: run write_census_polygons "
            "(the demo census asset) first."
        ) from None
    return catalog.storage.fs_path(uri)
