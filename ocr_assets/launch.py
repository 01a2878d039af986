"""Submitting work to the Dagster instance (the CLI's path); ``ocr_assets.follow`` follows it.

Nothing here executes the graph: jobs are queued with the instance's run coordinator, regions
are an asset backfill, and the daemon launches every run (the ``dagster.yaml`` queue limits
apply) and then, through the automation sensor, the fan-ins. So the UI shows a CLI run exactly
like one it launched. ``Session`` starts a daemon for the instance when none is running and
stops it afterwards.
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
from pathlib import Path

from ocr_assets.follow import IN_PROGRESS_RUN, backfill_runs
from ocr_resources.settings import PROJECT_DIR

WORKSPACE = PROJECT_DIR / "workspace.yaml"
HEARTBEAT_FRESH_S = 70  # daemons beat every 30 s
DAEMON_START_TIMEOUT_S = 180


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
    """Whether a ``dagster-daemon`` process serves the instance: every daemon it needs has
    beaten, and one of them recently. One process runs them all, each in its own thread, and a
    thread busy with a long tick (an automation evaluation on a loaded machine) beats late, so
    judging each type alone would start a second daemon beside a healthy one."""
    beats = instance.get_daemon_heartbeats()
    required = instance.get_required_daemon_types()
    if any(t not in beats for t in required):
        return False
    newest = max((beats[t].timestamp for t in required), default=time.time())
    return time.time() - newest < HEARTBEAT_FRESH_S


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
            pending = [r for r in pending if not self._finished(r)]
            time.sleep(0.5)
        return canceled

    def _finished(self, run_id: str) -> bool:
        run = self.instance.get_run_by_id(run_id)
        return run is None or run.is_finished
