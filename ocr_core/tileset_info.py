"""What a PMTiles file holds (zooms, bounds, layers, feature counts), and the check of a
freshly built tileset before it is published."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TypedDict


class PMTilesInfo(TypedDict):
    """Header and metadata figures of a .pmtiles file (the tile assets' metadata)."""

    bytes: int
    min_zoom: int
    max_zoom: int
    bounds: list[float]  # [west, south, east, north]
    tiles: int  # addressed tiles
    layers: list[str]
    layer_features: dict[str, int | None]  # tippecanoe's tilestats count per layer
    features: int


def pmtiles_info(path: str | os.PathLike) -> PMTilesInfo:
    """Zooms, bounds, layers and feature counts of a local .pmtiles (header and metadata)."""
    from pmtiles.reader import MmapSource, Reader

    with open(path, "rb") as fh:
        reader = Reader(MmapSource(fh))
        header = reader.header()
        metadata = reader.metadata()
    stats = (metadata.get("tilestats") or {}).get("layers") or []
    layer_features = {layer["layer"]: layer.get("count") for layer in stats}
    return {
        "bytes": os.path.getsize(path),
        "min_zoom": header["min_zoom"],
        "max_zoom": header["max_zoom"],
        "bounds": [
            header["min_lon_e7"] / 1e7,
            header["min_lat_e7"] / 1e7,
            header["max_lon_e7"] / 1e7,
            header["max_lat_e7"] / 1e7,
        ],
        "tiles": header["addressed_tiles_count"],
        "layers": [layer["id"] for layer in metadata.get("vector_layers", [])],
        "layer_features": layer_features,
        "features": sum(c for c in layer_features.values() if c is not None),
    }


def pmtiles_complete(
    info: PMTilesInfo, layers: Sequence[str], bytes_in: int
) -> tuple[bool, dict[str, object]]:
    """A readable tileset with the expected layers, tiles, and features when its feature files
    (``bytes_in`` bytes of GeoJSON lines) held any."""
    details: dict[str, object] = {
        "layers": info["layers"],
        "layers_expected": list(layers),
        "tiles": info["tiles"],
        "features": info["features"],
        "feature_bytes_in": bytes_in,
        "min_zoom": info["min_zoom"],
        "max_zoom": info["max_zoom"],
    }
    passed = (
        sorted(info["layers"]) == sorted(layers)
        and info["tiles"] > 0
        and (info["features"] > 0 or bytes_in == 0)
        and info["min_zoom"] <= info["max_zoom"]
    )
    return passed, details
