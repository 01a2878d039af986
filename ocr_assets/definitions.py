"""The code location: every asset, check, job and resource of the pipeline."""

import dagster as dg

from ocr_assets import inputs, phase01_regions
from ocr_resources import build_resources
from ocr_resources.settings import current_settings

demo_inputs_job = dg.define_asset_job(
    "demo_inputs",
    selection=dg.AssetSelection.groups(inputs.GROUP),
    description="Generate the embedded demo's input datasets.",
)

defs = dg.Definitions(
    assets=[*inputs.input_assets(), phase01_regions.region_risk, phase01_regions.region_buildings],
    jobs=[demo_inputs_job, phase01_regions.process_regions_job],
    resources=build_resources(current_settings()),
)
