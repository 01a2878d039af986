"""The executor of every run: a single step runs in the run's own process, several in parallel.

A region run has one step; Dagster's multiprocess executor would start a second interpreter
(and import the code location again, ~1.7 s of CPU) just to run it. The fan-in run has
several independent steps (building and centroid tiles, the pyramid) that should run at the
same time. This executor picks per run: in-process for one step, one process per step for
more. Retries (the region RetryPolicy) work the same in both.
"""

from __future__ import annotations

import dagster as dg
from dagster._core.definitions.executor_definition import (
    MULTI_PROC_CONFIG,
    _core_in_process_executor_creation,
    _core_multiprocess_executor_creation,
    multiple_process_executor_requirements,
)
from dagster._core.executor.base import Executor

MAX_CONCURRENT = 4


class StepCountExecutor(Executor):
    """In-process for a one-step plan, multiprocess otherwise."""

    def __init__(self, config: dict):
        # Steps mostly wait on their Dask or Coiled cluster: 4 at a time even on 2 cores, so
        # the two tile builds always find a slot together.
        config = {**config, "max_concurrent": config.get("max_concurrent") or MAX_CONCURRENT}
        self._multi = _core_multiprocess_executor_creation(config)
        self._single = _core_in_process_executor_creation({"retries": config["retries"]})

    @property
    def retries(self):
        return self._multi.retries

    @property
    def step_dependency_config(self):
        return self._multi.step_dependency_config

    def execute(self, plan_context, execution_plan):
        one_step = len(execution_plan.step_keys_to_execute) == 1
        return (self._single if one_step else self._multi).execute(plan_context, execution_plan)


@dg.executor(
    name="ocr_step_count",
    config_schema=MULTI_PROC_CONFIG,
    requirements=multiple_process_executor_requirements(),
)
def step_count_executor(init_context) -> StepCountExecutor:
    return StepCountExecutor(dict(init_context.executor_config))
