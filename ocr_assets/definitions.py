"""The code location: every asset, check, job, sensor and resource of the pipeline.

``build_defs`` builds them for one environment's settings; ``defs`` is this process's (the
environment is read here, when the code location loads, and nowhere else at import).
"""

import dagster as dg

from ocr_assets import inputs, phase01_regions, phase02_aggregation, phase03_tiles
from ocr_assets.automation import automation_sensor, with_automation
from ocr_assets.executor import step_count_executor
from ocr_assets.jobs import jobs, location_metadata
from ocr_core.fan_ins import FAN_INS
from ocr_resources import build_resources
from ocr_resources.settings import Settings, current_settings


def automated_keys(settings: Settings) -> set[dg.AssetKey]:
    """The assets the daemon materializes after the regions, in this environment: every fan-in
    but the analysis files and the pyramid unless the environment switches them on."""
    optional = {
        phase02_aggregation.region_analysis_files.key: settings.analysis_files_on,
        phase03_tiles.risk_pyramid.key: settings.pyramid_on,
    }
    keys = {dg.AssetKey(name) for name in FAN_INS}
    return {key for key in keys if optional.get(key, True)}


def fan_in_assets() -> list[dg.AssetsDefinition]:
    """The assets of phases 02 and 03: unpartitioned, each built from all the regions."""
    loaded = dg.load_assets_from_modules([phase02_aggregation, phase03_tiles])
    return [asset for asset in loaded if isinstance(asset, dg.AssetsDefinition)]


def build_defs(settings: Settings) -> dg.Definitions:
    """Assets partitioned by the settings' grid, fan-ins that follow the regions, jobs tagged
    with its environment, resources pointed at its storage, inputs and compute platform. The
    environment is also the code location's metadata: the run coordinator reads it for runs
    without the tag (the UI's "Materialize", the automation's)."""
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
            *with_automation(fan_in_assets(), automated_keys(settings), inputs.GROUP),
        ],
        asset_checks=[
            inputs.input_checks,
            *dg.load_asset_checks_from_modules([phase02_aggregation]),
        ],
        jobs=jobs(settings),
        sensors=[automation_sensor(settings.automation_interval_s)],
        executor=step_count_executor,
        resources=build_resources(settings),
        metadata=location_metadata(settings),
    )


defs = build_defs(current_settings())
