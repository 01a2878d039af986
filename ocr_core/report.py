"""A plain-text inventory of every output in a storage namespace: paths, counts, sizes."""

from __future__ import annotations

import json

from ocr_core.checks import parquet_rows
from ocr_core.grid import get_grid
from ocr_core.storage import Storage


def _size(storage: Storage, uri: str) -> str:
    fs = storage.filesystem()
    path = uri[len("s3://") :] if uri.startswith("s3://") else uri
    try:
        n = fs.du(path) if fs.isdir(path) else fs.size(path)
    except FileNotFoundError:
        return "missing"
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{n / 2**10:.0f} KB"


def _pmtiles_summary(storage: Storage, uri: str) -> str:
    from pmtiles.reader import MemorySource, Reader

    reader = Reader(MemorySource(storage.read_bytes(uri)))
    header, meta = reader.header(), reader.metadata()
    layers = meta.get("tilestats", {}).get("layers", [])
    counts = ", ".join(f"{lyr['layer']} {lyr.get('count', '?')}" for lyr in layers)
    return f"z{header['min_zoom']}-{header['max_zoom']}, features: {counts}"


def outputs_report(storage: Storage, grid_name: str) -> str:
    from ocr_core import raster_store

    grid = get_grid(grid_name)
    out = ["", "Outputs", f"  risk raster (icechunk): {storage.icechunk_uri}"]
    try:
        commits = raster_store.committed_regions(storage)
    except raster_store.RasterStoreError:
        commits = {}
    out += [
        f"    commit {commits[r]}  wrote region_id ({r})"
        for r in grid.valid_region_ids
        if r in commits
    ]
    out.append(f"  {len(commits)} of {len(grid.valid_region_ids)} valid regions committed")
    out.append(f"  region buildings (GeoParquet): {storage.region_geoparquet_dir}/")
    total = 0
    for uri in storage.list_files(storage.region_geoparquet_dir, ".parquet"):
        rows = parquet_rows(storage, uri)
        total += rows
        out.append(f"    {uri.rsplit('/', 1)[-1]:<16} {rows:>8} buildings")
    out.append(f"  {total} buildings in region files")

    def line(label: str, uri: str, detail: str = "") -> None:
        if storage.exists(uri):
            out.append(f"  {label}: {uri} ({_size(storage, uri)}{detail})")

    if storage.exists(storage.consolidated_buildings_uri):
        rows = parquet_rows(storage, storage.consolidated_buildings_uri)
        line("consolidated buildings", storage.consolidated_buildings_uri, f", {rows} rows")
        line("partitioned buildings", storage.partitioned_buildings_uri)
    for level in ("counties", "tracts", "states", "nation", "blocks"):
        uri = storage.published_summary_stats_uri(level)
        if storage.exists(uri):
            line(f"summary stats {level}", uri, f", {parquet_rows(storage, uri)} rows")
    analysis = storage.current_dir(storage.region_analysis_dir)
    if storage.exists(analysis):
        files = [
            f
            for f in storage.list_files(analysis, recursive=True)
            if f.rsplit("/", 1)[-1].startswith("stats.")
        ]
        out.append(
            f"  analysis files: {storage.region_analysis_dir}/ ({len(files)} files: "
            "stats.csv, stats.geojson, stats.parquet per geography)"
        )
    for name in ("regions", "buildings", "building_centroids"):
        uri = storage.pmtiles_uri(name)
        if storage.exists(uri):
            line(f"PMTiles {name}", uri, f", {_pmtiles_summary(storage, uri)}")
    pyramid = storage.current_dir(storage.pyramid_uri)
    if storage.exists(f"{pyramid}/zarr.json"):
        meta = json.loads(storage.read_bytes(f"{pyramid}/zarr.json"))
        levels = len(meta.get("attributes", {}).get("multiscales", {}).get("layout", []))
        line("raster pyramid (zarr v3)", pyramid, f", {levels} levels")
    return "\n".join(out)
