"""Phase 02 — aggregation: consolidated buildings, regional statistics, analysis files.

Unpartitioned assets downstream of every region partition; each reads the region files from
one listing of their folder. Blocking checks stop a run before bad data reaches the published
products.
"""

import dagster as dg

from ocr_assets import OWNERS
from ocr_assets.inputs import census_polygons
from ocr_assets.metadata import flat_metadata, histogram_table
from ocr_assets.phase01_regions import REGION_BUILDINGS
from ocr_core.versions import CODE_VERSIONS
from ocr_resources.compute import ComputeResource
from ocr_resources.duckdb import DuckDBResource
from ocr_resources.storage import InputCatalogResource, StorageResource

GROUP = "phase02_aggregation"


def _check_result(passed: bool, details: dict, description: str) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=bool(passed),
        severity=dg.AssetCheckSeverity.ERROR,
        description=description,
        metadata=flat_metadata(details),
    )


@dg.asset(
    owners=OWNERS,
    code_version=CODE_VERSIONS["buildings_geoparquet"],
    deps=[REGION_BUILDINGS],
    group_name=GROUP,
    kinds={"duckdb", "parquet"},
    tags={"ocr/phase": "02"},
    description="All region building files as one GeoParquet file and a hive dataset "
    "partitioned by state_fips/county_fips (with _common_metadata).",
)
def buildings_geoparquet(
    context: dg.AssetExecutionContext,
    storage: StorageResource,
    duckdb: DuckDBResource,
    compute: ComputeResource,
) -> dg.MaterializeResult:
    from ocr_core.consolidate import write_buildings_geoparquet

    s = compute.run_for(context, write_buildings_geoparquet, storage.storage(), duckdb.config())
    return dg.MaterializeResult(
        metadata={
            "dagster/uri": dg.MetadataValue.path(s["consolidated_uri"]),
            "dagster/row_count": s["buildings"],
            "partitioned_uri": dg.MetadataValue.path(s["partitioned_uri"]),
            "partitions": s["partitions"],
            "summary": dg.MetadataValue.json(s),
            "compute": compute.metadata_for(context),
        }
    )


@dg.asset_check(
    asset=buildings_geoparquet,
    blocking=True,
    description="Exactly the region files' buildings: none lost, none duplicated.",
)
def buildings_match_region_files(storage: StorageResource, duckdb: DuckDBResource):
    from ocr_core.checks import consolidated_matches_regions

    passed, details = consolidated_matches_regions(storage.storage(), duckdb.config())
    return _check_result(passed, details, "consolidated and partitioned rows == region rows")


@dg.asset_check(
    asset=buildings_geoparquet,
    blocking=True,
    description="BP in [0, 1], RPS and CRPS in [0, 100], no NaN.",
)
def buildings_value_ranges(storage: StorageResource, duckdb: DuckDBResource):
    from ocr_core.checks import building_value_ranges

    passed, details = building_value_ranges(storage.storage(), duckdb.config())
    return _check_result(passed, details, "risk values inside the data schema's ranges")


@dg.asset(
    owners=OWNERS,
    code_version=CODE_VERSIONS["region_summary_stats"],
    deps=[REGION_BUILDINGS, census_polygons],
    group_name=GROUP,
    kinds={"duckdb", "parquet"},
    tags={"ocr/phase": "02"},
    description="Building count, means, medians and risk-score histograms per county, tract, "
    "state, nation (and block where block polygons exist).",
)
def region_summary_stats(
    context: dg.AssetExecutionContext,
    storage: StorageResource,
    catalog: InputCatalogResource,
    duckdb: DuckDBResource,
    compute: ComputeResource,
) -> dg.MaterializeResult:
    from ocr_core.aggregate import write_summary_stats

    s = compute.run_for(
        context, write_summary_stats, storage.storage(), catalog.catalog(), duckdb.config()
    )
    return dg.MaterializeResult(
        metadata={
            "dagster/uri": dg.MetadataValue.path(storage.storage().summary_stats_dir),
            "levels": dg.MetadataValue.json(s),
            **(
                {"nation_risk_score_histogram": histogram_table(nation["risk_score_histograms"])}
                if "risk_score_histograms" in (nation := s.get("nation") or {})
                else {}
            ),
            "compute": compute.metadata_for(context),
        }
    )


@dg.asset_check(
    asset=region_summary_stats,
    blocking=True,
    description="Histograms sum to building_count; county totals equal the "
    "national total; means and medians inside the schema ranges.",
)
def summary_stats_consistent(storage: StorageResource, duckdb: DuckDBResource):
    from ocr_core.checks import summary_stats_consistent as check

    passed, details = check(storage.storage(), duckdb.config())
    return _check_result(passed, details, "summary statistics reconcile")


@dg.asset(
    owners=OWNERS,
    code_version=CODE_VERSIONS["region_analysis_files"],
    deps=[region_summary_stats],
    group_name=GROUP,
    kinds={"duckdb", "csv", "geojson"},
    tags={"ocr/phase": "02", "ocr/optional": "write-regional-stats"},
    description="Public downloads per geography: stats.csv, stats.geojson and stats.parquet "
    "(optional, like the seed's --write-regional-stats).",
)
def region_analysis_files(
    context: dg.AssetExecutionContext,
    storage: StorageResource,
    duckdb: DuckDBResource,
    compute: ComputeResource,
) -> dg.MaterializeResult:
    from ocr_core.aggregate import write_analysis_files

    s = compute.run_for(context, write_analysis_files, storage.storage(), duckdb.config())
    return dg.MaterializeResult(
        metadata={
            "dagster/uri": dg.MetadataValue.path(storage.storage().region_analysis_dir),
            "files": dg.MetadataValue.json(s),
            "compute": compute.metadata_for(context),
        }
    )
