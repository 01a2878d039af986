"""The run launcher's health check: what lets the run monitor fail a run whose process died
when nothing else noticed (the code server that started it was killed too, or restarted)."""

from __future__ import annotations

import os
import subprocess
import time

import dagster as dg
import pytest
from dagster._core.events import DagsterEvent, DagsterEventType, EngineEventData
from dagster._core.launcher import WorkerStatus

from ocr_resources.run_launcher import HealthCheckedRunLauncher, run_worker_pid


@pytest.fixture
def instance(tmp_path):
    with dg.instance_for_test(temp_dir=str(tmp_path)) as inst:
        yield inst


def _started_run(instance, pid: int | None):
    """A run recorded as STARTED (now) whose worker reported ``pid`` (or nothing yet)."""

    @dg.op
    def noop():
        pass

    @dg.job
    def job():
        noop()

    run = instance.create_run_for_job(job)
    instance.handle_new_event(
        dg.EventLogEntry(
            error_info=None,
            level="DEBUG",
            user_message="",
            run_id=run.run_id,
            timestamp=time.time(),
            dagster_event=DagsterEvent(DagsterEventType.RUN_START.value, job_name=run.job_name),
        )
    )
    if pid is not None:
        _report_pid(instance, run, pid)
    return instance.get_run_by_id(run.run_id)


def _report_pid(instance, run, pid: int) -> None:
    instance.report_engine_event(
        f"Started process for run (pid: {pid}).", run, EngineEventData.in_process(pid)
    )


def _launcher(instance) -> HealthCheckedRunLauncher:
    launcher = HealthCheckedRunLauncher()
    launcher.register_instance(instance)
    return launcher


def test_a_dead_worker_is_reported_failed(instance):
    proc = subprocess.Popen(["true"])
    proc.wait()  # reaped: the pid names no process any more
    run = _started_run(instance, proc.pid)
    assert run.status == dg.DagsterRunStatus.STARTED
    assert run_worker_pid(instance, run.run_id) == proc.pid
    result = _launcher(instance).check_run_worker_health(run)
    assert result.status == WorkerStatus.FAILED
    assert result.msg is not None and f"process {proc.pid} is gone" in result.msg


def test_a_live_worker_is_running(instance):
    run = _started_run(instance, os.getpid())
    assert _launcher(instance).check_run_worker_health(run).status == WorkerStatus.RUNNING


def test_a_reused_pid_does_not_count_as_the_worker(instance):
    run = _started_run(instance, None)
    time.sleep(1.5)
    later = subprocess.Popen(["sleep", "30"])  # alive, but born after the run started
    try:
        _report_pid(instance, run, later.pid)
        result = _launcher(instance).check_run_worker_health(run)
        assert result.status == WorkerStatus.FAILED
    finally:
        later.kill()
        later.wait()


def test_a_run_that_has_not_reported_its_pid_is_left_running(instance):
    run = _started_run(instance, None)
    assert _launcher(instance).check_run_worker_health(run).status == WorkerStatus.RUNNING
