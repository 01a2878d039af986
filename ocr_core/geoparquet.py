"""GeoParquet writing shared by every step: version 1.1, zstd, WKB, covering bbox."""

from __future__ import annotations

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
        frame.to_parquet(path, **GEOPARQUET_OPTIONS, **kwargs)
        return path.stat().st_size
