"""One pipeline step in a process of its own, for the fault suite's kill trials.

    python tests/fault_worker.py STEP STORAGE_ROOT INPUTS_ROOT [REGION ...]

STEP: region (risk then buildings of each REGION), consolidate, summary (statistics and
analysis files), tiles (features, the two building tilesets, the regional one), pyramid.
``OCR_FAULTS`` may name a kill point, ``OCR_S3_ENDPOINT_URL`` an S3 server and
``OCR_ENVIRONMENT`` the namespace written.
"""

from __future__ import annotations

import os
import sys


def main(step: str, root: str, inputs: str, regions: list[str]) -> None:
    from ocr_core.catalog import InputCatalog
    from ocr_core.duck import DuckDBConfig
    from ocr_core.storage import Storage

    endpoint = os.environ.get("OCR_S3_ENDPOINT_URL")
    region = "us-east-1" if endpoint else Storage.s3_region
    environment = os.environ.get("OCR_ENVIRONMENT", "qa")
    storage = Storage(root, environment, s3_endpoint_url=endpoint, s3_region=region)
    catalog = InputCatalog(Storage(inputs, s3_endpoint_url=endpoint, s3_region=region))
    duck = DuckDBConfig(memory_limit="1GB", threads=1)
    if step == "region":
        from ocr_core.process_region import run_region_buildings, run_region_risk

        for region in regions:
            run_region_risk(region, "demo", catalog, storage)
            run_region_buildings(region, "demo", catalog, storage, accept_shrink=True)
    elif step == "consolidate":
        from ocr_core.consolidate import write_buildings_geoparquet

        write_buildings_geoparquet(storage, duck, accept_shrink=True)
    elif step == "summary":
        from ocr_core.analysis_files import write_analysis_files
        from ocr_core.statistics import write_summary_stats

        write_summary_stats(storage, catalog, duck)
        write_analysis_files(storage, duck)
    elif step == "tiles":
        from ocr_core import tiles
        from ocr_core.tippecanoe import Tippecanoe

        runner = Tippecanoe()
        tiles.export_building_features(storage, duck)
        tiles.build_building_pmtiles(storage, runner)
        tiles.build_centroid_pmtiles(storage, runner)
        tiles.build_regional_pmtiles(storage, runner, duck)
    elif step == "pyramid":
        from ocr_core.pyramid import write_pyramid

        write_pyramid(storage)
    else:
        raise SystemExit(f"unknown step {step!r}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:])
