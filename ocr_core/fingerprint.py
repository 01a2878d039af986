"""The identity of what one region reads: a digest of its input windows and buildings.

A region's outputs depend only on the pixels and building rows its task reads, so the digest
covers exactly those — the wind fractions over the region grown by the smoothing radius, both
270 m Riley windows and their coordinates, the region's CRPS, RPS and 30 m Riley BP, and the
buildings tagged inside it. An edit elsewhere in a store leaves the digest unchanged; any edit
a region would see changes it. Dagster records it as the region's input data version.
"""

from __future__ import annotations

import hashlib

import numpy as np

from ocr_core.catalog import InputCatalog
from ocr_core.grid import get_grid

FINGERPRINT_VERSION = "1"  # bump when the digest covers other bytes


def _update(h, name: str, array) -> None:
    a = np.ascontiguousarray(array)
    h.update(f"{name}:{a.dtype.str}:{a.shape}".encode())
    h.update(a.tobytes())


def region_input_fingerprint(region_id: str, grid_name: str, catalog: InputCatalog) -> str:
    """Hex digest of every input value the region's two steps read."""
    from ocr_core.process_region import (
        load_pass_through,
        load_region_inputs,
        select_region_buildings,
    )

    grid = get_grid(grid_name)
    h = hashlib.blake2b(digest_size=16)
    h.update(f"ocr-region-inputs/{FINGERPRINT_VERSION}/{grid_name}/{region_id}".encode())
    inputs = load_region_inputs(catalog, grid, region_id, pass_through=False)
    for name in ("lat", "lon", "wind", "x270", "y270"):
        _update(h, name, getattr(inputs, name))
    for scenario, bp in sorted(inputs.bp270.items()):
        _update(h, f"bp270_{scenario}", bp)
    h.update(repr((inputs.region, inputs.wind_window, inputs.crs270)).encode())
    del inputs
    layers = load_pass_through(catalog, grid, region_id)
    _update(h, "crps", layers["crps"])
    _update(h, "rps", layers["rps"])
    for scenario, bp in sorted(layers["riley30"].items()):
        _update(h, f"riley30_{scenario}", bp)
    buildings, _ = select_region_buildings(catalog, grid, region_id)
    for column in ("GEOID", "state", "county"):
        h.update("\x1f".join(buildings[column].astype(str)).encode())
    h.update(b"".join(buildings.geometry.to_wkb()))
    return h.hexdigest()


def observed_fingerprint(region_id: str, grid_name: str, catalog: InputCatalog) -> str:
    """The digest, or ``unreadable:…`` when the inputs cannot be read (the region is then
    marked changed, and its run fails with the reason)."""
    from ocr_core.errors import InputDataError

    try:
        return region_input_fingerprint(region_id, grid_name, catalog)
    except (InputDataError, OSError) as exc:
        detail = hashlib.blake2b(str(exc).encode(), digest_size=8).hexdigest()
        return f"unreadable:{detail}"
