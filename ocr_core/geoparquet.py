"""GeoParquet writing shared by every step: version 1.1, zstd, WKB, EPSG:4326 as PROJ states it.

Two entry points: ``write_geoparquet`` / ``to_geoparquet`` for a GeoDataFrame (with a covering
bbox column), and ``write_query_geoparquet`` for a DuckDB query streamed in batches (the
regional statistics and their downloads, which never hold every row in memory).
"""

from __future__ import annotations

import functools
import json
import threading
from pathlib import Path

from ocr_core.duck import record_batches
from ocr_core.storage import Storage

GEOPARQUET_OPTIONS = {
    "index": False,
    "compression": "zstd",
    "geometry_encoding": "WKB",
    "write_covering_bbox": True,
    "schema_version": "1.1.0",
}
GEOMETRY_TYPES = (  # by shapely type id; a LinearRing is a LineString in GeoParquet
    "Point",
    "LineString",
    "LineString",
    "Polygon",
    "MultiPoint",
    "MultiLineString",
    "MultiPolygon",
    "GeometryCollection",
)


def write_geoparquet(frame, storage: Storage, uri: str, **kwargs) -> int:
    """Write a GeoDataFrame to ``uri``, replacing it atomically; returns the file size."""
    with storage.atomic_local_file(uri, suffix=".parquet") as path:
        to_geoparquet(frame, path, **kwargs)
        return path.stat().st_size


def to_geoparquet(frame, path: Path, **kwargs) -> None:
    """Write a GeoDataFrame as GeoParquet with the project's options (``kwargs`` go to
    pyarrow's ``write_table``), its CRS as PROJ's database states it (``epsg_projjson``): the
    same data gives the same bytes whatever the writing thread parsed before.

    This is geopandas' ``to_parquet`` (its table conversion, then pyarrow's writer) with the
    CRS replaced in the 'geo' metadata and in the geometry field's geoarrow metadata before the
    one write.
    """
    import pyarrow.parquet as pq
    from geopandas.io.arrow import _geopandas_to_arrow  # pyright: ignore[reportAttributeAccessIssue]

    options = dict(GEOPARQUET_OPTIONS)
    compression = options.pop("compression")
    table = _geopandas_to_arrow(frame, **options)
    epsg = frame.crs.to_epsg() if frame.crs is not None else None
    if epsg is not None:
        crs = epsg_projjson(epsg)
        geo = json.loads(table.schema.metadata[b"geo"])
        column = geo["primary_column"]
        geo["columns"][column]["crs"] = crs
        schema = table.schema.with_metadata({**table.schema.metadata, b"geo": json.dumps(geo)})
        index = schema.get_field_index(column)
        field = schema.field(index)
        extension = json.loads((field.metadata or {}).get(b"ARROW:extension:metadata", b"{}"))
        if "crs" in extension:  # geoarrow's copy of the CRS on the field
            extension["crs"] = crs
            meta = {**field.metadata, b"ARROW:extension:metadata": json.dumps(extension)}
            schema = schema.set(index, field.with_metadata(meta))
        table = table.cast(schema)
    pq.write_table(table, path, compression=compression, **kwargs)


def write_query_geoparquet(
    con, sql: str, path: Path, extra_metadata: dict[str, str] | None = None
) -> int:
    """Stream a DuckDB query with a WKB ``geometry`` column to GeoParquet 1.1 (zstd) in
    EPSG:4326; returns its rows.

    Polygons are reoriented counter-clockwise on the way (RFC 7946's right-hand rule); the
    ``geo`` metadata (CRS, geometry types, bbox) is gathered from the batches and added to the
    footer with ``extra_metadata``.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq
    import shapely

    reader = record_batches(con, sql)
    index = reader.schema.get_field_index("geometry")
    schema = reader.schema.set(index, pa.field("geometry", pa.binary()))
    rows, types, bounds = 0, set(), []
    with pq.ParquetWriter(path, schema, compression="zstd") as writer:
        for batch in reader:
            geoms = shapely.orient_polygons(
                shapely.from_wkb(batch.column(index).to_numpy(zero_copy_only=False))
            )
            types.update(shapely.get_type_id(geoms).tolist())
            if len(geoms):
                bounds.append(shapely.total_bounds(geoms))
            columns = list(batch.columns)
            columns[index] = pa.array(shapely.to_wkb(geoms), pa.binary())
            writer.write_batch(pa.RecordBatch.from_arrays(columns, schema=schema))
            rows += batch.num_rows
        geo = json.dumps(_geo_metadata(types, bounds))
        writer.add_key_value_metadata({"geo": geo, **(extra_metadata or {})})
    return rows


def _geo_metadata(types: set[int], bounds: list) -> dict:
    """GeoParquet 1.1 ``geo`` metadata of a WKB geometry column in EPSG:4326."""
    import numpy as np

    column: dict = {
        "encoding": "WKB",
        "geometry_types": sorted({GEOMETRY_TYPES[t] for t in types if t >= 0}),
        "crs": epsg_projjson(4326),
    }
    if bounds:
        b = np.vstack(bounds)
        column["bbox"] = [*b[:, :2].min(axis=0).tolist(), *b[:, 2:].max(axis=0).tolist()]
    return {"version": "1.1.0", "primary_column": "geometry", "columns": {"geometry": column}}


@functools.cache
def epsg_projjson(code: int) -> dict:
    """PROJJSON of EPSG:``code`` from PROJ's database, read in a thread of its own.

    pyproj keeps one PROJ context (with its object cache) per thread, and parsing a file's
    PROJJSON can leave EPSG:4326 in that cache without its datum ensemble; a fresh thread's
    context reads the database, whatever this thread parsed before. Ensemble members carry
    no ids, as geopandas writes them.
    """
    from pyproj import CRS

    out: list[dict] = []
    worker = threading.Thread(target=lambda: out.append(CRS.from_epsg(code).to_json_dict()))
    worker.start()
    worker.join()
    for member in out[0].get("datum_ensemble", {}).get("members", []):
        member.pop("id", None)  # as geopandas writes it, for readers that reject member ids
    return out[0]
