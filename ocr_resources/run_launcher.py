"""The run launcher of the local deployment: Dagster's default, plus a health check.

Dagster's ``DefaultRunLauncher`` starts each run in a process of the code server but cannot
tell whether that process is still alive, so a run whose process was killed (``kill -9``, the
OOM killer) stayed STARTED for ever and held its slot in the run queue. This launcher reads
the process id the run reported when it started and answers the run monitor's health check;
the daemon then marks a run whose process is gone as failed and frees its slot.
"""

from __future__ import annotations

from dagster._core.launcher import CheckRunHealthResult, DefaultRunLauncher, WorkerStatus

STARTED_PROCESS = "Started process for run"


def run_worker_pid(instance, run_id: str) -> int | None:
    """The pid the run's worker process reported in its first engine event, if any yet."""
    from dagster import DagsterEventType

    records = instance.get_records_for_run(
        run_id, of_type=DagsterEventType.ENGINE_EVENT, limit=50
    ).records
    for record in records:
        entry = record.event_log_entry
        event = entry.dagster_event
        if event is None or not (event.message or "").startswith(STARTED_PROCESS):
            continue
        pid = event.engine_event_data.metadata.get("pid")
        if pid is not None:
            return int(pid.value if hasattr(pid, "value") else pid)
    return None


def process_alive(pid: int, started_by: float) -> bool:
    """Whether ``pid`` is a live (not zombie) process that existed at ``started_by`` — so a
    reused pid of a later process does not count."""
    import psutil

    try:
        proc = psutil.Process(pid)
        return proc.status() != psutil.STATUS_ZOMBIE and proc.create_time() <= started_by + 1
    except psutil.Error:
        return False


class HealthCheckedRunLauncher(DefaultRunLauncher):
    """``DefaultRunLauncher`` whose runs the run monitor can declare dead."""

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run) -> CheckRunHealthResult:
        pid = run_worker_pid(self._instance, run.run_id)
        if pid is None:  # not started yet: the monitor's start timeout covers that case
            return CheckRunHealthResult(WorkerStatus.RUNNING, "the run has not reported its pid")
        record = self._instance.get_run_record_by_id(run.run_id)
        started = record.start_time if record and record.start_time else None
        if started is None or process_alive(pid, started):
            return CheckRunHealthResult(WorkerStatus.RUNNING)
        return CheckRunHealthResult(
            WorkerStatus.FAILED,
            f"the run's process {pid} is gone (killed, or out of memory); rerun the run",
        )
