"""GeoParquet writing shared by every step: version 1.1, zstd, WKB, covering bbox."""

from __future__ import annotations

import functools
import json
import threading
from pathlib import Path

from ocr_core.storage import Storage

GEOPARQUET_OPTIONS = {
    "index": False,
    "compression": "zstd",
    "geometry_encoding": "WKB",
    "write_covering_bbox": True,
    "schema_version": "1.1.0",
}


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
    from geopandas.io.arrow import _geopandas_to_arrow

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
