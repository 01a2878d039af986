"""Jobs: how the graph is launched from the UI, the CLI and CI.

``process_regions`` is partitioned (one run per region; backfill it for many regions). The
aggregation and tile steps are unpartitioned and start only after the regions they read; the
optional steps of the seed (--write-regional-stats, --create-pyramid) are jobs of their own.
"""

import dagster as dg

from ocr_assets import inputs, phase02_aggregation, phase03_tiles
from ocr_assets.partitions import GRID, region_partitions
from ocr_assets.phase01_regions import region_buildings, region_risk
from ocr_resources.settings import current_settings

TAGS = {"ocr/environment": current_settings().environment}

process_regions_job = dg.define_asset_job(
    "process_regions",
    selection=dg.AssetSelection.assets(region_risk, region_buildings),
    partitions_def=region_partitions,
    description="Phase 01 for one region partition (backfill it to run many regions).",
    tags=TAGS,
)

generate_demo_inputs_job = dg.define_asset_job(
    "generate_demo_inputs",
    selection=dg.AssetSelection.groups(inputs.GROUP),
    description="Generate the embedded demo's input datasets.",
)

aggregate_and_tile_job = dg.define_asset_job(
    "aggregate_and_tile",
    selection=dg.AssetSelection.assets(
        phase02_aggregation.buildings_geoparquet,
        phase02_aggregation.region_summary_stats,
        phase03_tiles.regional_pmtiles,
        phase03_tiles.building_tile_features,
        phase03_tiles.building_pmtiles,
        phase03_tiles.building_centroid_pmtiles,
    ),
    description="Phases 02 and 03 after the regions: consolidated buildings, statistics and "
    "the three PMTiles (building and centroid tiles run in parallel).",
    tags=TAGS,
)

write_regional_stats_job = dg.define_asset_job(
    "write_regional_stats",
    selection=dg.AssetSelection.assets(phase02_aggregation.region_analysis_files),
    description="The optional CSV/GeoJSON/GeoParquet downloads per geography.",
    tags=TAGS,
)

create_pyramid_job = dg.define_asset_job(
    "create_pyramid",
    selection=dg.AssetSelection.assets(phase03_tiles.risk_pyramid),
    description="The optional multiscale raster pyramid.",
    tags=TAGS,
)


def jobs() -> list:
    demo_only = [generate_demo_inputs_job] if GRID.name == "demo" else []
    return [
        *demo_only,
        process_regions_job,
        aggregate_and_tile_job,
        write_regional_stats_job,
        create_pyramid_job,
    ]
