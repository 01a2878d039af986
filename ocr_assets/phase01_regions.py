"""Phase 01 — process regions: risk raster per region, then its buildings.

Both assets are partitioned by region id. A failed region is retried by Dagster with a linear
backoff of 5 s × attempt (the seed's retry loop); bad input fails at once with a clear error,
since retrying cannot fix it.
"""

import json

import dagster as dg

from ocr_assets.inputs import riley_2025, scott_2024, tagged_buildings, wind_direction_distribution
from ocr_assets.partitions import GRID, region_partitions
from ocr_core.catalog import InputDataError
from ocr_core.errors import TransientInputError, is_transient, summary
from ocr_core.grid import RegionIdError
from ocr_resources.compute import ComputeResource
from ocr_resources.settings import current_settings
from ocr_resources.storage import InputCatalogResource, StorageResource

GROUP = "phase01_regions"
MAX_RETRIES = current_settings().region_max_retries
REGION_RETRY_POLICY = dg.RetryPolicy(max_retries=MAX_RETRIES, delay=5, backoff=dg.Backoff.LINEAR)
NOT_RETRYABLE = (RegionIdError, InputDataError)
# Raised by input readers for what no retry can fix (missing, unreadable, malformed input).
NOT_RETRYABLE_IF_NOT_TRANSIENT = (PermissionError, FileNotFoundError, ValueError)


def retryable(exc: BaseException) -> bool:
    """Whether a region step that raised ``exc`` should be retried.

    Our classification wins: ``TransientInputError`` is retried, ``InputDataError`` and
    ``RegionIdError`` are not. Otherwise timeouts, throttling and dropped connections are
    retried, permission/missing-file/value errors are not, and anything else (a lost worker,
    an unexpected crash) is retried as before.
    """
    if isinstance(exc, TransientInputError):
        return True
    if isinstance(exc, NOT_RETRYABLE):
        return False
    if is_transient(exc):
        return True
    return not isinstance(exc, NOT_RETRYABLE_IF_NOT_TRANSIENT)


def run_region_step(context: dg.AssetExecutionContext, compute: ComputeResource, fn, *args) -> dict:
    """Run a region task on the asset's cluster; turn its failure into a clear Dagster error."""
    asset, region = context.asset_key.to_user_string(), context.partition_key
    attempt, attempts = context.retry_number + 1, MAX_RETRIES + 1
    try:
        return compute.run_for(context, fn, region, GRID.name, *args)
    except Exception as exc:
        if not retryable(exc):
            message = str(exc) if isinstance(exc, NOT_RETRYABLE) else summary(exc)
            raise dg.Failure(
                description=f"{asset} for region {region}: {message}", allow_retries=False
            ) from exc
        cause = summary(exc)
        if attempt >= attempts:
            raise dg.Failure(
                description=f"{asset} for region {region} failed after {attempt} attempt(s); "
                f"last error: {cause}",
                allow_retries=False,
            ) from exc
        context.log.warning(
            f"{asset} for region {region}: attempt {attempt}/{attempts} failed ({cause}); "
            f"retrying in {5 * attempt} s"
        )
        raise


def _ranges_table(ranges: dict) -> dg.MetadataValue:
    rows = ["| variable | min | max | NaN fraction |", "|---|---|---|---|"]
    for var, r in ranges.items():

        def fmt(v):
            return "—" if v is None else f"{v:.6g}"

        rows.append(
            f"| {var} | {fmt(r.get('min'))} | {fmt(r.get('max'))} | {r.get('nan_fraction', '')} |"
        )
    return dg.MetadataValue.md("\n".join(rows))


@dg.asset(
    partitions_def=region_partitions,
    deps=[scott_2024, riley_2025, wind_direction_distribution],
    retry_policy=REGION_RETRY_POLICY,
    group_name=GROUP,
    kinds={"python", "dask", "icechunk"},
    tags={"ocr/phase": "01"},
    description="Wind-informed fire risk (8 variables) for one region, committed to the "
    "icechunk risk repository (one commit per region).",
)
def region_risk(
    context: dg.AssetExecutionContext,
    storage: StorageResource,
    catalog: InputCatalogResource,
    compute: ComputeResource,
) -> dg.MaterializeResult:
    from ocr_core.process_region import run_region_risk

    s = run_region_step(context, compute, run_region_risk, catalog.catalog(), storage.storage())
    return dg.MaterializeResult(
        metadata={
            "dagster/uri": dg.MetadataValue.path(s["repository"]),
            "snapshot_id": s["snapshot_id"],
            "region_bounds": dg.MetadataValue.json(s["bounds"]),
            "shape": dg.MetadataValue.json(s["shape"]),
            "value_ranges": _ranges_table(s["value_ranges"]),
            "kernel_seconds": s["kernel_seconds"],
            "kernel_peak_mb": s["kernel_peak_mb"],
            "kernel_added_mb": s["kernel_added_mb"],
            "read_seconds": s["read_seconds"],
            "write_seconds": s["write_seconds"],
            "process_max_rss_mb": s["process_max_rss_mb"],
            "compute": compute.metadata_for(context),
            "preview_rps_2011": dg.MetadataValue.md(
                f"![rps_2011 preview](data:image/png;base64,{s['preview_png_b64']})"
            ),
        }
    )


@dg.asset(
    partitions_def=region_partitions,
    deps=[region_risk, tagged_buildings],
    retry_policy=REGION_RETRY_POLICY,
    group_name=GROUP,
    kinds={"python", "dask", "parquet"},
    tags={"ocr/phase": "01"},
    description="The region's buildings with the 8 risk values sampled at their centroids "
    "(geoparquet-regions/{region}.parquet, GeoParquet 1.1).",
)
def region_buildings(
    context: dg.AssetExecutionContext,
    storage: StorageResource,
    catalog: InputCatalogResource,
    compute: ComputeResource,
) -> dg.MaterializeResult:
    from ocr_core.process_region import run_region_buildings

    s = run_region_step(
        context,
        compute,
        run_region_buildings,
        catalog.catalog(),
        storage.storage(),
    )
    return dg.MaterializeResult(
        metadata={
            "dagster/uri": dg.MetadataValue.path(s["path"]),
            "dagster/row_count": s["building_count"],
            "building_count": s["building_count"],
            "buildings_in_region": s["buildings_in_region"],
            "dropped_nan_count": s["dropped_nan_count"],
            "bytes": s["bytes"],
            "value_ranges": dg.MetadataValue.json(json.loads(json.dumps(s["value_ranges"]))),
            "compute": compute.metadata_for(context),
        }
    )
