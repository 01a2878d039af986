"""The demo generation the demo-data tests share: one full generation per session
(``demo_generation`` in conftest.py), and the helpers that read it."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq

from ocr_core import demo
from ocr_core.catalog import DATASETS, InputCatalog
from ocr_core.grid import DEMO
from ocr_core.storage import Storage

SEED = 2026
PAD = demo.domain_pad(DEMO)


def generate(root, seed, n_buildings=60_000) -> tuple[InputCatalog, dict[str, demo.Written]]:
    """Every demo input under ``root`` from ``seed``, and what each writer reported."""
    demo.build_scene.cache_clear()  # rebuild everything from `seed`, nothing from memory
    catalog = InputCatalog(Storage(str(root)))
    meta: dict[str, demo.Written] = {}
    meta |= demo.write_hazard_inputs(catalog, seed=seed)
    meta |= demo.write_census_polygons(catalog, seed=seed)
    meta |= demo.write_tagged_buildings(catalog, seed=seed, n_buildings=n_buildings)
    return catalog, meta


def digest(catalog) -> dict:
    """Content of every dataset: raster arrays and coordinates, parquet tables."""
    out = {}
    for name, d in DATASETS.items():
        if d.data_format == "zarr":
            ds = catalog.open_zarr(name)
            for var in (*ds.data_vars, *ds.coords):
                out[f"{name}/{var}"] = ds[var].values
        else:
            out[name] = pq.read_table(catalog.uri(name))
    return out


def same(a, b) -> bool:
    if isinstance(a, np.ndarray):
        if a.dtype.kind == "f":
            return a.shape == b.shape and np.array_equal(a, b, equal_nan=True)
        return a.shape == b.shape and bool((a == b).all())
    return a.equals(b)


def lonlat_index(lon, lat):
    """Row/col of the 30 m domain pixel holding each point."""
    row = np.floor((np.asarray(lat) - DEMO.lat0) / DEMO.pixel_size).astype(int) + PAD
    col = np.floor((np.asarray(lon) - DEMO.lon0) / DEMO.pixel_size).astype(int) + PAD
    return row, col
