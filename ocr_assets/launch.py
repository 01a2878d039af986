"""Submitting work to the Dagster instance and following it to the end (the CLI's and CI's path).

Nothing here executes the graph: jobs are queued with the instance's run coordinator, regions
are an asset backfill, and the daemon launches every run (the ``dagster.yaml`` queue limits
apply) and then, through the automation sensor, the fan-ins. So the UI shows a CLI run exactly
like one it launched. ``Session`` starts a daemon for the instance when none is running and
stops it afterwards; ``Follow`` prints progress and turns failures into one line each.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path

from ocr_core.errors import first_line
from ocr_resources.settings import PROJECT_DIR

WORKSPACE = PROJECT_DIR / "workspace.yaml"
HEARTBEAT_FRESH_S = 70  # daemons beat every 30 s
DAEMON_START_TIMEOUT_S = 180
FAN_IN_START_TIMEOUT_S = 300  # how long the automation may take to request the fan-ins
TERMINAL_RUN = {"SUCCESS", "FAILURE", "CANCELED"}
DEATH_WORDS = ("terminated by signal", "is gone", "Detected run worker status")
IN_PROGRESS_RUN = {"QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING", "MANAGED"}


class LaunchError(RuntimeError):
    """Work could not be submitted or followed; the message says why and what to do."""


def instance_home() -> Path:
    """$DAGSTER_HOME (default ``.dagster_home`` in the checkout); a new one gets the project's
    ``dagster.yaml`` (queue limits, run monitoring, launcher), an existing one keeps its own."""
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(PROJECT_DIR / ".dagster_home")))
    home.mkdir(parents=True, exist_ok=True)
    target = home / "dagster.yaml"
    if not target.exists():
        shutil.copyfile(PROJECT_DIR / "dagster.yaml", target)
    return home


def get_instance():
    import dagster as dg

    instance_home()
    return dg.DagsterInstance.get()


def daemon_running(instance) -> bool:
    """Whether every daemon the instance needs has beaten recently."""
    now = time.time()
    beats = instance.get_daemon_heartbeats()
    required = instance.get_required_daemon_types()
    return all(t in beats and now - beats[t].timestamp < HEARTBEAT_FRESH_S for t in required)


class Session:
    """The instance, with a daemon serving it for the duration of the ``with`` block."""

    def __init__(self, echo=print):
        self.instance = get_instance()
        self.echo = echo
        self._daemon: subprocess.Popen | None = None

    def __enter__(self) -> Session:
        if daemon_running(self.instance):
            self.echo("Using the running Dagster daemon.")
            return self
        self._start_daemon()
        return self

    def __exit__(self, *exc) -> None:
        if self._daemon is not None:
            self._wait_for_runs()
            self._stop_daemon()

    def _wait_for_runs(self, timeout_s: float = 120) -> None:
        """Let runs our daemon launched finish (they are its code server's children)."""
        from dagster import DagsterRunStatus, RunsFilter

        active = [s for s in DagsterRunStatus if s.value in IN_PROGRESS_RUN - {"QUEUED"}]
        deadline = time.monotonic() + timeout_s
        while self.instance.get_runs_count(RunsFilter(statuses=active)):
            if time.monotonic() > deadline:
                self.echo("Stopping the daemon with runs still in progress (see the UI).")
                return
            time.sleep(0.5)

    def _start_daemon(self) -> None:
        home = Path(self.instance.root_directory)
        log_path = home / "daemon.log"
        self.echo(f"Starting the Dagster daemon (log: {log_path}) ...")
        self.instance.wipe_daemon_heartbeats()
        with open(log_path, "ab") as log:
            self._daemon = subprocess.Popen(
                [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", str(WORKSPACE)],
                cwd=PROJECT_DIR,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # our signals go to the CLI, which cancels cleanly
            )
        deadline = time.monotonic() + DAEMON_START_TIMEOUT_S
        while not daemon_running(self.instance):
            if self._daemon.poll() is not None:
                tail = log_path.read_text(errors="replace").splitlines()[-5:]
                raise LaunchError(
                    f"the Dagster daemon exited at start (status {self._daemon.returncode}); "
                    f"see {log_path}: {' | '.join(tail)}"
                )
            if time.monotonic() > deadline:
                self._stop_daemon()
                raise LaunchError(f"the Dagster daemon did not start in time; see {log_path}")
            time.sleep(0.5)

    def _stop_daemon(self) -> None:
        proc, self._daemon = self._daemon, None
        assert proc is not None
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=60)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        self.instance.wipe_daemon_heartbeats()

    # ------------------------------------------------------------------ submitting work

    def submit_job(self, job_name: str, tags: dict[str, str] | None = None) -> str:
        """Queue one run of ``job_name`` of the code location; its run id."""
        import json

        from dagster._cli.job import execute_launch_command
        from dagster_shared.cli import WorkspaceOpts

        run = execute_launch_command(
            instance=self.instance,
            workspace_opts=WorkspaceOpts(workspace=[str(WORKSPACE)]),
            job_name=job_name,
            tags=json.dumps(tags or {}),
        )
        return run.run_id

    def submit_region_backfill(
        self, defs, keys: Sequence, regions: Sequence[str], tags: dict[str, str], title: str
    ) -> str:
        """An asset backfill of ``keys`` for ``regions`` (as the UI's "Materialize" of
        partitions makes it); the daemon launches one run per region. Its id."""
        from dagster._core.execution.backfill import PartitionBackfill

        backfill_id = uuid.uuid4().hex[:8]
        backfill = PartitionBackfill.from_asset_partitions(
            backfill_id=backfill_id,
            asset_graph=defs.resolve_asset_graph(),
            partition_names=list(regions),
            asset_selection=list(keys),
            backfill_timestamp=time.time(),
            tags=tags,
            dynamic_partitions_store=self.instance,
            all_partitions=False,
            title=title,
            description=None,
            run_config=None,
        )
        self.instance.add_backfill(backfill)
        return backfill_id

    def cancel(self, backfill_id: str | None, run_ids: Iterable[str]) -> int:
        """Cancel a backfill and every unfinished run listed; how many runs were canceled."""
        from dagster._core.execution.backfill import BulkActionStatus

        run_ids = list(run_ids)
        if backfill_id:
            backfill = self.instance.get_backfill(backfill_id)
            if backfill and backfill.status == BulkActionStatus.REQUESTED:
                self.instance.update_backfill(backfill.with_status(BulkActionStatus.CANCELING))
            run_ids += [r.run_id for r in backfill_runs(self.instance, backfill_id)]
        pending = []
        for run_id in dict.fromkeys(run_ids):
            run = self.instance.get_run_by_id(run_id)
            if run and not run.is_finished:
                self.instance.run_coordinator.cancel_run(run_id)
                pending.append(run_id)
        canceled = len(pending)
        deadline = time.monotonic() + 90
        while pending and time.monotonic() < deadline:
            pending = [r for r in pending if not self.instance.get_run_by_id(r).is_finished]
            time.sleep(0.5)
        return canceled


# ---------------------------------------------------------------------------- following work


@dataclass
class Outcome:
    done: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # label -> one line
    canceled: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.canceled


def failure_lines(instance, run_id: str) -> list[str]:
    """One line per failed step of a run (step, partition, cause), or the run's own reason."""
    from dagster import DagsterEventType

    run = instance.get_run_by_id(run_id)
    partition = run.tags.get("dagster/partition", "") if run else ""
    if run and not partition and "dagster/asset_partition_range_start" in run.tags:
        partition = "{}…{}".format(
            run.tags["dagster/asset_partition_range_start"],
            run.tags["dagster/asset_partition_range_end"],
        )
    where = f" for region {partition}" if partition else ""
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
    for record in instance.get_records_for_run(
        run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION
    ).records:
        data = record.event_log_entry.dagster_event.event_specific_data
        if not data.passed:
            lines.append(
                f"check {data.check_name} of {data.asset_key.to_user_string()} failed: "
                f"{first_line(data.description or '')}"
            )
    if lines:
        return lines
    # No step failed: the run itself died. Prefer the event that says why (a signal, the run
    # monitor's verdict) over the run failure's generic "marked as failed from outside".
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
    status = run.status.value if run else "lost"
    return [f"run {run_id[:8]}{where}: {reason or status}"]


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
