"""The code location: every asset, check, job, sensor and resource of the pipeline.

``build_defs`` builds them for one environment's settings; ``defs`` is this process's (the
environment is read here, when the code location loads, and nowhere else at import).
"""

import dagster as dg

from ocr_assets import inputs, phase01_regions, phase02_aggregation, phase03_tiles
from ocr_assets.automation import automation_sensor, with_automation
from ocr_assets.executor import step_count_executor
from ocr_assets.jobs import jobs
from ocr_resources import build_resources
from ocr_resources.settings import Settings, current_settings

FAN_INS = {
    phase02_aggregation.buildings_geoparquet.key,
    phase02_aggregation.region_summary_stats.key,
    phase03_tiles.regional_pmtiles.key,
    phase03_tiles.building_tile_features.key,
    phase03_tiles.building_pmtiles.key,
    phase03_tiles.building_centroid_pmtiles.key,
}


def automated_keys(settings: Settings) -> set[dg.AssetKey]:
    """The assets the daemon materializes after the regions, in this environment."""
    keys = set(FAN_INS)
    if settings.analysis_files_on:
        keys.add(phase02_aggregation.region_analysis_files.key)
    if settings.pyramid_on:
        keys.add(phase03_tiles.risk_pyramid.key)
    return keys


def build_defs(settings: Settings) -> dg.Definitions:
    """Assets partitioned by the settings' grid, fan-ins that follow the regions, jobs tagged
    with its environment, resources pointed at its storage, inputs and compute platform."""
    downstream = dg.load_assets_from_modules([phase02_aggregation, phase03_tiles])
    return dg.Definitions(
        assets=[
            *inputs.input_assets(settings.grid),
            *phase01_regions.region_assets(
                settings.grid,
                settings.region_max_retries,
                settings.trivial_compute,
                settings.regions_per_run,
                settings.region_retry_delay_s,
            ),
            *with_automation(downstream, automated_keys(settings), inputs.GROUP),
        ],
        asset_checks=[
            inputs.input_checks,
            *dg.load_asset_checks_from_modules([phase02_aggregation]),
        ],
        jobs=jobs(settings),
        sensors=[automation_sensor(settings.automation_interval_s)],
        executor=step_count_executor,
        resources=build_resources(settings),
    )


defs = build_defs(current_settings())
