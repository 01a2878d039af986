"""A plain-text inventory of every output in a storage namespace: paths, counts, sizes."""

from __future__ import annotations

import json
from typing import cast

from ocr_core.checks import parquet_rows
from ocr_core.grid import get_grid
from ocr_core.schema import LEVELS
from ocr_core.storage import Storage

PMTILES = ("regions", "buildings", "building_centroids")


def _size(storage: Storage, uri: str) -> str:
    fs = storage.filesystem()
    path = storage.fs_path(uri)
    try:
        n = cast(int, fs.du(path) if fs.isdir(path) else fs.size(path))
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


def _line(storage: Storage, label: str, uri: str, detail: str = "") -> list[str]:
    """``label: uri (size, detail)`` if ``uri`` exists, else nothing."""
    if not storage.exists(uri):
        return []
    return [f"  {label}: {uri} ({_size(storage, uri)}{detail})"]


def _raster_lines(storage: Storage, grid_name: str) -> list[str]:
    from ocr_core import raster_store

    grid = get_grid(grid_name)
    out = [f"  risk raster (icechunk): {storage.icechunk_uri}"]
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
    return out


def _building_lines(storage: Storage) -> list[str]:
    out = [f"  region buildings (GeoParquet): {storage.region_geoparquet_dir}/"]
    total = 0
    for uri in storage.list_files(storage.region_geoparquet_dir, ".parquet"):
        rows = parquet_rows(storage, uri) or 0
        total += rows
        out.append(f"    {uri.rsplit('/', 1)[-1]:<16} {rows:>8} buildings")
    out.append(f"  {total} buildings in region files")
    consolidated = storage.consolidated_buildings_uri
    if storage.exists(consolidated):
        rows = parquet_rows(storage, consolidated)
        out += _line(storage, "consolidated buildings", consolidated, f", {rows} rows")
        out += _line(storage, "partitioned buildings", storage.partitioned_buildings_uri)
    return out


def _statistics_lines(storage: Storage) -> list[str]:
    out = []
    for level in LEVELS:
        uri = storage.published_summary_stats_uri(level)
        if storage.exists(uri):
            detail = f", {parquet_rows(storage, uri)} rows"
            out += _line(storage, f"summary stats {level}", uri, detail)
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
    return out


def _map_lines(storage: Storage) -> list[str]:
    out = []
    for name in PMTILES:
        uri = storage.pmtiles_uri(name)
        if storage.exists(uri):
            out += _line(storage, f"PMTiles {name}", uri, f", {_pmtiles_summary(storage, uri)}")
    pyramid = storage.current_dir(storage.pyramid_uri)
    if storage.exists(f"{pyramid}/zarr.json"):
        meta = json.loads(storage.read_bytes(f"{pyramid}/zarr.json"))
        levels = len(meta.get("attributes", {}).get("multiscales", {}).get("layout", []))
        out += _line(storage, "raster pyramid (zarr v3)", pyramid, f", {levels} levels")
    return out


def outputs_report(storage: Storage, grid_name: str) -> str:
    """Every output of the namespace that exists, one line each (after a blank line)."""
    return "\n".join(
        [
            "",
            "Outputs",
            *_raster_lines(storage, grid_name),
            *_building_lines(storage),
            *_statistics_lines(storage),
            *_map_lines(storage),
        ]
    )
