"""Compute profiles and memory: every compute asset of the graph has a profile, the VM sizes,
region tasks per worker bounded by memory, and the DuckDB limits each asset's VM gets, down
to the task that opens the connections."""

from __future__ import annotations

import logging
import threading

import compute_fakes
import dagster as dg
import pytest
from compute_fakes import EXPECTED_VMS

from ocr_core.checks import CheckOutcome
from ocr_core.machines import VM_TYPES
from ocr_resources.compute import PROFILES, ComputeResource
from ocr_resources.duckdb import DuckDBResource

# The fixtures of tests/compute_fakes.py, found by pytest among this module's names.
fake_coiled = compute_fakes.fake_coiled


@pytest.mark.parametrize("grid", ["demo", "conus"])
def test_profiles_cover_exactly_the_graphs_compute_assets(grid):
    """Every asset of the code location that takes the compute resource has a profile, and
    the table has no other row; with the real (external) inputs that is every executable
    asset of the graph."""
    from ocr_assets.definitions import build_defs
    from ocr_resources.settings import Settings

    graph = build_defs(Settings(grid=grid)).resolve_asset_graph()
    uses_compute = {
        key.to_user_string()
        for assets_def in graph.assets_defs
        if "compute" in assets_def.required_resource_keys
        for key in assets_def.keys
    }
    assert set(PROFILES) == uses_compute
    if grid == "conus":
        assert set(PROFILES) == {key.to_user_string() for key in graph.executable_asset_keys}


def test_region_outputs_share_one_adaptive_cluster():
    region = {name: PROFILES[name] for name in ("region_risk", "region_buildings", "region_inputs")}
    assert {(p.vm_type, p.cluster_group, p.n_workers, p.task_gib) for p in region.values()} == {
        ("m8g.2xlarge", "region", (1, 40), 4)
    }
    others = [p for name, p in PROFILES.items() if name not in region]
    assert all(p.n_workers == 1 and p.task_gib is None for p in others)


# --- memory: region tasks per worker, DuckDB limits per VM -------------------------------------


def test_every_profile_vm_has_its_documented_size():
    used = {p.vm_type for p in PROFILES.values()} | {p.scheduler_vm_type for p in PROFILES.values()}
    assert used <= set(VM_TYPES)
    assert {name: (vm.vcpus, vm.memory_gib) for name, vm in VM_TYPES.items()} == EXPECTED_VMS


_running = 0
_most_running = 0
_lock = threading.Lock()


def hold_a_while(seconds: float) -> None:
    global _running, _most_running
    import time

    with _lock:
        _running += 1
        _most_running = max(_most_running, _running)
    time.sleep(seconds)
    with _lock:
        _running -= 1


@pytest.mark.parametrize(("resources", "at_once"), [({"MEMORY": 4}, 7), (None, 8)])
def test_worker_memory_bounds_region_tasks_at_once(resources, at_once):
    """A real worker the size of an m8g.2xlarge (8 threads, 28 GiB of MEMORY): 12 region tasks,
    at most 7 at a time; without the task resources its 8 threads would run 8."""
    global _most_running
    from distributed import LocalCluster

    from ocr_resources.compute import _gather

    _most_running = 0
    coiled_kwargs = ComputeResource(platform="coiled").cluster_kwargs(dg.AssetKey("region_risk"))
    worker_options = coiled_kwargs["worker_options"]
    cluster = LocalCluster(
        n_workers=1,
        threads_per_worker=8,
        processes=False,
        dashboard_address=None,  # pyright: ignore[reportArgumentType] (None: no dashboard)
        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
        silence_logs=logging.ERROR,
        **worker_options,
    )
    with cluster, cluster.get_client() as client:
        _gather(client, dg.AssetKey("region_risk"), hold_a_while, [(0.3,)] * 12, {}, resources)
    assert _most_running == at_once


DUCKDB_ASSETS = {
    # asset: the DuckDB memory_limit and threads its VM gets on Coiled
    "buildings_geoparquet": ("72GiB", 48),
    "region_summary_stats": ("192GiB", 64),
    "region_analysis_files": ("96GiB", 16),
    "regional_pmtiles": ("72GiB", 48),
    "building_tile_features": ("72GiB", 48),
}


@pytest.mark.parametrize("asset", sorted(DUCKDB_ASSETS))
def test_duckdb_limits_follow_the_assets_vm_on_coiled(asset):
    duckdb = DuckDBResource(temp_directory="/scratch")
    coiled = duckdb.config(ComputeResource(platform="coiled").vm(dg.AssetKey(asset)))
    assert (coiled.memory_limit, coiled.threads) == DUCKDB_ASSETS[asset]
    assert coiled.temp_directory == "/scratch"
    local = duckdb.config(ComputeResource().vm(dg.AssetKey(asset)))
    assert (local.memory_limit, local.threads, local.temp_directory) == ("4GB", None, "/scratch")


def test_duckdb_takes_the_limit_it_is_given():
    import duckdb as duck

    from ocr_core.machines import duckdb_memory_limit

    con = duck.connect(
        ":memory:", config={"memory_limit": duckdb_memory_limit(VM_TYPES["m8g.16xlarge"])}
    )
    assert con.sql("SELECT current_setting('memory_limit')").fetchone() == ("192.0 GiB",)


# --- the DuckDB limits reach the task of each asset that opens connections ------------------

_written_with: list = []
_check_names: list[str] = []


def writer_stub(writer: str, *args, **kwargs):
    """Stands in for an asset's writer on the cluster: records the DuckDBConfig it was given
    and returns the writer's result type, every check passed."""
    from ocr_core.analysis_files import AnalysisFiles
    from ocr_core.consolidate import ConsolidatedBuildings
    from ocr_core.duck import DuckDBConfig
    from ocr_core.statistics import SummaryStats
    from ocr_core.tiles import FeatureExport, TilesetResult
    from ocr_core.tileset_info import PMTilesInfo

    _written_with.extend(a for a in (*args, *kwargs.values()) if isinstance(a, DuckDBConfig))
    checks = {name: CheckOutcome(passed=True, details={}) for name in _check_names}
    if writer == "write_buildings_geoparquet":
        return ConsolidatedBuildings("/nowhere", "/nowhere", 0, 0, 0, 0, 0, 0.0, checks)
    if writer == "write_summary_stats":
        return SummaryStats("/nowhere", 0, {}, {}, checks)
    if writer == "write_analysis_files":
        return AnalysisFiles("/nowhere", {}, (), checks)
    if writer == "export_building_features":
        return FeatureExport(0, 0.0, {}, checks)
    info = PMTilesInfo(
        bytes=0, min_zoom=0, max_zoom=0, bounds=[], tiles=0, layers=[], layer_features={},
        features=0,
    )  # fmt: skip
    return TilesetResult("/nowhere", info, checks, 0.0)


DUCKDB_WRITERS = {
    "buildings_geoparquet": (
        "ocr_assets.phase02_aggregation",
        "consolidate",
        "write_buildings_geoparquet",
    ),
    "region_summary_stats": ("ocr_assets.phase02_aggregation", "statistics", "write_summary_stats"),
    "region_analysis_files": (
        "ocr_assets.phase02_aggregation",
        "analysis_files",
        "write_analysis_files",
    ),
    "regional_pmtiles": ("ocr_assets.phase03_tiles", "tiles", "build_regional_pmtiles"),
    "building_tile_features": ("ocr_assets.phase03_tiles", "tiles", "export_building_features"),
}


@pytest.mark.parametrize("platform", ["coiled", "local"])
@pytest.mark.parametrize("asset_name", sorted(DUCKDB_WRITERS))
def test_each_duckdb_asset_hands_its_vms_limits_to_its_task(
    fake_coiled, monkeypatch, tmp_path, asset_name, platform
):
    import functools
    import importlib

    from ocr_resources import InputCatalogResource, StorageResource, TippecanoeResource

    assets_module, core_module, writer = DUCKDB_WRITERS[asset_name]
    stub = functools.partial(writer_stub, writer)
    monkeypatch.setattr(importlib.import_module(f"ocr_core.{core_module}"), writer, stub)
    asset = getattr(importlib.import_module(assets_module), asset_name)
    _written_with.clear()
    _check_names[:] = [spec.name for spec in asset.check_specs]
    result = dg.materialize(
        [asset],
        resources={
            "storage": StorageResource(root=str(tmp_path)),
            "catalog": InputCatalogResource(root=str(tmp_path)),
            "duckdb": DuckDBResource(),
            "tippecanoe": TippecanoeResource(),
            "compute": ComputeResource(platform=platform),
        },
    )
    assert result.success
    [config] = _written_with
    expected = DUCKDB_ASSETS[asset_name] if platform == "coiled" else ("4GB", None)
    assert (config.memory_limit, config.threads) == expected
    [mat] = result.asset_materializations_for_node(asset_name)
    shown = mat.metadata["compute"].value
    assert isinstance(shown, dict)
    assert shown["duckdb_memory_limit"] == expected[0]
    assert shown["duckdb_threads"] == (expected[1] or "all cores")
