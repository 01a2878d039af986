"""The code location: every asset, check, job and resource of the pipeline."""

import dagster as dg

from ocr_assets import inputs, phase01_regions, phase02_aggregation, phase03_tiles
from ocr_assets.jobs import jobs
from ocr_resources import build_resources
from ocr_resources.settings import current_settings

defs = dg.Definitions(
    assets=[
        *inputs.input_assets(),
        *dg.load_assets_from_modules([phase01_regions, phase02_aggregation, phase03_tiles]),
    ],
    asset_checks=[
        inputs.input_checks,
        *dg.load_asset_checks_from_modules([phase02_aggregation]),
    ],
    jobs=jobs(),
    resources=build_resources(current_settings()),
)
