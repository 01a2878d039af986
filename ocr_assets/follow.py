"""Following work submitted to the Dagster instance to its end: progress, outcome, failures.

``follow_runs``, ``follow_backfill`` and ``follow_fan_ins`` poll the instance until the runs of
a job, a region backfill or the fan-ins the daemon launched are finished, showing one status
line (``Progress``), and return an ``Outcome``: what was done, canceled, and one line per
failure (``failure_lines``: the step, the region, the cause the code raised).
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC

from ocr_core.errors import first_line

FAN_IN_START_TIMEOUT_S = 300  # how long the automation may take to request the fan-ins
TERMINAL_RUN = {"SUCCESS", "FAILURE", "CANCELED"}
IN_PROGRESS_RUN = {"QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING", "MANAGED"}
DEATH_WORDS = ("terminated by signal", "is gone", "Detected run worker status")
# Exit statuses of a command that follows work (the CLI's and ``deploy run``'s).
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class Interrupted(Exception):
    """Ctrl-C or SIGTERM while following work."""


def raise_interrupted(signum, _frame):
    """A signal handler: SIGTERM (a stopped service, a cancelled CI job) as ``Interrupted``."""
    raise Interrupted(signal.Signals(signum).name)


@dataclass
class Outcome:
    done: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # label -> one line
    canceled: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.canceled


def failure_lines(instance, run_id: str) -> list[str]:
    """One line per failed step of a run (step, partition, cause) and per failed check, or the
    run's own reason when neither failed."""
    run = instance.get_run_by_id(run_id)
    partition = _partition(run.tags) if run else ""
    where = f" for region {partition}" if partition else ""
    lines = _step_failures(instance, run_id, where) + _check_failures(instance, run_id)
    if lines:
        return lines
    status = run.status.value if run else "lost"
    return [f"run {run_id[:8]}{where}: {_death_reason(instance, run_id) or status}"]


def _partition(tags: dict[str, str]) -> str:
    """A run's region, or its range of regions ``first…last``; empty if it has none."""
    partition = tags.get("dagster/partition", "")
    if not partition and "dagster/asset_partition_range_start" in tags:
        partition = "{}…{}".format(
            tags["dagster/asset_partition_range_start"],
            tags["dagster/asset_partition_range_end"],
        )
    return partition


def _step_failures(instance, run_id: str, where: str) -> list[str]:
    """``step where: cause`` for each failed step, or resources that failed to start."""
    from dagster import DagsterEventType

    lines = []
    for record in instance.get_records_for_run(
        run_id, of_type={DagsterEventType.STEP_FAILURE, DagsterEventType.RESOURCE_INIT_FAILURE}
    ).records:
        event = record.event_log_entry.dagster_event
        if event.event_type == DagsterEventType.RESOURCE_INIT_FAILURE:  # e.g. an unusable root
            error = event.event_specific_data.error
            cause = _root_cause(error) if error else "its resources failed to start"
        elif (data := event.step_failure_data).user_failure_data and (
            data.user_failure_data.description
        ):
            cause = data.user_failure_data.description
        else:
            cause = _root_cause(data.error) if data.error else "failed"
        lines.append(f"{event.step_key}{where}: {first_line(cause)}")
    return lines


def _check_failures(instance, run_id: str) -> list[str]:
    from dagster import DagsterEventType

    lines = []
    for record in instance.get_records_for_run(
        run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION
    ).records:
        data = record.event_log_entry.dagster_event.event_specific_data
        if not data.passed:
            lines.append(
                f"check {data.check_name} of {data.asset_key.to_user_string()} failed: "
                f"{first_line(data.description or '')}"
            )
    return lines


def _death_reason(instance, run_id: str) -> str | None:
    """Why a run with no failed step died: the event that says so (a signal, the run monitor's
    verdict) over the run failure's generic "marked as failed from outside"."""
    from dagster import DagsterEventType

    reason = None
    for record in instance.get_records_for_run(
        run_id, of_type={DagsterEventType.RUN_FAILURE, DagsterEventType.ENGINE_EVENT}
    ).records:
        event = record.event_log_entry.dagster_event
        message = first_line(event.message or record.event_log_entry.user_message or "")
        if event.event_type == DagsterEventType.RUN_FAILURE:
            reason = reason or message
        elif any(word in message for word in DEATH_WORDS):
            reason = message
    return reason


def _root_cause(error) -> str:
    """The message of the error the code raised, inside Dagster's wrappers (the code's own
    error says what to do; the lower-level error it was raised from does not)."""
    while error.cause is not None and (error.cls_name or "").startswith("Dagster"):
        error = error.cause
    return error.message


class Progress:
    """One status line, redrawn on a terminal (with a bar) or printed when it changes."""

    def __init__(self, stream=sys.stderr):
        self.stream = stream
        self.tty = stream.isatty()
        self.last = ""
        self.t0 = time.monotonic()

    def show(self, label: str, done: int, running: int, failed: int, total: int) -> None:
        elapsed = time.monotonic() - self.t0
        counts = f"{label}: {done}/{total} done, {running} running, {failed} failed"
        clock = f"{int(elapsed // 60):02d}:{int(elapsed % 60):02d}"
        if self.tty:
            width = 24
            filled = int(width * done / total) if total else width
            bar = "#" * filled + "." * (width - filled)
            self.stream.write(f"\r[{bar}] {counts} · {clock} ")
            self.stream.flush()
        elif counts != self.last:
            print(f"  {counts} ({clock})", file=self.stream, flush=True)
        self.last = counts

    def end(self) -> None:
        if self.tty and self.last:
            self.stream.write("\n")
            self.stream.flush()
        self.last = ""


def follow_runs(
    instance, run_ids: Sequence[str], label: str, progress: Progress, poll_s: float = 0.5
) -> Outcome:
    """Wait for the runs to finish, showing progress."""
    outcome = Outcome()
    while True:
        runs = [instance.get_run_by_id(r) for r in run_ids]
        states = [r.status.value for r in runs]
        done = states.count("SUCCESS")
        failed = sum(s in ("FAILURE", "CANCELED") for s in states)
        progress.show(label, done, sum(s in IN_PROGRESS_RUN for s in states), failed, len(runs))
        if all(s in TERMINAL_RUN for s in states):
            break
        time.sleep(poll_s)
    progress.end()
    for run in runs:
        _record(instance, outcome, run.tags.get("dagster/partition") or run.job_name, run)
    return outcome


def _record(instance, outcome: Outcome, name: str, run) -> None:
    """File a finished run under done, canceled or failed (with its one-line reasons)."""
    if run.status.value == "SUCCESS":
        outcome.done.append(name)
    elif run.status.value == "CANCELED":
        outcome.canceled.append(name)
    else:
        outcome.failed[name] = "; ".join(failure_lines(instance, run.run_id))


def backfill_runs(instance, backfill_id: str) -> list:
    """The runs the daemon launched for a backfill, oldest first."""
    from dagster import RunsFilter

    records = instance.get_run_records(RunsFilter(tags={"dagster/backfill": backfill_id}))
    return [r.dagster_run for r in sorted(records, key=lambda r: r.create_timestamp)]


def follow_backfill(
    instance,
    backfill_id: str,
    regions: Sequence[str],
    order: Sequence[str],
    progress: Progress,
    poll_s: float = 1.0,
) -> Outcome:
    """Wait for a region backfill: regions done / running / failed, then the outcome.
    ``order`` is the partitions' order (a run of several regions names a range of it)."""
    from dagster._core.execution.backfill import BulkActionStatus

    finished = {
        BulkActionStatus.COMPLETED,
        BulkActionStatus.COMPLETED_SUCCESS,
        BulkActionStatus.COMPLETED_FAILED,
        BulkActionStatus.FAILED,
        BulkActionStatus.CANCELED,
    }
    while True:
        backfill = instance.get_backfill(backfill_id)
        latest = _latest_by_region(backfill_runs(instance, backfill_id), order)
        states = {rid: run.status.value for rid, run in latest.items()}
        done = sum(s == "SUCCESS" for s in states.values())
        failed = sum(s in ("FAILURE", "CANCELED") for s in states.values())
        running = sum(s in IN_PROGRESS_RUN for s in states.values())
        progress.show("regions", done, running, failed, len(regions))
        if backfill.status in finished and running == 0:
            break
        time.sleep(poll_s)
    progress.end()
    outcome = Outcome()
    for rid in regions:
        run = latest.get(rid)
        if run is None:
            outcome.failed[rid] = f"region {rid}: not launched ({backfill.status.value} backfill)"
        else:
            _record(instance, outcome, rid, run)
    if backfill.failure_count and backfill.error:
        outcome.failed["backfill"] = first_line(backfill.error.message)
    return outcome


def _latest_by_region(runs: Iterable, order: Sequence[str]) -> dict:
    """The newest run of each region (``runs`` oldest first)."""
    position = {rid: i for i, rid in enumerate(order)}
    latest = {}
    for run in runs:
        for rid in run_regions(run, order, position):
            latest[rid] = run
    return latest


def run_regions(run, order: Sequence[str], position: dict | None = None) -> list[str]:
    """The regions a run materializes: its partition, or its range of ``order``."""
    if "dagster/partition" in run.tags:
        return [run.tags["dagster/partition"]]
    start = run.tags.get("dagster/asset_partition_range_start")
    end = run.tags.get("dagster/asset_partition_range_end")
    if start is None or end is None:
        return []
    position = position or {rid: i for i, rid in enumerate(order)}
    return list(order[position[start] : position[end] + 1])


def latest_materialization_time(instance, key) -> float | None:
    records = instance.fetch_materializations(key, limit=1).records
    return records[0].timestamp if records else None


def fan_in_runs(instance, keys: set, since: float) -> list:
    """Runs created after ``since`` that materialize any of ``keys`` (not region backfills)."""
    from datetime import datetime

    from dagster import RunsFilter

    created_after = datetime.fromtimestamp(since, tz=UTC)
    runs = instance.get_runs(RunsFilter(created_after=created_after))
    return [
        r
        for r in runs
        if r.asset_selection and set(r.asset_selection) & keys and "dagster/backfill" not in r.tags
    ]


def follow_fan_ins(
    instance, keys: set, since: float, progress: Progress, poll_s: float = 1.0
) -> Outcome:
    """Wait until the daemon has materialized every fan-in in ``keys`` after ``since``."""
    outcome = Outcome()
    start = time.monotonic()
    names = {k: k.to_user_string() for k in keys}
    while True:
        fresh = {k for k in keys if (latest_materialization_time(instance, k) or 0) > since}
        runs = fan_in_runs(instance, keys, since)
        running = [r for r in runs if r.status.value in IN_PROGRESS_RUN]
        failed_runs = [r for r in runs if r.status.value in ("FAILURE", "CANCELED")]
        progress.show("fan-ins", len(fresh), len(running), len(failed_runs), len(keys))
        if fresh == keys and not running:
            break
        if failed_runs and not running:
            for run in failed_runs:
                for line in failure_lines(instance, run.run_id):
                    outcome.failed[line.split(":")[0]] = line
            break
        if not runs and time.monotonic() - start > FAN_IN_START_TIMEOUT_S:
            outcome.failed["automation"] = (
                "the daemon did not request the fan-ins within "
                f"{FAN_IN_START_TIMEOUT_S} s; check that the sensor 'ocr_pipeline_automation' "
                "is running in the UI (Automation)"
            )
            break
        time.sleep(poll_s)
    progress.end()
    outcome.done = sorted(names[k] for k in fresh)
    return outcome
