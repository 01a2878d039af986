"""Versions and staleness: Dagster knows which regions changed, from data versions alone.

A pipeline state (observed inputs, two regions, the fan-ins) is built once in a Dagster
instance; each test copies it and changes one thing: an input window of one region, the risk
method's code version, or nothing. ``pipeline_status`` (what ``ocr-dagster status`` and
``run --changed`` use) must then name exactly the regions and products to rerun.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from input_edits import rewrite_dataset
from test_input_validation import _set_30m

from ocr_assets.definitions import build_defs
from ocr_assets.staleness import pipeline_status
from ocr_core.schema import SCOTT_2024 as SCOTT
from ocr_resources.settings import Settings

REGION = "y2_x1"  # the region whose input a test edits (module name read by _set_30m)
OTHER = "y2_x2"
FAN_INS = {
    "buildings_geoparquet",
    "region_summary_stats",
    "regional_pmtiles",
    "building_tile_features",
    "building_pmtiles",
    "building_centroid_pmtiles",
}


class State:
    """A copy of the pipeline state: instance, inputs and outputs under one folder."""

    def __init__(self, base: Path):
        self.base = base
        (base / "home").mkdir(exist_ok=True)
        self.instance = dg.DagsterInstance.local_temp(tempdir=str(base / "home"))
        self.settings = Settings(
            grid="demo",
            storage_root=str(base / "out"),
            input_root=str(base / "inputs"),
            write_regional_stats=False,
            create_pyramid=False,
        )

    def defs(self):
        return build_defs(self.settings)

    def run(self, job: str, **kwargs) -> None:
        result = (
            self.defs().resolve_job_def(job).execute_in_process(instance=self.instance, **kwargs)
        )
        assert result.success, job

    def observe(self) -> None:
        self.run("observe_region_inputs")

    def status(self):
        return pipeline_status(self.instance, self.defs())

    def region_snapshot(self, region: str) -> str:
        records = self.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("region_risk"), asset_partitions=[region]),
            limit=1,
        ).records
        return str(latest_materialization(records).metadata["snapshot_id"].value)


def latest_materialization(records) -> dg.AssetMaterialization:
    assert records and records[0].asset_materialization is not None
    return records[0].asset_materialization


@pytest.fixture(scope="module")
def built(demo_inputs_root, tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("versions")
    shutil.copytree(demo_inputs_root, base / "inputs")
    state = State(base)
    state.observe()
    for region in (REGION, OTHER):
        state.run("process_regions", partition_key=region)
    state.run("aggregate_and_tile")
    state.instance.dispose()
    return base


@pytest.fixture
def state(built, tmp_path) -> Iterator[State]:
    shutil.copytree(built, tmp_path / "state")
    s = State(tmp_path / "state")
    yield s
    s.instance.dispose()


def test_a_fresh_pipeline_has_nothing_stale(state):
    status = state.status()
    assert status.stale_regions == {} and status.stale_fan_ins == {}
    assert status.fresh_regions == 2 and len(status.missing_regions) == 10


def test_rerun_with_nothing_changed_leaves_nothing_stale(state):
    before = state.region_snapshot(REGION)
    state.observe()
    state.run("process_regions", partition_key=REGION)
    assert state.region_snapshot(REGION) != before  # it really ran again
    status = state.status()
    assert status.stale_regions == {} and status.stale_fan_ins == {}


def test_one_regions_input_window_changed_marks_that_region_and_the_fan_ins(state):
    mutate, _ = _set_30m("CRPS", SCOTT, [(300, 225)], 42.0)  # the region's centre
    rewrite_dataset(state.base / "inputs", SCOTT, mutate)
    state.observe()
    status = state.status()
    assert set(status.stale_regions) == {REGION}
    assert any("region_inputs" in c for c in status.stale_regions[REGION])
    assert set(status.stale_fan_ins) == FAN_INS
    assert OTHER not in status.regions_to_run and status.regions_to_run == [REGION]


def test_a_new_risk_method_version_marks_every_region(state, monkeypatch):
    from ocr_core import versions

    monkeypatch.setitem(versions.CODE_VERSIONS, "region_risk", "2099.1.1")
    status = state.status()
    assert set(status.stale_regions) == {REGION, OTHER}
    assert all(any("code version" in c for c in causes) for causes in status.stale_regions.values())
    assert set(status.stale_fan_ins) == FAN_INS


def test_after_rerunning_the_changed_region_nothing_is_stale(state):
    mutate, _ = _set_30m("CRPS", SCOTT, [(300, 225)], 42.0)
    rewrite_dataset(state.base / "inputs", SCOTT, mutate)
    state.observe()
    state.run("process_regions", partition_key=REGION)
    assert state.status().stale_regions == {}
    state.run("aggregate_and_tile")
    assert state.status().stale_fan_ins == {}


def _data_version(state: State, key: str, region: str) -> str:
    records = state.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(key), asset_partitions=[region]), limit=1
    ).records
    return (latest_materialization(records).tags or {})["dagster/data_version"]


def test_a_run_of_two_regions_records_each_with_its_own_version(state):
    """Batched runs (OCR_REGIONS_PER_RUN) keep per-region versions: only the changed region's
    data version moves, and afterwards nothing is stale."""
    before = {r: _data_version(state, "region_buildings", r) for r in (REGION, OTHER)}
    mutate, _ = _set_30m("CRPS", SCOTT, [(300, 225)], 42.0)
    rewrite_dataset(state.base / "inputs", SCOTT, mutate)
    state.observe()
    state.run(
        "process_regions",
        tags={
            "dagster/asset_partition_range_start": REGION,
            "dagster/asset_partition_range_end": OTHER,
        },
    )
    after = {r: _data_version(state, "region_buildings", r) for r in (REGION, OTHER)}
    assert after[REGION] != before[REGION] and after[OTHER] == before[OTHER]
    assert state.status().stale_regions == {}
