"""One writer per environment for the fan-ins: the run coordinator tags every run that builds a
fan-in with its environment and the queue admits one such run per environment at a time.

The rule runs first on its own and on the real jobs; then a real instance (the project's
``dagster.yaml``) and a real ``dagster-daemon`` serve a small code location whose assets carry
fan-in names: two runs for ``qa`` (the UI's ad-hoc "Materialize" without tags, and a job run
tagged as the jobs tag it) and one tagged ``staging``, submitted through the UI's GraphQL
mutation — the qa runs one after the other, the staging run beside one of them.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import dagster as dg
import pytest
import yaml
from daemon_process import running_daemon
from processes import PROJECT

from ocr_core.fan_ins import FAN_INS
from ocr_resources.run_coordinator import (
    ENVIRONMENT_TAG,
    WRITER_TAG,
    FanInWriterRunCoordinator,
    fan_in_writer,
    run_asset_names,
)

LOCATION = "fan_in_test"


def test_only_runs_with_a_fan_in_get_a_writer_the_tag_first_then_the_location():
    tagged = {ENVIRONMENT_TAG: "staging"}
    assert fan_in_writer({"region_risk", "region_buildings"}, tagged, "qa", "ocr") is None
    assert fan_in_writer(set(), {}, "qa", "ocr") is None
    assert fan_in_writer({"region_buildings", "risk_pyramid"}, tagged, "qa", "ocr") == "staging"
    assert fan_in_writer({"building_pmtiles"}, {}, "qa", "ocr") == "qa"
    assert fan_in_writer({"building_pmtiles"}, {}, None, "ocr") == "ocr"


def test_the_fan_in_names_are_the_unpartitioned_phase_02_03_assets_and_the_jobs_that_build_them(
    tmp_path,
):
    from ocr_assets.definitions import build_defs, fan_in_assets
    from ocr_resources.settings import Settings

    downstream = fan_in_assets()
    assert {a.key.to_user_string() for a in downstream} == FAN_INS
    assert all(a.partitions_def is None for a in downstream)

    defs = build_defs(Settings(environment="staging"))
    environment = defs.metadata[ENVIRONMENT_TAG].value
    assert environment == "staging"
    assert isinstance(environment, str)
    writers = {}
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        for job in defs.jobs or []:
            run = instance.create_run_for_job(defs.resolve_job_def(job.name))
            writers[job.name] = fan_in_writer(
                run_asset_names(instance, run), run.tags, environment, "ocr"
            )
    assert writers == {
        "generate_demo_inputs": None,
        "process_regions": None,
        "observe_region_inputs": None,
        "aggregate_and_tile": "staging",
        "write_regional_stats": "staging",
        "create_pyramid": "staging",
    }


def test_the_deployed_instance_keeps_the_coordinator_and_the_writer_limit(tmp_path):
    """The instance file a qa deployment writes (its env file's run limit; SQLite here, the
    PostgreSQL storage is tested in test_deploy_e2e.py) keeps the queue and the writer limit."""
    from ocr_deploy.deployment import Deployment
    from ocr_deploy.instance import write_instance
    from ocr_resources.settings import Settings

    environ = {
        "OCR_ENV_FILE": str(PROJECT / "deploy/env/ocr-coiled-s3.env"),
        "OCR_DAGSTER_STORAGE": "sqlite",
        "OCR_DAGSTER_HOME": str(tmp_path),
    }
    settings = Settings.from_env(environ)
    write_instance(settings, Deployment.from_env(settings, environ))
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert isinstance(instance.run_coordinator, FanInWriterRunCoordinator)
        queue = instance.get_concurrency_config().run_queue_config
    assert queue is not None
    assert queue.max_concurrent_runs == 16
    limits = {limit["key"]: limit for limit in queue.tag_concurrency_limits}
    assert limits["dagster/backfill"]["limit"] == 16
    assert limits[WRITER_TAG] == {
        "key": WRITER_TAG,
        "value": {"applyLimitPerUniqueValue": True},
        "limit": 1,
    }


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A fresh instance with the project's dagster.yaml, the test location's workspace and a
    daemon serving both; (instance, workspace file)."""
    base = tmp_path_factory.mktemp("fan-in-writer")
    home = base / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text((PROJECT / "dagster.yaml").read_text())
    workspace = base / "workspace.yaml"
    location = {
        "module_name": "fan_in_writer_location",
        "working_directory": str(Path(__file__).parent),
        "location_name": LOCATION,
    }
    workspace.write_text(yaml.safe_dump({"load_from": [{"python_module": location}]}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCR_")}
    env["DAGSTER_HOME"] = str(home)
    with (
        dg.DagsterInstance.from_config(str(home)) as instance,
        running_daemon(env, instance, workspace),
    ):
        yield instance, workspace


def _launch(context, job: str, assets: list[str] | None, tags: dict[str, str]) -> str:
    """A run launched with the UI's mutation (an asset selection: the UI's "Materialize")."""
    from dagster_graphql.client.query import LAUNCH_PIPELINE_EXECUTION_MUTATION
    from dagster_graphql.test.utils import execute_dagster_graphql

    selector: dict[str, object] = {
        "repositoryLocationName": LOCATION,
        "repositoryName": "__repository__",
        "pipelineName": job,
    }
    if assets is not None:
        selector["assetSelection"] = [{"path": [name]} for name in assets]
    result = execute_dagster_graphql(
        context,
        LAUNCH_PIPELINE_EXECUTION_MUTATION,
        variables={
            "executionParams": {
                "selector": selector,
                "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in tags.items()]},
            }
        },
    )
    launched = result.data["launchPipelineExecution"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    return launched["run"]["runId"]


def test_one_fan_in_writer_per_environment_at_a_time(served):
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import WorkspaceFileTarget

    instance, workspace = served
    with WorkspaceProcessContext(instance, WorkspaceFileTarget(paths=[str(workspace)])) as process:
        context = process.create_request_context()
        qa_adhoc = _launch(context, "__ASSET_JOB", ["buildings_geoparquet"], {})
        staging_tag = {ENVIRONMENT_TAG: "staging"}
        staging = _launch(context, "__ASSET_JOB", ["regional_pmtiles"], staging_tag)
        qa_job = _launch(context, "aggregate_and_tile", None, {ENVIRONMENT_TAG: "qa"})

    ids = [qa_adhoc, qa_job, staging]
    deadline = time.time() + 120
    while not all(instance.get_run_by_id(i).is_finished for i in ids):
        assert time.time() < deadline, "the runs did not finish in time"
        time.sleep(0.5)
    records = {i: instance.get_run_record_by_id(i) for i in ids}
    assert all(r.dagster_run.status == dg.DagsterRunStatus.SUCCESS for r in records.values())
    writers = {i: r.dagster_run.tags.get(WRITER_TAG) for i, r in records.items()}
    assert writers == {qa_adhoc: "qa", qa_job: "qa", staging: "staging"}

    span = {i: (r.start_time, r.end_time) for i, r in records.items()}
    (a0, a1), (b0, b1), (s0, s1) = span[qa_adhoc], span[qa_job], span[staging]
    assert a1 <= b0 or b1 <= a0, f"the qa runs overlapped: {span}"
    assert (s0 < a1 and a0 < s1) or (s0 < b1 and b0 < s1), f"staging ran alone: {span}"
