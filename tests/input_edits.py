"""Helpers for tests that alter a copy of the demo inputs and run a region step on it."""

from __future__ import annotations

import shutil
from pathlib import Path

from ocr_core.catalog import InputCatalog
from ocr_core.storage import Storage
from ocr_resources import ComputeResource, InputCatalogResource, StorageResource


def rewrite_dataset(inputs_root: Path, name: str, mutate) -> None:
    """Replace one input dataset (an icechunk repository) by ``mutate(ds) -> ds``."""
    import icechunk

    catalog = InputCatalog(Storage(str(inputs_root)))
    ds = mutate(catalog.open_zarr(name, check=False).load())
    uri = catalog.uri(name)
    shutil.rmtree(uri)
    repo = icechunk.Repository.create(icechunk.local_filesystem_storage(uri))
    session = repo.writable_session("main")
    ds.to_zarr(session.store, zarr_format=3, consolidated=False, mode="w")
    session.commit("altered for a test")


def region_resources(inputs_root: Path, out_root: Path, compute=None) -> dict:
    """Resources of a region step reading ``inputs_root`` and writing under ``out_root``."""
    return {
        "storage": StorageResource(root=str(out_root)),
        "catalog": InputCatalogResource(root=str(inputs_root)),
        "compute": compute or ComputeResource(),
    }


def run_region_step(inputs_root: Path, out_root: Path, region: str, compute=None):
    """The region step (``process_region``) of ``region`` on those inputs, failures kept."""
    import dagster as dg

    from ocr_assets.phase01_regions import process_region

    return dg.materialize(
        [process_region],
        partition_key=region,
        resources=region_resources(inputs_root, out_root, compute),
        raise_on_error=False,
    )


def web_mercator(ds):
    """Mutation: the store's CRS metadata all saying EPSG:3857 (root EPSG attribute dropped)."""
    from pyproj import CRS

    wkt = CRS.from_epsg(3857).to_wkt()
    return ds.assign_coords(
        spatial_ref=ds.spatial_ref.assign_attrs(crs_wkt=wkt, spatial_ref=wkt),
        latitude=ds.latitude.assign_attrs(crs="EPSG:3857"),
        longitude=ds.longitude.assign_attrs(crs="EPSG:3857"),
    ).drop_attrs(deep=False)
