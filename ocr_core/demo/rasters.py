"""Writing the six demo rasters: icechunk repositories (zarr v3) committed in place, then read
back through the catalog so its conventions are exercised on them.

A rewrite commits into the existing repository (atomic: readers see the previous snapshot until
the commit), then expires older snapshots and garbage-collects their chunks so re-runs do not
grow the store.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any, cast

from ocr_core.catalog import DATASETS, InputCatalog, grid_offsets
from ocr_core.demo.hazard import albers_riley, hazard
from ocr_core.demo.masks import Where
from ocr_core.demo.scene import Scene, build_scene
from ocr_core.demo.stores import (
    albers_dataset,
    geographic_coords,
    riley_dataset,
    scott_dataset,
    wind_dataset,
)
from ocr_core.demo.wind import wind_shares
from ocr_core.demo.written import MaskCounts, WrittenRaster
from ocr_core.errors import InputDataError
from ocr_core.grid import DEMO, Grid
from ocr_core.input_crs import store_crs
from ocr_core.schema import RILEY_30M, RILEY_270M, SCENARIO_YEARS, SCOTT_2024, WIND_DISTRIBUTION

if TYPE_CHECKING:
    import xarray as xr

    from ocr_core.storage import Storage

RASTER_CHUNKS = (600, 450)  # one demo region per chunk, as CONUS 6000 × 4500
ALBERS_CHUNKS = (6000, 4500)  # the real 270 m stores' {y: 6000, x: 4500}


def write_hazard_inputs(
    catalog: InputCatalog, grid: Grid = DEMO, seed: int = 2026
) -> dict[str, WrittenRaster]:
    """Write the six hazard rasters (Scott, Riley 30 m and 270 m, wind) and check they read back.

    Each store carries the metadata conventions of the real one (``ocr_core.demo.stores``), so
    the catalog is exercised on them here.
    """
    scene = build_scene(grid, seed)
    where = Where.grid(scene, scene.lat, scene.lon)
    hz = hazard(scene, where)
    where.cache.clear()
    wind = wind_shares(scene, where, hz.land)
    coords = geographic_coords(scene)

    scott = write_raster(catalog, SCOTT_2024, scott_dataset(coords, hz, seed), scene)
    masks = MaskCounts(len(scene.towns), len(scene.lakes), len(scene.rocks))
    out = {SCOTT_2024: replace(scott, masks=masks)}
    for year in SCENARIO_YEARS:
        name = RILEY_30M[year]
        ds = riley_dataset(coords, hz.riley_bp[year], name, year, seed)
        out[name] = write_raster(catalog, name, ds, scene)
    del hz
    ds = wind_dataset(wind, coords, seed)
    out[WIND_DISTRIBUTION] = write_raster(catalog, WIND_DISTRIBUTION, ds, scene)
    del wind, ds
    for year, values in albers_riley(scene).items():
        name = RILEY_270M[year]
        out[name] = write_raster(catalog, name, albers_dataset(scene, values, year, seed), scene)
    return out


def write_raster(catalog: InputCatalog, name: str, ds: xr.Dataset, scene: Scene) -> WrittenRaster:
    """Commit ``ds`` as the whole content of the dataset's icechunk repository, then verify it."""
    import datetime

    uri = catalog.uri(name)
    repo = _repository(catalog.storage, uri)
    session = repo.writable_session("main")
    ds.to_zarr(session.store, zarr_format=3, consolidated=False, mode="w", encoding=_encoding(ds))
    session.commit(f"demo inputs: {name} (seed {scene.seed})")
    now = datetime.datetime.now(datetime.UTC)
    repo.expire_snapshots(older_than=now)
    repo.garbage_collect(now)
    return _read_back(catalog, name, ds, scene)


def _repository(storage: Storage, uri: str):
    """The dataset's icechunk repository, created (over any debris) if it holds none."""
    import icechunk

    ic_storage = storage.icechunk_storage(uri)
    if icechunk.Repository.exists(ic_storage):
        return icechunk.Repository.open(ic_storage)
    if storage.exists(uri):  # debris of a killed first write: it never held a commit
        storage.filesystem().rm(storage.fs_path(uri), recursive=True)
    return icechunk.Repository.create(ic_storage)


def _encoding(ds: xr.Dataset) -> dict[str, dict[str, Any]]:
    """Per variable: chunks (a demo region, the real 270 m chunk, or whole) and compressors."""
    from zarr.codecs import BloscCodec

    encoding: dict[str, dict[str, Any]] = {}
    for var, da in ds.data_vars.items():
        if da.dims[:2] == ("latitude", "longitude"):
            chunks = RASTER_CHUNKS + da.shape[2:]
        else:
            chunks = ALBERS_CHUNKS if da.dims == ("y", "x") else da.shape
        encoding[str(var)] = {
            "chunks": tuple(min(c, s) for c, s in zip(chunks, da.shape, strict=True)),
            # byte shuffle + zstd: ~40 % smaller than zarr's default zstd for these fields
            "compressors": (BloscCodec(cname="zstd", clevel=3, shuffle="shuffle"),),
        }
    return encoding


def _read_back(catalog: InputCatalog, name: str, ds: xr.Dataset, scene: Scene) -> WrittenRaster:
    """Open the store through the catalog: its CRS, dims and grid offset as the pipeline sees
    them; InputDataError if a 30 m store is not where the scene put it."""
    import numpy as np

    d, uri = DATASETS[name], catalog.uri(name)
    back = cast("xr.Dataset", catalog.open_zarr(name))
    crs, crs_found_in = store_crs(d, back, uri)
    offset = None
    if d.on_processing_grid:
        offset = grid_offsets(d, back, scene.grid, uri)
        if offset != (-scene.pad, -scene.pad):
            raise InputDataError(f"{name} at {uri} read back at grid offset {offset}")
    values = {var: ds[var].values for var in d.variables}
    storage = catalog.storage
    return WrittenRaster(
        uri=uri,
        crs=crs,
        crs_found_in=crs_found_in,
        variables=tuple(d.variables),
        dims={str(k): int(v) for k, v in back.sizes.items()},
        seed=int(scene.seed),
        grid_offset=offset,
        nan_fractions={v: round(float(np.isnan(a).mean()), 4) for v, a in values.items()},
        ranges={v: (float(np.nanmin(a)), float(np.nanmax(a))) for v, a in values.items()},
        bytes=cast(int, storage.filesystem().du(storage.fs_path(uri))),  # total=True: an int
    )
