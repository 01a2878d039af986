"""The risk raster: one icechunk repository on the grid, one commit per region.

The template (8 float32 variables, NaN fill, one zarr chunk per region) is committed once;
each region then writes its chunk and commits ``wrote region_id (<id>)``. Concurrent regions
touch different chunks, so icechunk rebases their commits; a real conflict is retried a
bounded number of times, logged, and then raised — never an endless loop.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import random
import re
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ocr_core.grid import Grid
from ocr_core.metadata import raster_metadata
from ocr_core.schema import OUTPUT_VARIABLES, VARIABLE
from ocr_core.storage import Storage

TEMPLATE_MESSAGE = "initialize store with template"
REGION_MESSAGE = "wrote region_id ({})"
REGION_MESSAGE_RE = re.compile(r"^wrote region_id \((.*)\)$")
MAX_COMMIT_ATTEMPTS = 5


log = logging.getLogger(__name__)


class RasterStoreError(RuntimeError):
    """The risk repository is unusable (wrong grid, region not written, commits keep failing)."""


@contextlib.contextmanager
def _commit_lock(storage: Storage) -> Iterator[None]:
    """Serialize commits on a local repository (icechunk's local storage is not safe for
    concurrent commits); S3 commits are safe on their own."""
    if storage.is_s3:
        yield
        return
    lock_path = Path(storage.icechunk_uri + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def open_repository(storage: Storage, create: bool = False):
    import icechunk

    st = storage.icechunk_storage()
    if icechunk.Repository.exists(st):
        return icechunk.Repository.open(st)
    if not create:
        raise RasterStoreError(
            f"no risk repository at {storage.icechunk_uri}: materialize region_risk first"
        )
    return icechunk.Repository.open_or_create(st)


def _write_template(session, grid: Grid, version: str | None) -> None:
    import zarr

    root = zarr.open_group(session.store, mode="w", zarr_format=3)
    root.attrs.update(
        {
            **raster_metadata(version),
            "ocr:grid": grid.name,
            "ocr:pixel_size": grid.pixel_size,
            "crs": "EPSG:4326",
        }
    )
    for name, values in (
        ("latitude", grid.lat_centers(0, grid.n_lat)),
        ("longitude", grid.lon_centers(0, grid.n_lon)),
    ):
        arr = root.create_array(
            name,
            shape=values.shape,
            dtype="float64",
            chunks=values.shape,
            dimension_names=[name],
            fill_value=np.nan,
        )
        arr[:] = values
        arr.attrs.update({"units": f"degrees_{'north' if name == 'latitude' else 'east'}"})
    for var in OUTPUT_VARIABLES:
        arr = root.create_array(
            var,
            shape=(grid.n_lat, grid.n_lon),
            dtype="float32",
            chunks=(grid.chunk_lat, grid.chunk_lon),
            dimension_names=["latitude", "longitude"],
            fill_value=np.nan,
        )
        arr.attrs.update({"units": VARIABLE[var].units})


def _array(root, name: str):
    """The array ``name`` of a zarr group (the template's variables are arrays)."""
    import zarr

    node = root[name]
    if not isinstance(node, zarr.Array):
        raise RasterStoreError(f"{name} in the risk repository is not an array")
    return node


def ensure_repository(storage: Storage, grid: Grid):
    """Open the repository, creating it with the grid's template the first time."""
    import icechunk
    import zarr
    from zarr.errors import GroupNotFoundError

    with _commit_lock(storage):
        repo = open_repository(storage, create=True)
        for _ in range(MAX_COMMIT_ATTEMPTS):
            try:
                root = zarr.open_group(repo.readonly_session("main").store, mode="r")
            except GroupNotFoundError:
                root = None  # a new, empty repository
            if root is not None and "rps_2011" in root:
                found = root.attrs.get("ocr:grid")
                if found != grid.name:
                    raise RasterStoreError(
                        f"risk repository {storage.icechunk_uri} was made for the {found!r} grid, "
                        f"not {grid.name!r}: use another OCR_STORAGE_ROOT or OCR_ENVIRONMENT"
                    )
                return repo
            session = repo.writable_session("main")
            _write_template(session, grid, storage.version)
            try:
                session.commit(TEMPLATE_MESSAGE)
            except icechunk.ConflictError:
                continue  # another writer created the template first; check it
        raise RasterStoreError(f"could not initialize {storage.icechunk_uri}")


def write_region(
    storage: Storage,
    grid: Grid,
    region_id: str,
    arrays: dict[str, np.ndarray],
    logger: logging.Logger | None = None,
) -> tuple[str, dict]:
    """Write one region's arrays, check them and commit; returns the snapshot id and the
    checks' figures.

    The arrays are written in an uncommitted session (readers of ``main`` don't see it), read
    back from it and checked (``checks.array_value_ranges``); only then is it committed.
    A failed check raises ``checks.AuditError`` and the session is dropped.
    """
    import icechunk
    import zarr

    from ocr_core.checks import array_value_ranges, audit

    logger = logger or log
    r0, r1, c0, c1 = grid.pixel_window(region_id)
    for var in OUTPUT_VARIABLES:
        if arrays[var].shape != (r1 - r0, c1 - c0):
            raise ValueError(f"{var} has shape {arrays[var].shape}, region is {(r1 - r0, c1 - c0)}")
    repo = ensure_repository(storage, grid)
    message = REGION_MESSAGE.format(region_id)
    for attempt in range(1, MAX_COMMIT_ATTEMPTS + 1):
        with _commit_lock(storage):
            session = repo.writable_session("main")
            root = zarr.open_group(session.store, mode="r+")
            for var in OUTPUT_VARIABLES:
                _array(root, var)[r0:r1, c0:c1] = arrays[var]
            staged = {var: _array(root, var)[r0:r1, c0:c1] for var in OUTPUT_VARIABLES}
            audited = audit({"region_value_ranges": array_value_ranges(staged)})
            try:
                snapshot = session.commit(message, rebase_with=icechunk.ConflictDetector())
                return snapshot, audited
            except (icechunk.ConflictError, icechunk.RebaseFailedError) as exc:
                if attempt == MAX_COMMIT_ATTEMPTS:
                    raise RasterStoreError(
                        f"region {region_id}: commit still conflicting after {attempt} attempts "
                        f"({exc}); another run is writing the same region"
                    ) from exc
                wait = random.uniform(0.5, 2.0) * attempt
                logger.warning(
                    "region %s: commit conflict (attempt %d/%d): %s; retrying in %.1f s",
                    region_id,
                    attempt,
                    MAX_COMMIT_ATTEMPTS,
                    exc,
                    wait,
                )
        time.sleep(wait)
    raise AssertionError("unreachable")


def committed_regions(storage: Storage) -> dict[str, str]:
    """Region id -> newest snapshot id that wrote it, from the commit history of ``main``."""
    repo = open_repository(storage)
    found: dict[str, str] = {}
    for snap in repo.ancestry(branch="main"):
        m = REGION_MESSAGE_RE.match(snap.message)
        if m:
            for rid in m.group(1).split(","):
                found.setdefault(rid.strip(), snap.id)
    return found


def read_region(storage: Storage, grid: Grid, region_id: str) -> dict[str, np.ndarray]:
    """The committed arrays of one region; error if region_risk never wrote it."""
    import zarr

    if region_id not in committed_regions(storage):
        raise RasterStoreError(
            f"region {region_id} has no commit in {storage.icechunk_uri}: materialize "
            f"region_risk for partition {region_id} first"
        )
    repo = open_repository(storage)
    root = zarr.open_group(repo.readonly_session("main").store, mode="r")
    r0, r1, c0, c1 = grid.pixel_window(region_id)
    return {var: np.asarray(_array(root, var)[r0:r1, c0:c1]) for var in OUTPUT_VARIABLES}
