"""Risk pyramid: level count and chunk rule, 2×2 NaN-skipping means, conventions metadata,
consolidated root, atomic rewrite; locally and on a real S3 API (moto)."""

from __future__ import annotations

import itertools
import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr

from ocr_core import pyramid, raster_store
from ocr_core.grid import CONUS, DEMO, Grid
from ocr_core.schema import OUTPUT_VARIABLES
from ocr_core.storage import Storage

# 45 × 70 px in 2 × 2 regions; the buffer only has to satisfy the grid's kernel-reach check.
TINY = Grid(
    name="tiny",
    pixel_size=0.01,
    lon0=-119.0,
    lat0=34.0,
    n_lat=45,
    n_lon=70,
    chunk_lat=24,
    chunk_lon=40,
    buffer_deg=1.5,
    valid_ids_file=DEMO.valid_ids_file,
)
WRITTEN = ("y0_x0", "y0_x1", "y1_x0")  # y1_x1 is never written: all NaN
MIN_SIDE, CHUNK = 5, 16  # 70 → 35 → 17 → 8: 4 levels, several chunks per level


def _fill_repository(storage: Storage) -> dict[str, np.ndarray]:
    """Write three regions of random values with NaN holes; return the full source arrays."""
    rng = np.random.default_rng(3)
    full = {v: np.full((TINY.n_lat, TINY.n_lon), np.nan, dtype="float32") for v in OUTPUT_VARIABLES}
    for rid in WRITTEN:
        r0, r1, c0, c1 = TINY.pixel_window(rid)
        arrays = {}
        for var in OUTPUT_VARIABLES:
            top = 1 if var.startswith("bp_") else 10  # inside the schema ranges
            a = rng.uniform(0, top, (r1 - r0, c1 - c0)).astype("float32")
            a[rng.random(a.shape) < 0.2] = np.nan
            arrays[var] = a
            full[var][r0:r1, c0:c1] = a
        raster_store.write_region(storage, TINY, rid, arrays)
    return full


@pytest.fixture(scope="module")
def local_repo(tmp_path_factory):
    storage = Storage(root=str(tmp_path_factory.mktemp("pyramid") / "root"))
    return storage, _fill_repository(storage)


def _levels(uri: str, n: int, storage_options=None) -> list[xr.Dataset]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [
            xr.open_zarr(uri, group=str(i), storage_options=storage_options).load()
            for i in range(n)
        ]


def _block_means(a: np.ndarray) -> np.ndarray:
    h, w = a.shape[0] // 2, a.shape[1] // 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(a[: 2 * h, : 2 * w].reshape(h, 2, w, 2), axis=(1, 3))


def _check_levels(levels: list[xr.Dataset], source: dict, variables) -> None:
    for var in variables:
        np.testing.assert_array_equal(levels[0][var].values, source[var])
    for fine, coarse in itertools.pairwise(levels):
        assert coarse.sizes["latitude"] == fine.sizes["latitude"] // 2
        assert coarse.sizes["longitude"] == fine.sizes["longitude"] // 2
        for var in variables:
            assert coarse[var].dtype == np.float32
            np.testing.assert_allclose(
                coarse[var].values, _block_means(fine[var].values), rtol=1e-6, equal_nan=True
            )
        for dim in ("latitude", "longitude"):
            v = fine[dim].values
            np.testing.assert_allclose(coarse[dim], v[: len(v) // 2 * 2].reshape(-1, 2).mean(1))
        assert np.all(np.diff(coarse.latitude) > 0)


# --- pure rules ----------------------------------------------------------------------------------
def test_level_count_and_chunks_match_the_reference():
    shapes = pyramid.level_shapes((CONUS.n_lat, CONUS.n_lon), min_side=100)
    assert len(shapes) == 12
    assert shapes[0] == (97_579, 208_881) and shapes[-1] == (47, 101)
    assert [pyramid.level_chunks(s) for s in shapes] == [
        (362, 362), (362, 362), (359, 361), (359, 358), (359, 353), (339, 344),
        (305, 327), (254, 327), (191, 272), (190, 204), (95, 203), (47, 101),
    ]  # fmt: skip
    assert pyramid.level_shapes((DEMO.n_lat, DEMO.n_lon))[-1] == (150, 112)
    assert pyramid.level_shapes((50, 40), min_side=100) == [(50, 40)]


def test_multiscales_attributes():
    attrs = pyramid.multiscales_attrs(3)
    assert [c["name"] for c in attrs["zarr_conventions"]] == ["multiscales", "proj:"]
    assert attrs["proj:code"] == "EPSG:4326"
    assert attrs["multiscales"]["resampling_method"] == "mean"
    layout = attrs["multiscales"]["layout"]
    assert layout[0] == {
        "asset": "0",
        "transform": {"scale": [1.0, 1.0], "translation": [0.0, 0.0]},
    }
    assert layout[2] == {
        "asset": "2",
        "transform": {"scale": [4.0, 4.0], "translation": [0.5, 0.5]},
        "derived_from": "1",
        "resampling_method": "mean",
    }


# --- local -------------------------------------------------------------------------------------
def test_pyramid_levels_means_and_metadata(local_repo):
    storage, source = local_repo
    result = pyramid.write_pyramid(storage, min_side=MIN_SIDE, chunk_target=CHUNK)
    assert result.path == storage.pyramid_uri
    assert result.levels == 4
    assert result.summary()["shapes"] == [[45, 70], [22, 35], [11, 17], [5, 8]]
    levels = _levels(storage.pyramid_uri, result.levels)
    _check_levels(levels, source, pyramid.DEFAULT_VARIABLES)
    assert set(levels[0].data_vars) == set(pyramid.DEFAULT_VARIABLES)
    assert np.isnan(levels[0].rps_2011.values[24:, 40:]).all()  # the unwritten region

    root = zarr.open_consolidated(storage.pyramid_uri, zarr_format=3)
    assert root.attrs["multiscales"] == pyramid.multiscales_attrs(4)["multiscales"]
    assert root.attrs["proj:code"] == "EPSG:4326"
    assert sorted(root.group_keys()) == ["0", "1", "2", "3"]
    assert _array(root, "0/rps_2011").chunks == (15, 14) == result.chunks[0]
    assert _array(root, "1/rps_2047").chunks == (11, 12)
    assert _array(root, "0/rps_2011").dtype == np.float32


def _array(root: zarr.Group, key: str) -> zarr.Array:
    node = root[key]
    assert isinstance(node, zarr.Array), key
    return node


def test_rewrite_replaces_cleanly(local_repo):
    storage, source = local_repo
    pyramid.write_pyramid(storage, min_side=MIN_SIDE, chunk_target=CHUNK)
    stale = f"{storage.pyramid_uri}/stale.txt"
    with open(stale, "w") as fh:
        fh.write("left over")
    result = pyramid.write_pyramid(storage, variables=("rps_2011",), min_side=20)
    assert result.levels == 2
    root = zarr.open_consolidated(storage.pyramid_uri, zarr_format=3)
    assert sorted(root.group_keys()) == ["0", "1"]
    level0 = root["0"]
    assert isinstance(level0, zarr.Group)
    assert sorted(level0.array_keys()) == ["latitude", "longitude", "rps_2011"]
    multiscales = root.attrs["multiscales"]
    assert isinstance(multiscales, dict)
    assert isinstance(multiscales["layout"], list) and len(multiscales["layout"]) == 2
    parent = storage.pyramid_uri.rsplit("/", 1)[0]
    assert sorted(p.name for p in Path(parent).iterdir()) == ["pyramid.zarr"]
    assert not storage.exists(stale)
    _check_levels(_levels(storage.pyramid_uri, 2), source, ["rps_2011"])


def test_errors_name_the_problem(local_repo, tmp_path):
    storage, _ = local_repo
    with pytest.raises(pyramid.PyramidError, match="nope"):
        pyramid.write_pyramid(storage, variables=("rps_2011", "nope"))
    with pytest.raises(raster_store.RasterStoreError, match="region_risk"):
        pyramid.write_pyramid(Storage(root=str(tmp_path / "empty")))


# --- S3 ----------------------------------------------------------------------------------------
def test_pyramid_on_s3(s3_server, s3_bucket):
    storage = Storage(root=f"{s3_bucket}/x", s3_endpoint_url=s3_server, s3_region="us-east-1")
    source = _fill_repository(storage)
    first = pyramid.write_pyramid(storage, min_side=MIN_SIDE, chunk_target=CHUNK)
    assert first.levels == 4 and first.path.startswith(f"{s3_bucket}/x/output/")
    result = pyramid.write_pyramid(storage, min_side=10, chunk_target=CHUNK)
    assert result.levels == 3
    options = storage.s3_options()
    current = storage.current_dir(storage.pyramid_uri)  # the version CURRENT points to
    assert current != storage.pyramid_uri
    _check_levels(_levels(current, 3, options), source, pyramid.DEFAULT_VARIABLES)
    root = zarr.open_consolidated(current, zarr_format=3, storage_options=options)
    assert sorted(root.group_keys()) == ["0", "1", "2"]  # level 3 of the first run is gone
    assert root.attrs["proj:code"] == "EPSG:4326"
    fs = storage.filesystem()
    parent = storage.fs_path(storage.pyramid_uri).rsplit("/", 1)[0]
    assert [p.rsplit("/", 1)[1] for p in fs.ls(parent, refresh=True)] == ["pyramid.zarr"]
