"""Multiscale Zarr v3 pyramid of the risk raster for the web map.

Level 0 is the native EPSG:4326 grid read from the icechunk risk repository (read-only
session); level i+1 is the 2×2 mean of level i (odd trailing row/column trimmed, NaN skipped,
an all-NaN block stays NaN). Levels are added while the coarsest level's longer side is still
at least ``min_side`` pixels: 12 levels for CONUS (L11 is 47 × 101), the reference's count.
Each level is computed from the level already written, one level at a time, so memory is
bounded by Dask chunks, never by the grid.

Chunks follow the reference (topozarr) rule for 0.5 MiB float32 chunks: for a dimension of
length d, d if d ≤ 362, else ceil(d / ceil(d / 362)), so chunks are ≤ 362 and even-sized
(the reference's 128 minimum never binds at 362). No sharding, as in the reference.

Root attributes follow the zarr-conventions ``multiscales`` and ``geo-proj`` conventions;
the root carries consolidated metadata.

Write, audit, publish (``ocr_core.publish``): the pyramid is built in the stage (locally) or
under its next version prefix (S3), checked there (``check_pyramid``: every level, values in
range, the coarsest level not empty), and only then swapped in or pointed to.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

from ocr_core.checks import Audit, audit
from ocr_core.publish import stage
from ocr_core.storage import Storage

logger = logging.getLogger(__name__)

DEFAULT_VARIABLES = ("rps_2011", "rps_2047")
CHUNK_SIDE = 362  # floor(sqrt(0.5 MiB / 4 B)): 0.5 MiB float32 chunks
CRS = "EPSG:4326"
Y_DIM, X_DIM = "latitude", "longitude"

MULTISCALES_CONVENTION = {
    "uuid": "d35379db-88df-4056-af3a-620245f8e347",
    "name": "multiscales",
    "schema_url": "https://raw.githubusercontent.com/zarr-conventions/multiscales/refs/tags/v1/schema.json",
    "spec_url": "https://github.com/zarr-conventions/multiscales/blob/v1/README.md",
    "description": "Multiscale layout of zarr datasets",
}
PROJ_CONVENTION = {
    "uuid": "f17cb550-5864-4468-aeb7-f3180cfb622f",
    "name": "proj:",
    "schema_url": "https://raw.githubusercontent.com/zarr-conventions/geo-proj/refs/tags/v1/schema.json",
    "spec_url": "https://github.com/zarr-conventions/geo-proj/blob/v1/README.md",
    "description": "Coordinate reference system information for geospatial data",
}


class PyramidError(RuntimeError):
    """The pyramid cannot be built (missing variables, no repository, bad parameters)."""


@dataclass(frozen=True)
class PyramidResult:
    """A published pyramid: its URI, variables, each level's shape and chunks, the seconds it
    took and its checks."""

    path: str
    variables: list[str]
    shapes: list[tuple[int, int]]
    chunks: list[tuple[int, int]]
    seconds: float
    checks: Audit

    @property
    def levels(self) -> int:
        return len(self.shapes)

    def summary(self) -> dict:
        """Everything but the checks, as JSON-able values."""
        return {
            "path": self.path,
            "variables": self.variables,
            "levels": self.levels,
            "shapes": [list(s) for s in self.shapes],
            "chunks": [list(c) for c in self.chunks],
            "seconds": self.seconds,
        }


def level_shapes(shape: tuple[int, int], min_side: int = 100) -> list[tuple[int, int]]:
    """(lat, lon) shape of every level: halve (floor) while the longer side stays ≥ min_side."""
    if min(shape) < 1:
        raise PyramidError(f"cannot build a pyramid of an empty grid {shape}")
    shapes = [(shape[0], shape[1])]
    while True:
        nxt = (shapes[-1][0] // 2, shapes[-1][1] // 2)
        if min(nxt) < 1 or max(nxt) < min_side:
            return shapes
        shapes.append(nxt)


def chunk_side(d: int, side: int = CHUNK_SIDE) -> int:
    """The reference chunk length for a dimension of length d (≤ side, near-equal chunks)."""
    return d if d <= side else math.ceil(d / math.ceil(d / side))


def level_chunks(shape: tuple[int, int], side: int = CHUNK_SIDE) -> tuple[int, int]:
    return chunk_side(shape[0], side), chunk_side(shape[1], side)


def multiscales_attrs(n_levels: int) -> dict:
    """Root attributes: conventions, the level layout and the CRS."""
    layout = []
    for i in range(n_levels):
        entry = {
            "asset": str(i),
            "transform": {
                "scale": [float(2**i), float(2**i)],
                "translation": [0.5, 0.5] if i else [0.0, 0.0],
            },
        }
        if i:
            entry |= {"derived_from": str(i - 1), "resampling_method": "mean"}
        layout.append(entry)
    return {
        "zarr_conventions": [MULTISCALES_CONVENTION, PROJ_CONVENTION],
        "multiscales": {"layout": layout, "resampling_method": "mean"},
        "proj:code": CRS,
    }


# --- stores --------------------------------------------------------------------------------------
def _store(uri: str, storage: Storage):
    """A writable zarr store for a local folder or an s3:// prefix (URL parsed by fsspec)."""
    import zarr.storage

    if uri.startswith("s3://"):
        return zarr.storage.FsspecStore.from_url(uri, storage_options=storage.s3_options())
    return zarr.storage.LocalStore(uri)


# --- build ---------------------------------------------------------------------------------------
def _open_source(storage: Storage, variables: Sequence[str]):
    import xarray as xr

    from ocr_core.raster_store import open_repository

    repo = open_repository(storage)
    ds = xr.open_zarr(repo.readonly_session("main").store, consolidated=False)
    missing = [v for v in variables if v not in ds.data_vars]
    if missing:
        raise PyramidError(
            f"variable(s) {', '.join(missing)} are not in {storage.icechunk_uri} "
            f"(it has {', '.join(sorted(map(str, ds.data_vars)))})"
        )
    return ds[list(variables)]


def _prepare(ds, chunks: tuple[int, int], variables: Sequence[str]):
    """float32 variables on ``chunks``, source encodings dropped, per-level zarr encoding."""
    import numpy as np

    ds = ds.chunk({Y_DIM: chunks[0], X_DIM: chunks[1]})
    for name in variables:
        ds[name] = ds[name].astype("float32")
    for name in ds.variables:
        ds[name].encoding = {}
    encoding = {name: {"chunks": chunks, "fill_value": np.float32("nan")} for name in variables}
    return ds, encoding


def _coarsened(store, level: int, shape: tuple[int, int], chunks: tuple[int, int]):
    """Level ``level`` as the 2 × 2 mean of the level below it, already in ``store``; read in
    blocks of twice this level's chunks, so each coarsened block is exactly one output chunk."""
    import xarray as xr

    prev = xr.open_zarr(
        store,
        group=str(level - 1),
        consolidated=False,
        chunks={Y_DIM: 2 * chunks[0], X_DIM: 2 * chunks[1]},  # pyright: ignore[reportArgumentType]
    )
    prev = prev.isel({Y_DIM: slice(0, 2 * shape[0]), X_DIM: slice(0, 2 * shape[1])})
    coarsen = prev.coarsen({Y_DIM: 2, X_DIM: 2}, boundary="trim")
    return coarsen.mean(keep_attrs=True)  # pyright: ignore[reportAttributeAccessIssue]


def _write_levels(store, src, shapes, chunks, variables: list[str], log: logging.Logger) -> None:
    """Write every level into ``store``, each from the one written before it."""
    for level, (shape, level_chunk) in enumerate(zip(shapes, chunks, strict=True)):
        ds = src if level == 0 else _coarsened(store, level, shape, level_chunk)
        ds, encoding = _prepare(ds, level_chunk, variables)
        ds.attrs = {}
        ds.to_zarr(
            store,
            group=str(level),
            mode="w",
            zarr_format=3,
            consolidated=False,
            encoding=encoding,
            write_empty_chunks=False,
        )
        log.info("pyramid level %d: %d × %d px, chunks %s", level, *shape, level_chunk)


def write_pyramid(
    storage: Storage,
    variables: Sequence[str] = DEFAULT_VARIABLES,
    min_side: int = 100,
    chunk_target: int = CHUNK_SIDE,
    log: logging.Logger | None = None,
) -> PyramidResult:
    """Build the pyramid at ``storage.pyramid_uri`` from the risk repository; see module doc.

    ``chunk_target`` is the longest chunk side (the reference's 362; tests use small values).
    """
    import zarr

    started = time.monotonic()
    variables = list(variables)
    if not variables:
        raise PyramidError("no variables to write")
    src = _open_source(storage, variables)
    shapes = level_shapes((src.sizes[Y_DIM], src.sizes[X_DIM]), min_side)
    chunks = [level_chunks(s, chunk_target) for s in shapes]
    uri = storage.pyramid_uri
    with stage(storage) as st, warnings.catch_warnings():
        location = st.folder_uri(uri)
        warnings.filterwarnings("ignore", message=".*Mean of empty slice.*")
        warnings.filterwarnings("ignore", message=".*separate the stored chunks.*")
        warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
        store = _store(location, storage)
        zarr.create_group(store, zarr_format=3, overwrite=True, attributes=multiscales_attrs(0))
        _write_levels(store, src, shapes, chunks, variables, log or logger)
        root = zarr.open_group(store, mode="r+", zarr_format=3)
        root.attrs.put(multiscales_attrs(len(shapes)))
        zarr.consolidate_metadata(store)
        checks = audit({"pyramid_complete": check_pyramid(store, shapes, variables)})
        st.publish()
    seconds = round(time.monotonic() - started, 3)
    return PyramidResult(uri, variables, shapes, chunks, seconds, checks)


def check_pyramid(store, shapes: Sequence[tuple[int, int]], variables: Sequence[str]):
    """Every level present with its shape; the two coarsest levels' values in [0, 100] and
    not all NaN (they summarize every finer level)."""
    import numpy as np
    import zarr

    root = zarr.open_group(store, mode="r", zarr_format=3)

    def array(key: str) -> zarr.Array | None:
        node = root.get(key)
        return node if isinstance(node, zarr.Array) else None

    details: dict = {"levels_expected": len(shapes)}
    passed = True
    for level, shape in enumerate(shapes):
        for var in variables:
            arr = array(f"{level}/{var}")
            found = tuple(arr.shape) if arr is not None else None
            if found != tuple(shape):
                details[f"level_{level}_{var}_shape"] = found
                passed = False
    for level in range(max(0, len(shapes) - 2), len(shapes)):
        for var in variables:
            arr = array(f"{level}/{var}")
            if arr is None:
                continue
            values = np.asarray(arr[:])
            finite = values[np.isfinite(values)]
            vmin = float(finite.min()) if finite.size else None
            vmax = float(finite.max()) if finite.size else None
            ok = vmin is not None and vmax is not None and vmin >= 0 and vmax <= 100
            details[f"level_{level}_{var}"] = {"min": vmin, "max": vmax, "finite": int(finite.size)}
            passed &= ok
    return passed, details
