"""Phase 02 — aggregation: consolidated buildings, regional statistics, analysis files.

Unpartitioned assets downstream of every region partition; each reads the region files with
one listing. Each writes its outputs where readers don't look, runs its blocking checks there
and publishes only if they pass (``ocr_core.publish``); the check results are reported here.
"""

import dagster as dg

from ocr_assets import OWNERS
from ocr_assets.inputs import census_polygons
from ocr_assets.metadata import audited, blocking_checks, check_results, histogram_table
from ocr_assets.phase01_regions import REGION_BUILDINGS, accepts_shrink
from ocr_core.versions import CODE_VERSIONS
from ocr_resources.compute import ComputeResource
from ocr_resources.duckdb import DuckDBResource
from ocr_resources.storage import InputCatalogResource, StorageResource

GROUP = "phase02_aggregation"


@dg.asset(
    owners=OWNERS,
    code_version=CODE_VERSIONS["buildings_geoparquet"],
    deps=[REGION_BUILDINGS],
    group_name=GROUP,
    kinds={"duckdb", "parquet"},
    tags={"ocr/phase": "02"},
    description="All region building files as one GeoParquet file and a hive dataset "
    "partitioned by state_fips/county_fips (with _common_metadata).",
    check_specs=blocking_checks(
        "buildings_geoparquet",
        buildings_match_region_files="Exactly the region files' buildings: none lost, none "
        "duplicated.",
        buildings_value_ranges="BP in [0, 1], RPS and CRPS in [0, 100], no NaN.",
        buildings_not_collapsed="At least half the published building count (run tag "
        "ocr/accept-shrink=true accepts a real fall).",
    ),
)
def buildings_geoparquet(
    context: dg.AssetExecutionContext,
    storage: StorageResource,
    duckdb: DuckDBResource,
    compute: ComputeResource,
):
    from ocr_core.consolidate import write_buildings_geoparquet

    db = duckdb.config(compute.vm_for(context))
    s = yield from audited(
        context,
        compute,
        write_buildings_geoparquet,
        storage.storage(),
        db,
        accepts_shrink(context),
    )
    yield dg.MaterializeResult(
        check_results=check_results(s["checks"]),
        metadata={
            "dagster/uri": dg.MetadataValue.path(s["consolidated_uri"]),
            "dagster/row_count": s["buildings"],
            "partitioned_uri": dg.MetadataValue.path(s["partitioned_uri"]),
            "partitions": s["partitions"],
            "summary": dg.MetadataValue.json(s),
            "compute": compute.metadata_for(context, db),
        },
    )


@dg.asset(
    owners=OWNERS,
    code_version=CODE_VERSIONS["region_summary_stats"],
    deps=[REGION_BUILDINGS, census_polygons],
    group_name=GROUP,
    kinds={"duckdb", "parquet"},
    tags={"ocr/phase": "02"},
    description="Building count, means, medians and risk-score histograms per county, tract, "
    "state, nation (and block where block polygons exist).",
    check_specs=blocking_checks(
        "region_summary_stats",
        region_files_value_ranges="The region files' risk values inside the schema ranges, no NaN.",
        summary_stats_consistent="Histograms sum to building_count; county totals equal the "
        "national total; means and medians inside the schema ranges.",
    ),
)
def region_summary_stats(
    context: dg.AssetExecutionContext,
    storage: StorageResource,
    catalog: InputCatalogResource,
    duckdb: DuckDBResource,
    compute: ComputeResource,
):
    from ocr_core.aggregate import write_summary_stats

    db = duckdb.config(compute.vm_for(context))
    s = yield from audited(
        context, compute, write_summary_stats, storage.storage(), catalog.catalog(), db
    )
    checks = s.pop("checks")
    yield dg.MaterializeResult(
        check_results=check_results(checks),
        metadata={
            "dagster/uri": dg.MetadataValue.path(storage.storage().summary_stats_dir),
            "levels": dg.MetadataValue.json(s),
            **(
                {"nation_risk_score_histogram": histogram_table(nation["risk_score_histograms"])}
                if "risk_score_histograms" in (nation := s.get("nation") or {})
                else {}
            ),
            "compute": compute.metadata_for(context, db),
        },
    )


@dg.asset(
    owners=OWNERS,
    code_version=CODE_VERSIONS["region_analysis_files"],
    deps=[region_summary_stats],
    group_name=GROUP,
    kinds={"duckdb", "csv", "geojson"},
    tags={"ocr/phase": "02", "ocr/optional": "write-regional-stats"},
    description="Public downloads per geography: stats.csv, stats.geojson and stats.parquet "
    "(optional, like the seed's --write-regional-stats).",
    check_specs=blocking_checks(
        "region_analysis_files",
        analysis_files_complete="Every file holds one row per row of its summary table.",
    ),
)
def region_analysis_files(
    context: dg.AssetExecutionContext,
    storage: StorageResource,
    duckdb: DuckDBResource,
    compute: ComputeResource,
):
    from ocr_core.aggregate import write_analysis_files

    db = duckdb.config(compute.vm_for(context))
    s = yield from audited(context, compute, write_analysis_files, storage.storage(), db)
    checks = s.pop("checks")
    yield dg.MaterializeResult(
        check_results=check_results(checks),
        metadata={
            "dagster/uri": dg.MetadataValue.path(storage.storage().region_analysis_dir),
            "files": dg.MetadataValue.json(s),
            "compute": compute.metadata_for(context, db),
        },
    )
