"""Jobs: how the graph is launched from the UI, the CLI and CI.

``process_regions`` is partitioned (one run per region; backfill it for many regions); the
fan-ins after it are materialized by the daemon's automation (``automation.py``), so the other
jobs are for reruns by hand: the aggregation and tiles, and the optional analysis files and
pyramid (``--write-regional-stats``, ``--create-pyramid``).
"""

import dagster as dg

from ocr_assets import inputs, phase02_aggregation, phase03_tiles
from ocr_assets.phase01_regions import REGION_BUILDINGS, REGION_INPUTS, REGION_RISK
from ocr_resources.run_coordinator import ENVIRONMENT_TAG, NAMESPACE_TAG
from ocr_resources.settings import Settings


def location_metadata(settings: Settings) -> dict[str, str]:
    """What the code location says of itself (the UI shows it; ``deploy run`` checks it before
    launching anything): its environment, namespace, grid, version and commit."""
    facts = {
        ENVIRONMENT_TAG: settings.environment,
        NAMESPACE_TAG: settings.namespace,
        "ocr/grid": settings.grid,
        "ocr/version": settings.version or "",
        "ocr/code-ref": settings.code_ref or "",
    }
    return {key: value for key, value in facts.items() if value}


def jobs(settings: Settings) -> list:
    """The jobs of one environment (tagged with it, its namespace and commit: runs of a job
    say where they wrote, and ``deploy run`` reads them to check what a deployment serves);
    the demo grid adds its input job."""
    tags = location_metadata(settings)
    demo_only = (
        [
            dg.define_asset_job(
                "generate_demo_inputs",
                selection=dg.AssetSelection.groups(inputs.GROUP),
                description="Generate the embedded demo's input datasets.",
            )
        ]
        if settings.grid == "demo"
        else []
    )
    return [
        *demo_only,
        dg.define_asset_job(
            "process_regions",
            selection=dg.AssetSelection.assets(REGION_RISK, REGION_BUILDINGS),
            description="Phase 01 for one region partition (backfill it to run many regions).",
            tags=tags,
        ),
        dg.define_asset_job(
            "observe_region_inputs",
            selection=dg.AssetSelection.assets(REGION_INPUTS),
            description="Digest every region's inputs, so the regions whose inputs changed "
            "show as stale (run it after an input changes, before a --changed rerun).",
            tags=tags,
        ),
        dg.define_asset_job(
            "aggregate_and_tile",
            selection=dg.AssetSelection.assets(
                phase02_aggregation.buildings_geoparquet,
                phase02_aggregation.region_summary_stats,
                phase03_tiles.regional_pmtiles,
                phase03_tiles.building_tile_features,
                phase03_tiles.building_pmtiles,
                phase03_tiles.building_centroid_pmtiles,
            ),
            description="Phases 02 and 03 after the regions: consolidated buildings, statistics "
            "and the three PMTiles (building and centroid tiles run in parallel).",
            tags=tags,
        ),
        dg.define_asset_job(
            "write_regional_stats",
            selection=dg.AssetSelection.assets(phase02_aggregation.region_analysis_files),
            description="The optional CSV/GeoJSON/GeoParquet downloads per geography.",
            tags=tags,
        ),
        dg.define_asset_job(
            "create_pyramid",
            selection=dg.AssetSelection.assets(phase03_tiles.risk_pyramid),
            description="The optional multiscale raster pyramid.",
            tags=tags,
        ),
    ]
