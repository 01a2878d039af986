"""The whole demo graph under a root whose name has spaces, a quote and glob characters.

Every step lists folders and names files exactly, so ``[x]`` or ``*`` in the root is part of a
name, never a pattern (a glob over such a root finds nothing and the fan-ins would say the
regions are missing). Inputs and outputs share the root, as in ``./dev demo``.
"""

from __future__ import annotations

import shutil

import dagster as dg
import pyarrow.parquet as pq
import pytest

from ocr_assets.definitions import build_defs, fan_in_assets
from ocr_core import checks, raster_store
from ocr_core.report import outputs_report
from ocr_core.storage import Storage
from ocr_core.tileset_info import pmtiles_info
from ocr_resources.settings import Settings

ODD = "o c r [x] it's *"
REGIONS = ("y2_x1", "y3_x3")


@pytest.fixture(scope="module")
def odd_root(demo_inputs_root, tmp_path_factory):
    """(root, check evaluations) after every job of the demo graph ran in process."""
    base = tmp_path_factory.mktemp("odd")
    root = base / ODD
    shutil.copytree(demo_inputs_root, root)
    settings = Settings.from_env({"OCR_STORAGE_ROOT": str(root)})
    assert settings.storage_root == settings.inputs_root == str(root)
    defs = build_defs(settings)
    evaluations = []
    with dg.instance_for_test() as instance:

        def run(job: str, **kwargs):
            result = defs.resolve_job_def(job).execute_in_process(instance=instance, **kwargs)
            assert result.success, job
            evaluations.extend(result.get_asset_check_evaluations())

        run("observe_region_inputs", tags={"ocr/regions": ",".join(REGIONS)})
        for region in REGIONS:
            run("process_regions", partition_key=region)
        for job in ("aggregate_and_tile", "write_regional_stats", "create_pyramid"):
            run(job)
    assert sorted(p.name for p in base.iterdir()) == [ODD]  # nothing written beside the root
    return root, evaluations


def test_every_output_is_written_under_the_root(odd_root):
    root, _ = odd_root
    storage = Storage(str(root))
    assert sorted(raster_store.committed_regions(storage)) == sorted(REGIONS)
    regions = storage.list_files(storage.region_geoparquet_dir, ".parquet")
    assert [f.rsplit("/", 1)[-1] for f in regions] == [f"{r}.parquet" for r in sorted(REGIONS)]
    assert all(f.startswith(f"{root}/") for f in regions)
    for name in ("regions", "buildings", "building_centroids"):
        assert pmtiles_info(storage.pmtiles_uri(name))["features"] > 0, name
    analysis = storage.list_files(storage.region_analysis_dir, recursive=True)
    assert len(analysis) == 15
    assert storage.exists(f"{storage.pyramid_uri}/zarr.json")
    report = outputs_report(storage, "demo")
    assert "2 of 12 valid regions committed" in report and "y3_x3.parquet" in report


def test_building_counts_reconcile(odd_root):
    root, evaluations = odd_root
    storage = Storage(str(root))
    regions = storage.list_files(storage.region_geoparquet_dir, ".parquet")
    buildings = sum(pq.ParquetFile(f).metadata.num_rows for f in regions)
    assert buildings > 0
    assert pq.ParquetFile(storage.consolidated_buildings_uri).metadata.num_rows == buildings
    county_files = storage.list_files(storage.partitioned_buildings_uri, ".parquet", recursive=True)
    assert sum(pq.ParquetFile(f).metadata.num_rows for f in county_files) == buildings
    nation = pq.read_table(storage.summary_stats_uri("nation"), columns=["building_count"])
    assert nation.column("building_count").to_pylist() == [buildings]
    tiles = pmtiles_info(storage.pmtiles_uri("buildings"))
    assert tiles["layer_features"]["risk"] == buildings

    # the blocking checks ran in the fan-in run and passed; run again, they agree
    declared = {spec.name for asset in fan_in_assets() for spec in asset.check_specs}
    assert {e.check_name for e in evaluations} == declared and len(declared) == 8
    assert all(e.passed for e in evaluations)
    passed, details = checks.consolidated_matches_regions(storage)
    assert passed and details["region_rows"] == details["partitioned"]["rows"] == buildings
    passed, details = checks.summary_stats_consistent(storage)
    assert passed and details["region_buildings"] == buildings
