"""Phase 01 — process regions: risk raster per region, then its buildings.

Both assets are partitioned by the region ids of the grid (``region_assets`` builds them for
a grid and a retry count; the module-level pair is the demo grid's, for tests). A failed
region is retried by Dagster with a linear backoff of 5 s × attempt (the seed's retry loop);
bad input fails at once with a clear error, since retrying cannot fix it.
"""

import dagster as dg

from ocr_assets import OWNERS
from ocr_assets.inputs import riley_2025, scott_2024, tagged_buildings, wind_direction_distribution
from ocr_assets.metadata import histogram_table
from ocr_assets.partitions import region_partitions
from ocr_core.catalog import InputDataError
from ocr_core.errors import TransientInputError, is_transient, summary
from ocr_core.grid import RegionIdError
from ocr_core.versions import CODE_VERSIONS
from ocr_resources.compute import ComputeResource
from ocr_resources.settings import Settings
from ocr_resources.storage import InputCatalogResource, StorageResource

GROUP = "phase01_regions"
RETRY_DELAY_S = 5  # × attempt (linear backoff)
REGION_RISK = dg.AssetKey("region_risk")
REGION_BUILDINGS = dg.AssetKey("region_buildings")
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


def region_retry_policy(max_retries: int) -> dg.RetryPolicy:
    return dg.RetryPolicy(max_retries=max_retries, delay=RETRY_DELAY_S, backoff=dg.Backoff.LINEAR)


def run_region_step(
    context: dg.AssetExecutionContext,
    compute: ComputeResource,
    catalog: InputCatalogResource,
    fn,
    *args,
) -> dict:
    """Run a region task on the asset's cluster; turn its failure into a clear Dagster error."""
    asset, region = context.asset_key.to_user_string(), context.partition_key
    policy = context.op_def.retry_policy
    attempt, attempts = context.retry_number + 1, (policy.max_retries if policy else 0) + 1
    try:
        return compute.run_for(context, fn, region, catalog.grid, catalog.catalog(), *args)
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
            f"retrying in {RETRY_DELAY_S * attempt} s"
        )
        raise


def _fmt(v) -> str:
    return "—" if v is None else f"{v:.6g}"


def _ranges_table(ranges: dict) -> dg.MetadataValue:
    rows = ["| variable | min | max | NaN fraction |", "|---|---|---|---|"]
    for var, r in ranges.items():
        rows.append(
            f"| {var} | {_fmt(r.get('min'))} | {_fmt(r.get('max'))} | {r.get('nan_fraction', '')} |"
        )
    return dg.MetadataValue.md("\n".join(rows))


def _region_risk(
    context: dg.AssetExecutionContext,
    storage: StorageResource,
    catalog: InputCatalogResource,
    compute: ComputeResource,
) -> dg.MaterializeResult:
    from ocr_core.process_region import run_region_risk

    s = run_region_step(context, compute, catalog, run_region_risk, storage.storage())
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
                f"![rps_2011 preview](data:image/png;base64,{s['preview_png_b64']})\n\n"
                f"Colour bar (bottom strip): 0 % (pale yellow) to {s['preview_scale_top']:.3g} % "
                "(dark red, the 99th percentile; above it dark red too). rps_2011 ranges over "
                f"{_fmt(s['value_ranges']['rps_2011']['min'])}–"
                f"{_fmt(s['value_ranges']['rps_2011']['max'])} %."
            ),
        }
    )


def _region_buildings(
    context: dg.AssetExecutionContext,
    storage: StorageResource,
    catalog: InputCatalogResource,
    compute: ComputeResource,
) -> dg.MaterializeResult:
    from ocr_core.process_region import run_region_buildings

    s = run_region_step(context, compute, catalog, run_region_buildings, storage.storage())
    return dg.MaterializeResult(
        metadata={
            "dagster/uri": dg.MetadataValue.path(s["path"]),
            "dagster/row_count": s["building_count"],
            "building_count": s["building_count"],
            "buildings_in_region": s["buildings_in_region"],
            "dropped_nan_count": s["dropped_nan_count"],
            "bytes": s["bytes"],
            "value_ranges": _ranges_table(s["value_ranges"]),
            "risk_score_histogram": histogram_table(s["risk_score_histograms"]),
            "compute": compute.metadata_for(context),
        }
    )


def region_assets(grid_name: str, max_retries: int) -> list[dg.AssetsDefinition]:
    """``region_risk`` and ``region_buildings``, partitioned by the grid's valid region ids."""
    common = {
        "partitions_def": region_partitions(grid_name),
        "retry_policy": region_retry_policy(max_retries),
        "group_name": GROUP,
        "tags": {"ocr/phase": "01"},
        "owners": OWNERS,
    }
    risk = dg.asset(
        name=REGION_RISK.path[-1],
        code_version=CODE_VERSIONS[REGION_RISK.path[-1]],
        deps=[scott_2024, riley_2025, wind_direction_distribution],
        kinds={"python", "dask", "icechunk"},
        description="Wind-informed fire risk (8 variables) for one region, committed to the "
        "icechunk risk repository (one commit per region).",
        **common,
    )(_region_risk)
    buildings = dg.asset(
        name=REGION_BUILDINGS.path[-1],
        code_version=CODE_VERSIONS[REGION_BUILDINGS.path[-1]],
        deps=[REGION_RISK, tagged_buildings],
        kinds={"python", "dask", "parquet"},
        description="The region's buildings with the 8 risk values sampled at their centroids "
        "(geoparquet-regions/{region}.parquet, GeoParquet 1.1).",
        **common,
    )(_region_buildings)
    return [risk, buildings]


region_risk, region_buildings = region_assets("demo", Settings().region_max_retries)
