"""The code location: every asset, check, job and resource of the pipeline.

``build_defs`` builds them for one environment's settings; ``defs`` is this process's (the
environment is read here, when the code location loads, and nowhere else at import).
"""

import dagster as dg

from ocr_assets import inputs, phase01_regions, phase02_aggregation, phase03_tiles
from ocr_assets.jobs import jobs
from ocr_resources import build_resources
from ocr_resources.settings import Settings, current_settings


def build_defs(settings: Settings) -> dg.Definitions:
    """Assets partitioned by the settings' grid, jobs tagged with its environment, resources
    pointed at its storage, inputs and compute platform."""
    return dg.Definitions(
        assets=[
            *inputs.input_assets(settings.grid),
            *phase01_regions.region_assets(settings.grid, settings.region_max_retries),
            *dg.load_assets_from_modules([phase02_aggregation, phase03_tiles]),
        ],
        asset_checks=[
            inputs.input_checks,
            *dg.load_asset_checks_from_modules([phase02_aggregation]),
        ],
        jobs=jobs(settings),
        resources=build_resources(settings),
    )


defs = build_defs(current_settings())
