"""The run queue of the deployment: Dagster's, plus one writer per environment for the fan-ins.

Each fan-in asset (``ocr_core.fan_ins``) rewrites its environment's products whole, so two runs
building them for one environment at once leave whichever wrote last. Every run reaches the
queue through ``submit_run`` — jobs, the automation sensor, the UI's "Materialize", backfills,
``ocr-dagster`` — so there a run that materializes a fan-in is tagged
``ocr/fan-in-writer: <environment>``, and ``dagster.yaml`` admits one run per value of that tag
at a time: the next run for the environment waits in the queue, runs for other environments and
runs without fan-ins go on, and the steps inside a run still run side by side.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from dagster._core.run_coordinator import QueuedRunCoordinator, SubmitRunContext
from dagster._core.storage.dagster_run import DagsterRun

from ocr_core.fan_ins import FAN_INS

ENVIRONMENT_TAG = "ocr/environment"  # on the jobs' runs, and in the code location's metadata
NAMESPACE_TAG = "ocr/namespace"  # in the code location's metadata, and on deploy runs' backfills
WRITER_TAG = "ocr/fan-in-writer"


def fan_in_writer(
    asset_names: Iterable[str],
    tags: Mapping[str, str],
    location_environment: str | None,
    location_name: str | None,
) -> str | None:
    """The environment whose fan-ins a run writes (None if it materializes no fan-in): its
    ``ocr/environment`` tag, else its code location's environment, else the location's name."""
    if FAN_INS.isdisjoint(asset_names):
        return None
    return tags.get(ENVIRONMENT_TAG) or location_environment or location_name


def run_asset_names(instance, run: DagsterRun) -> set[str]:
    """The assets a run materializes, from its execution plan (a run of a whole job has no
    asset selection; a re-execution runs only some steps)."""
    if run.execution_plan_snapshot_id:
        plan = instance.get_execution_plan_snapshot(run.execution_plan_snapshot_id)
        keys = plan.asset_selection
    else:
        keys = run.asset_selection or ()
    return {key.to_user_string() for key in keys}


def location_environment(context: SubmitRunContext) -> str | None:
    """The environment the run's code location declares in its metadata, if it is loaded.
    (``DagsterInstance.submit_run`` admits only runs with a code location.)"""
    origin = context.dagster_run.remote_job_origin
    workspace = context.workspace
    if origin is None or not workspace.has_code_location(origin.location_name):
        return None
    location = workspace.get_code_location(origin.location_name)
    repository = origin.repository_origin.repository_name
    if not location.has_repository(repository):
        return None
    metadata = location.get_repository(repository).repository_snap.metadata or {}
    value = metadata.get(ENVIRONMENT_TAG)
    return str(value.value) if value is not None else None


class FanInWriterRunCoordinator(QueuedRunCoordinator):
    """Dagster's queue; a run that materializes a fan-in is tagged with its environment first."""

    def submit_run(self, context: SubmitRunContext) -> DagsterRun:
        run = context.dagster_run
        writer = fan_in_writer(
            run_asset_names(self._instance, run),
            run.tags,
            location_environment(context),
            run.remote_job_origin.location_name if run.remote_job_origin else None,
        )
        if writer and run.tags.get(WRITER_TAG) != writer:
            self._instance.add_run_tags(run.run_id, {WRITER_TAG: writer})
            context = context._replace(dagster_run=self._instance.get_run_by_id(run.run_id))
        return super().submit_run(context)
