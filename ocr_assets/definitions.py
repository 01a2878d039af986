"""The code location: every asset, check, job and resource of the pipeline."""

import dagster as dg

from ocr_assets import inputs, phase01_regions
from ocr_assets.partitions import GRID
from ocr_resources import build_resources
from ocr_resources.settings import current_settings

generate_demo_inputs_job = dg.define_asset_job(
    "generate_demo_inputs",
    selection=dg.AssetSelection.groups(inputs.GROUP),
    description="Generate the embedded demo's input datasets.",
)

defs = dg.Definitions(
    assets=[*inputs.input_assets(), phase01_regions.region_risk, phase01_regions.region_buildings],
    jobs=[
        *([generate_demo_inputs_job] if GRID.name == "demo" else []),
        phase01_regions.process_regions_job,
    ],
    resources=build_resources(current_settings()),
)
