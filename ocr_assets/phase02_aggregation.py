"""Phase 02 — aggregation: consolidated buildings, regional statistics, analysis files.

Unpartitioned assets downstream of every region partition; each reads the region files with
one listing. Each writes its outputs where readers don't look, runs its blocking checks there
and publishes only if they pass (``ocr_core.publish``); the check results are reported here.
"""

from dataclasses import asdict
from functools import partial
from typing import TYPE_CHECKING

import dagster as dg

from ocr_assets import OWNERS
from ocr_assets.inputs import census_polygons
from ocr_assets.metadata import audited, blocking_checks, check_results, histogram_table
from ocr_assets.phase01_regions import REGION_BUILDINGS, accepts_shrink
from ocr_core.schema import GEOGRAPHIES
from ocr_core.versions import CODE_VERSIONS
from ocr_resources.compute import ComputeResource
from ocr_resources.duckdb import DuckDBResource
from ocr_resources.storage import InputCatalogResource, StorageResource

if TYPE_CHECKING:
    from ocr_core.analysis_files import AnalysisFiles
    from ocr_core.consolidate import ConsolidatedBuildings
    from ocr_core.statistics import SummaryStats

GROUP = "phase02_aggregation"


def _phase02_asset(
    name: str,
    description: str,
    deps: list,
    kinds: set[str],
    optional: str | None = None,
    **checks: str,
):
    """The asset decorator of this phase: owners, group, code version, tags, blocking checks
    (name=description); ``optional`` names the job that may leave the asset out."""
    tags = {"ocr/phase": "02"} | ({"ocr/optional": optional} if optional else {})
    return dg.asset(
        name=name,
        owners=OWNERS,
        code_version=CODE_VERSIONS[name],
        deps=deps,
        group_name=GROUP,
        kinds=kinds,
        tags=tags,
        description=description,
        check_specs=blocking_checks(name, **checks),
    )


def _materialize(
    context, compute: ComputeResource, duckdb: DuckDBResource, metadata, writer, *args
):
    """Run ``writer(*args, db)`` on the asset's cluster (``audited``; ``db``: the DuckDB limits
    of its VM), then yield its checks' results and ``metadata(summary)`` with the compute used
    (a generator: ``yield from``)."""
    db = duckdb.config(compute.vm_for(context))
    s = yield from audited(context, compute, writer, *args, db)
    yield dg.MaterializeResult(
        check_results=check_results(s.checks),
        metadata={**metadata(s), "compute": compute.metadata_for(context, db)},
    )


def _buildings_metadata(s: "ConsolidatedBuildings") -> dict:
    return {
        "dagster/uri": dg.MetadataValue.path(s.consolidated_uri),
        "dagster/row_count": s.buildings,
        "partitioned_uri": dg.MetadataValue.path(s.partitioned_uri),
        "partitions": s.partitions,
        "summary": dg.MetadataValue.json(asdict(s)),
    }


@_phase02_asset(
    "buildings_geoparquet",
    "All region building files as one GeoParquet file and a hive dataset "
    "partitioned by state_fips/county_fips (with _common_metadata).",
    deps=[REGION_BUILDINGS],
    kinds={"duckdb", "parquet"},
    buildings_match_region_files="Exactly the region files' buildings: none lost, none duplicated.",
    buildings_value_ranges="BP in [0, 1], RPS and CRPS in [0, 100], no NaN.",
    buildings_not_collapsed="At least half the published building count (run tag "
    "ocr/accept-shrink=true accepts a real fall).",
)
def buildings_geoparquet(
    context: dg.AssetExecutionContext,
    storage: StorageResource,
    duckdb: DuckDBResource,
    compute: ComputeResource,
):
    from ocr_core.consolidate import write_buildings_geoparquet

    writer = partial(write_buildings_geoparquet, accept_shrink=accepts_shrink(context))
    yield from _materialize(
        context, compute, duckdb, _buildings_metadata, writer, storage.storage()
    )


def _level_figures(stats: "SummaryStats") -> dict[str, dict]:
    """Per level, finest first: the summary table's figures, or why the level was skipped."""
    out: dict[str, dict] = {}
    for level in (g.level for g in GEOGRAPHIES):
        if level in stats.skipped:
            out[level] = {
                "present": False,
                "path": None,
                "rows": 0,
                "building_count": 0,
                "total_buildings": stats.total_buildings,
                "reason": stats.skipped[level],
            }
            continue
        s = stats.levels.get(level)
        if s is None:
            continue
        histograms = s.risk_score_histograms
        out[level] = {
            "present": True,
            "path": s.path,
            "rows": s.rows,
            **s.counts.figures(),
            **({"risk_score_histograms": histograms} if histograms is not None else {}),
            "seconds": s.seconds,
        }
    return out


def _summary_metadata(s: "SummaryStats") -> dict:
    nation = s.levels.get("nation")
    histograms = nation.risk_score_histograms if nation is not None else None
    table = (
        {} if histograms is None else {"nation_risk_score_histogram": histogram_table(histograms)}
    )
    return {
        "dagster/uri": dg.MetadataValue.path(s.folder),
        "levels": dg.MetadataValue.json(_level_figures(s)),
        **table,
    }


@_phase02_asset(
    "region_summary_stats",
    "Building count, means, medians and risk-score histograms per county, tract, "
    "state, nation (and block where block polygons exist).",
    deps=[REGION_BUILDINGS, census_polygons],
    kinds={"duckdb", "parquet"},
    region_files_value_ranges="The region files' risk values inside the schema ranges, no NaN.",
    summary_stats_consistent="Histograms sum to building_count; county totals equal the "
    "national total; means and medians inside the schema ranges.",
)
def region_summary_stats(
    context: dg.AssetExecutionContext,
    storage: StorageResource,
    catalog: InputCatalogResource,
    duckdb: DuckDBResource,
    compute: ComputeResource,
):
    from ocr_core.statistics import write_summary_stats

    yield from _materialize(
        context,
        compute,
        duckdb,
        _summary_metadata,
        write_summary_stats,
        storage.storage(),
        catalog.catalog(),
    )


def _analysis_metadata(s: "AnalysisFiles") -> dict:
    """Per output folder, finest first: its files' rows and paths, or that it is absent."""
    files: dict[str, dict] = {}
    for name in (g.analysis_folder for g in GEOGRAPHIES):
        written = s.outputs.get(name)
        files[name] = (
            {"present": False, "rows": 0, "paths": {}}
            if written is None
            else {"present": True, **asdict(written)}
        )
    return {"dagster/uri": dg.MetadataValue.path(s.folder), "files": dg.MetadataValue.json(files)}


@_phase02_asset(
    "region_analysis_files",
    "Public downloads per geography: stats.csv, stats.geojson and stats.parquet "
    "(optional: --write-regional-stats).",
    deps=[region_summary_stats],
    kinds={"duckdb", "csv", "geojson"},
    optional="write-regional-stats",
    analysis_files_complete="Every file holds one row per row of its summary table.",
)
def region_analysis_files(
    context: dg.AssetExecutionContext,
    storage: StorageResource,
    duckdb: DuckDBResource,
    compute: ComputeResource,
):
    from ocr_core.analysis_files import write_analysis_files

    yield from _materialize(
        context, compute, duckdb, _analysis_metadata, write_analysis_files, storage.storage()
    )
