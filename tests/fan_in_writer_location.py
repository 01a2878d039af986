"""A small code location for the fan-in writer test: two assets named like fan-ins that take a
few seconds, a job of both, the environment ``qa`` in the location's metadata as the real
definitions declare it. The coordinator decides by asset name, so these stand in for the real
fan-ins without their inputs."""

import time

import dagster as dg

from ocr_resources.run_coordinator import ENVIRONMENT_TAG

SECONDS = 5


def _stand_in(name: str) -> dg.AssetsDefinition:
    @dg.asset(name=name)
    def stand_in() -> None:
        time.sleep(SECONDS)

    return stand_in


defs = dg.Definitions(
    assets=[_stand_in("buildings_geoparquet"), _stand_in("regional_pmtiles")],
    jobs=[dg.define_asset_job("aggregate_and_tile", selection=dg.AssetSelection.all())],
    executor=dg.in_process_executor,
    metadata={ENVIRONMENT_TAG: "qa"},
)
