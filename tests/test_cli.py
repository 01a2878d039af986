"""The user-facing commands, through a real instance and daemon: the demo, ``run --changed``,
``status``, and run health (SIGTERM cancels, a killed run is failed and the next one runs).

One daemon serves the module (the commands find it and reuse it, as they would a running
``./dev ui``); it is stopped by process id at the end.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
from daemon_process import running_daemon
from input_edits import rewrite_dataset
from processes import PROJECT
from test_input_validation import _set_30m

from ocr_core import raster_store
from ocr_core.schema import SCOTT_2024 as SCOTT
from ocr_core.storage import Storage
from ocr_resources.run_coordinator import WRITER_TAG
from ocr_resources.run_launcher import run_worker_pid

REGION = "y2_x1"  # whose input the --changed test edits (read by _set_30m)
OTHER = "y2_x2"


def _cli(env: dict, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ocr_assets.cli", *args],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("cli")
    (base / "home").mkdir()
    (base / "home" / "dagster.yaml").write_text((PROJECT / "dagster.yaml").read_text())
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCR_")}
    env |= {
        "OCR_STORAGE_ROOT": str(base / "root"),
        "DAGSTER_HOME": str(base / "home"),
        "OCR_AUTOMATION_INTERVAL_S": "5",
        # OTHER's region step waits while this file exists, so a signal always finds it running
        "OCR_FAULTS": json.dumps({"hold_regions": {OTHER: str(base / "hold-other")}}),
    }
    return env


@pytest.fixture(scope="module")
def instance(cli_env):
    inst = dg.DagsterInstance.from_config(cli_env["DAGSTER_HOME"])
    yield inst
    inst.dispose()


@pytest.fixture(scope="module")
def daemon(cli_env, instance):
    """``dagster-daemon`` for the module's instance, stopped by pid at the end."""
    with running_daemon(cli_env, instance, "workspace.yaml") as proc:
        yield proc


@pytest.fixture(scope="module")
def demo_output(cli_env, daemon) -> str:
    proc = _cli(cli_env, "demo", "--regions", REGION, OTHER)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "Using the running Dagster daemon." in proc.stdout
    return proc.stdout


def _region_runs(instance, region: str) -> list:
    records = instance.get_run_records(dg.RunsFilter(tags={"dagster/partition": region}))
    return [r.dagster_run for r in sorted(records, key=lambda r: r.create_timestamp)]


def test_demo_command_reports_where_outputs_are(demo_output, cli_env):
    root = cli_env["OCR_STORAGE_ROOT"]
    assert f"risk raster (icechunk): {root}/output/fire-risk/tensor/qa/ocr.icechunk" in demo_output
    assert "wrote region_id (y2_x1)" in demo_output and "wrote region_id (y2_x2)" in demo_output
    assert "2 of 12 valid regions committed" in demo_output
    assert "y2_x1.parquet" in demo_output and "./dev ui" in demo_output
    vector = f"{root}/output/fire-risk/vector/qa"
    for line in (
        f"consolidated buildings: {vector}/geoparquet/consolidated-buildings.parquet",
        f"partitioned buildings: {vector}/geoparquet/buildings.parquet",
        "summary stats counties:",
        "summary stats nation:",
        f"analysis files: {vector}/region-analysis/ (15 files",
        f"PMTiles regions: {vector}/pmtiles/regions.pmtiles",
        f"PMTiles buildings: {vector}/pmtiles/buildings.pmtiles",
        f"PMTiles building_centroids: {vector}/pmtiles/building_centroids.pmtiles",
        f"raster pyramid (zarr v3): {root}/output/fire-risk/pyramid/qa/pyramid.zarr",
    ):
        assert line in demo_output, line


def test_every_demo_run_was_queued_and_launched_by_the_daemon(demo_output, instance):
    runs = [r.dagster_run for r in instance.get_run_records()]
    assert runs and all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
    assert all(".dagster/grpc_info" in r.tags for r in runs)  # launched, not run in process
    by_job = {r.job_name for r in runs}
    assert {"generate_demo_inputs", "observe_region_inputs"} <= by_job
    regions = [r for r in runs if "dagster/partition" in r.tags]
    assert sorted(r.tags["dagster/partition"] for r in regions) == [REGION, OTHER]
    assert len({r.tags["dagster/backfill"] for r in regions}) == 1  # one backfill
    assert not any(WRITER_TAG in r.tags for r in regions)
    fan_in = [r for r in runs if r.tags.get("dagster/from_automation_condition")]
    assert len(fan_in) == 1
    assert fan_in[0].tags[WRITER_TAG] == "qa"  # the environment of the code location
    assert {k.to_user_string() for k in fan_in[0].asset_selection} >= {
        "buildings_geoparquet",
        "region_summary_stats",
        "building_pmtiles",
        "building_centroid_pmtiles",
        "regional_pmtiles",
    }


def test_tile_builds_of_the_fan_in_run_overlap(demo_output, instance):
    """Building and centroid tiles run at the same time (one process each)."""
    (run,) = [
        r.dagster_run
        for r in instance.get_run_records()
        if r.dagster_run.tags.get("dagster/from_automation_condition")
    ]
    spans = {}
    for record in instance.get_records_for_run(run.run_id).records:
        event = record.event_log_entry.dagster_event
        if event and event.event_type_value in ("STEP_START", "STEP_SUCCESS"):
            spans.setdefault(event.step_key, []).append(record.event_log_entry.timestamp)
    (a0, a1), (b0, b1) = spans["building_pmtiles"], spans["building_centroid_pmtiles"]
    assert a0 < b1 and b0 < a1


def test_changed_reruns_exactly_the_region_whose_input_changed(demo_output, cli_env, instance):
    root = Path(cli_env["OCR_STORAGE_ROOT"])
    storage = Storage(str(root))
    before = raster_store.committed_regions(storage)
    consolidated = len(
        instance.fetch_materializations(dg.AssetKey("buildings_geoparquet"), limit=10).records
    )
    mutate, _ = _set_30m("CRPS", SCOTT, [(300, 225)], 42.0)  # the region's centre
    rewrite_dataset(root, SCOTT, mutate)

    proc = _cli(cli_env, "run", "--changed")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert f"stale {REGION}: region_inputs has a new data version" in proc.stdout
    assert "1 region(s) done, 0 failed" in proc.stdout
    after = raster_store.committed_regions(storage)
    assert after[REGION] != before[REGION] and after[OTHER] == before[OTHER]
    assert (
        len(instance.fetch_materializations(dg.AssetKey("buildings_geoparquet"), limit=10).records)
        == consolidated + 1
    )
    status = _cli(cli_env, "status")
    assert "regions: 2 up to date, 0 stale, 10 missing" in status.stdout
    assert "stale" not in status.stdout.replace("0 stale", "")


def _wait_for_started_run(instance, region: str, seen: set, timeout: float = 120):
    """The first run of ``region`` not in ``seen`` once it is STARTED, and its pid."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        runs = [r for r in _region_runs(instance, region) if r.run_id not in seen]
        if runs and runs[-1].status == dg.DagsterRunStatus.STARTED:
            pid = run_worker_pid(instance, runs[-1].run_id)
            if pid:
                return runs[-1], pid
        time.sleep(0.2)
    raise AssertionError(f"no started run of {region}")


def _start_region_command(cli_env: dict, region: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "ocr_assets.cli", "region", region],
        cwd=PROJECT,
        env=cli_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_sigterm_cancels_a_kill_fails_and_the_next_run_succeeds(demo_output, cli_env, instance):
    # SIGTERM to the command: its run is canceled (not retried) and the command exits 130.
    hold = Path(json.loads(cli_env["OCR_FAULTS"])["hold_regions"][OTHER])
    hold.touch()
    seen = {r.run_id for r in _region_runs(instance, OTHER)}
    proc = _start_region_command(cli_env, OTHER)
    run, _ = _wait_for_started_run(instance, OTHER, seen)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 130, out[-2000:] + err[-2000:]
    assert "Interrupted: canceled" in err
    assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.CANCELED
    retries = instance.get_records_for_run(
        run.run_id, of_type=dg.DagsterEventType.STEP_UP_FOR_RETRY
    ).records
    assert retries == []

    # kill -9 of the run's process: the run is failed within 2 minutes, the command says so.
    seen = {r.run_id for r in _region_runs(instance, OTHER)}
    proc = _start_region_command(cli_env, OTHER)
    run, pid = _wait_for_started_run(instance, OTHER, seen)
    os.kill(pid, signal.SIGKILL)
    killed_at = time.time()
    deadline = killed_at + 120
    while instance.get_run_by_id(run.run_id).status != dg.DagsterRunStatus.FAILURE:
        assert time.time() < deadline, "a killed run was not failed within 2 minutes"
        time.sleep(1)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 1, out[-2000:] + err[-2000:]
    assert f"FAILED run {run.run_id[:8]} for region {OTHER}:" in err
    # the code server or the run monitor, whichever notices first, says why
    assert "signal 9 (SIGKILL)" in err or f"process {pid} is gone" in err

    # the queue is free: the next run launches and succeeds, and the fan-ins follow
    hold.unlink()
    proc = _cli(cli_env, "region", OTHER)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert _region_runs(instance, OTHER)[-1].status == dg.DagsterRunStatus.SUCCESS


def test_unknown_region_is_refused_before_any_work(cli_env, tmp_path):
    env = cli_env | {"OCR_STORAGE_ROOT": str(tmp_path / "root")}
    proc = _cli(env, "demo", "--regions", "y0_x1", timeout=120)
    assert proc.returncode == 2
    assert "region 'y0_x1' holds no data on the demo grid" in proc.stderr
    assert not (tmp_path / "root").exists()
