"""Dagster resources: everything that touches the outside world, built from Settings."""

from __future__ import annotations

from ocr_resources.compute import ComputeResource
from ocr_resources.duckdb import DuckDBResource
from ocr_resources.settings import Settings
from ocr_resources.storage import InputCatalogResource, StorageResource
from ocr_resources.tippecanoe import TippecanoeResource


def build_resources(settings: Settings) -> dict:
    """The resource set for one environment, decided only by ``settings``."""
    return {
        "storage": StorageResource(
            root=settings.storage_root,
            environment=settings.environment,
            version=settings.version,
            pull_request=settings.pull_request,
            s3_endpoint_url=settings.s3_endpoint_url,
            s3_region=settings.s3_region,
        ),
        "catalog": InputCatalogResource(
            root=settings.inputs_root,
            s3_endpoint_url=settings.s3_endpoint_url,
            s3_region=settings.s3_region,
            grid=settings.grid,
        ),
        "duckdb": DuckDBResource(),
        "tippecanoe": TippecanoeResource(),
        "compute": ComputeResource(
            platform=settings.platform,
            environment=settings.environment,
            software=settings.coiled_software,
        ),
    }
