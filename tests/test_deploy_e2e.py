"""The qa deployment end to end, as processes: PostgreSQL (Debian's package) and the S3 server
(moto) on loopback, the qa code server, webserver and daemon started by ``ocr-dagster deploy
serve`` from the qa env file, and CI's ``ocr-dagster deploy run --dagster-url`` against it.

Two deploys of qa start at the same instant: one completes, the other is refused without
launching a run; what the deployment then reports (runs, materializations, check results)
is read back over GraphQL from PostgreSQL, and its compute logs from S3. Then ``deploy wipe``
of qa leaves staging and production byte for byte, and of production is refused.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import boto3
import pytest
from deployment import Deployment, deployment_running
from postgres_server import postgres_running
from processes import PROJECT, free_port

from ocr_core.fan_ins import FAN_INS
from ocr_core.storage import LAYOUT_PREFIXES, TENSOR_PREFIX, VECTOR_PREFIX
from ocr_deploy.graphql import GraphQL
from ocr_deploy.run import DEPLOY_TAG, OPTIONAL_PRODUCTS, REGION_ASSETS, missing_regions

REGIONS = ("y2_x1", "y2_x2")
BUCKET = "ocr-deploy-e2e"
PASSWORD = "e2e-only-not-a-real-secret"
CODE_REF = "0123456789abcdef0123456789abcdef01234567"
PRODUCTS = sorted(set(FAN_INS) - set(OPTIONAL_PRODUCTS))
ENV_FILES = PROJECT / "deploy" / "env"

READ_BACK = """
query ReadBack($tags: [ExecutionTag!], $regions: [AssetKeyInput!], $partitions: [String!],
               $products: [AssetKeyInput!]) {
  runsOrError(filter: {tags: $tags}) {
    __typename ... on Runs { results { runId status tags { key value } } }
  }
  regions: assetNodes(assetKeys: $regions) {
    assetKey { path } assetMaterializations(partitions: $partitions) { partition runId }
  }
  products: assetNodes(assetKeys: $products) {
    assetKey { path }
    assetMaterializations { runId }
    assetChecksOrError { __typename ... on AssetChecks { checks {
      name executionForLatestMaterialization { status runId evaluation { success } }
    } } }
  }
  instance { info }
}
"""


def _cli(*args: str, env: dict, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "ocr_assets.cli", *args],
        cwd=PROJECT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kwargs,
    )


@pytest.fixture(scope="module")
def qa_postgres():
    """The qa deployment's PostgreSQL server, with its database."""
    with postgres_running(password=PASSWORD) as pg:
        pg.create_database("ocr_qa")
        yield pg


@pytest.fixture(scope="module")
def qa(s3_server, demo_inputs_root, tmp_path_factory, qa_postgres):
    """The qa deployment on the demo grid (local Dask), outputs and compute logs on S3."""
    s3 = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    home = tmp_path_factory.mktemp("qa-deployment")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OCR_", "DAGSTER_"))}
    env.update(
        {
            "OCR_ENV_FILE": str(ENV_FILES / "ocr-coiled-s3.env"),
            # what this machine cannot reach: the demo grid on local Dask, S3 on loopback
            "OCR_GRID": "demo",
            "OCR_PLATFORM": "local",
            "OCR_STORAGE_ROOT": f"s3://{BUCKET}",
            "OCR_INPUT_ROOT": str(demo_inputs_root),
            "OCR_S3_ENDPOINT_URL": s3_server,
            "OCR_S3_REGION": "us-east-1",
            "OCR_DAGSTER_HOME": str(home),
            "OCR_DAGSTER_PG_HOST": qa_postgres.host,
            "OCR_DAGSTER_PG_PORT": str(qa_postgres.port),
            "OCR_DAGSTER_LOG_BUCKET": BUCKET,
            "OCR_DAGSTER_PORT": str(free_port()),
            "OCR_DAGSTER_CODE_PORT": str(free_port()),
            "OCR_WRITE_REGIONAL_STATS": "0",
            "OCR_CREATE_PYRAMID": "0",
            "OCR_CODE_REF": CODE_REF,
            "OCR_DAGSTER_PG_PASSWORD": PASSWORD,
        }
    )
    with deployment_running(env) as deployment:
        yield deployment


def _runner_env(qa: Deployment) -> dict:
    """CI's runner: no database password, no env file; only S3 access and the grid."""
    env = {k: v for k, v in qa.env.items() if not k.startswith(("OCR_DAGSTER_", "OCR_ENV"))}
    return env


@pytest.fixture(scope="module")
def two_deploys(qa):
    """Two ``deploy run`` processes for qa started at the same instant, waited for."""
    args = ("deploy", "run", "--dagster-url", qa.url, "--environment", "qa")
    started = time.monotonic()
    procs = [
        _cli(*args, "--regions", *REGIONS, "--expect-ref", CODE_REF, env=_runner_env(qa))
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=900)[0] for p in procs]
    elapsed = time.monotonic() - started
    print(f"qa deployment up in {qa.start_s:.1f} s; two deploys ended after {elapsed:.1f} s")
    for out in outs:
        print(out)
    return [(p.returncode, out) for p, out in zip(procs, outs, strict=True)]


def test_one_deploy_completes_and_the_other_is_refused(two_deploys):
    codes = sorted(code for code, _ in two_deploys)
    assert codes == [0, 1], two_deploys
    done = next(out for code, out in two_deploys if code == 0)
    refused = next(out for code, out in two_deploys if code == 1)
    assert "deploy succeeded" in done and f"regions {len(REGIONS)}/{len(REGIONS)} done" in done
    assert f"products {len(PRODUCTS)}/{len(PRODUCTS)} materialized" in done
    assert "another deploy of qa is in progress" in refused and "refused" in refused


def test_what_the_deployment_recorded_reads_back_from_postgres(qa, qa_postgres, two_deploys):
    data = qa.graphql(
        READ_BACK,
        {
            "tags": [{"key": DEPLOY_TAG, "value": "qa"}],
            "regions": [{"path": [name]} for name in REGION_ASSETS],
            "partitions": list(REGIONS),
            "products": [{"path": [name]} for name in PRODUCTS],
        },
    )
    runs = data["runsOrError"]["results"]
    # one run per region and one for the products, all of the one deploy that ran
    assert len(runs) == len(REGIONS) + 1 and {r["status"] for r in runs} == {"SUCCESS"}
    assert len({t["value"] for r in runs for t in r["tags"] if t["key"] == "dagster/backfill"}) == 1
    run_ids = {r["runId"] for r in runs}
    for node in data["regions"]:
        made = node["assetMaterializations"]
        assert sorted(m["partition"] for m in made) == sorted(REGIONS), node
        assert {m["runId"] for m in made} <= run_ids
    for node in data["products"]:
        # exactly one complete run wrote every product (the refused deploy wrote nothing)
        assert [m["runId"] for m in node["assetMaterializations"]] != [], node
        assert len(node["assetMaterializations"]) == 1, node
        checks = node["assetChecksOrError"]["checks"]
        assert checks, f"{node['assetKey']} has no checks"
        for check in checks:
            execution = check["executionForLatestMaterialization"]
            assert execution["status"] == "SUCCEEDED", (node["assetKey"], check)
    # The store behind the API is PostgreSQL: the runs are rows of its database.
    assert qa_postgres.count("ocr_qa", "SELECT count(*) FROM runs") == len(runs)
    assert "postgres" in data["instance"]["info"].lower()
    # The secret is referenced, never written: not in the instance file, the UI, the logs.
    assert PASSWORD not in (qa.home / "dagster.yaml").read_text()
    assert PASSWORD not in data["instance"]["info"]
    for service in ("code-server", "webserver", "daemon"):
        assert PASSWORD not in qa.log(service).read_text(errors="replace")


def test_compute_logs_are_on_s3(qa, two_deploys):
    s3 = boto3.client("s3", endpoint_url=qa.env["OCR_S3_ENDPOINT_URL"], region_name="us-east-1")
    prefix = "dagster/qa/compute-logs/storage/"
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    runs = {o["Key"][len(prefix) :].split("/")[0] for o in listed}
    assert len(runs) >= len(REGIONS) + 1, sorted(o["Key"] for o in listed)
    body = b"".join(s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read() for o in listed)
    assert b"region" in body  # the steps' own output, captured


def test_missing_regions_are_the_ones_no_qa_run_completed(qa, two_deploys):
    every = [f"y{y}_x{x}" for y in range(1, 4) for x in range(1, 5)]
    missing = missing_regions(GraphQL(qa.url), "qa", every)
    assert set(missing) == set(every) - set(REGIONS)
    assert missing_regions(GraphQL(qa.url), "qa/pr-9", list(REGIONS)) == list(REGIONS)


def test_a_deploy_for_another_environment_or_commit_is_refused(qa):
    args = ("deploy", "run", "--dagster-url", qa.url, "--regions", "y1_x1")
    staging = _cli(*args, "--environment", "staging", env=_runner_env(qa))
    out = staging.communicate(timeout=120)[0]
    assert staging.returncode == 1 and "serves qa (environment qa), not staging" in out, out
    stale = _cli(*args, "--environment", "qa", "--expect-ref", "f" * 40, env=_runner_env(qa))
    out = stale.communicate(timeout=120)[0]
    assert stale.returncode == 1 and f"runs commit {CODE_REF}" in out, out


def _objects(s3, prefix: str) -> dict[str, bytes]:
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    return {o["Key"]: s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read() for o in listed}


def test_wipe_of_qa_leaves_staging_and_production_and_production_is_refused(qa, two_deploys):
    s3 = boto3.client("s3", endpoint_url=qa.env["OCR_S3_ENDPOINT_URL"], region_name="us-east-1")
    assert _objects(s3, f"{VECTOR_PREFIX}/qa/"), "the deploy published no qa vector outputs"
    assert _objects(s3, f"{TENSOR_PREFIX}/qa/"), "the deploy published no qa region rasters"
    others = {}
    for namespace in ("staging", "production/v1.0.0"):
        for folder in LAYOUT_PREFIXES:
            key = f"{folder}/{namespace}/kept.bin"
            body = os.urandom(64)
            s3.put_object(Bucket=BUCKET, Key=key, Body=body)
            others[key] = body
    env = _runner_env(qa)
    wipe = _cli("deploy", "wipe", "--environment", "qa", env=env)
    out = wipe.communicate(timeout=120)[0]
    assert wipe.returncode == 0, out
    for folder in LAYOUT_PREFIXES:
        assert _objects(s3, f"{folder}/qa/") == {}, folder
    assert {k: v for k, v in _objects(s3, "").items() if k in others} == others
    refused = _cli("deploy", "wipe", "--environment", "production", env=env)
    out = refused.communicate(timeout=120)[0]
    assert refused.returncode == 2 and "production" in out, out
    assert {k: v for k, v in _objects(s3, "").items() if k in others} == others
