"""A deployment's instance (``dagster.yaml``) and workspace (``workspace.yaml``) files.

Local use keeps the project's ``dagster.yaml`` as it is (SQLite in ``$DAGSTER_HOME``). A
deployed environment takes the same run launcher, queue, fan-in writer limit and run
monitoring, and adds: PostgreSQL storage (``dagster-postgres``; the password is an ``env``
reference, so no file holds it), compute logs on S3 (``dagster-aws`` ``S3ComputeLogManager``),
its own run limit, and run retries for runs whose process died (a failed step is never retried
this way: bad input stays failed, transient errors have the region steps' RetryPolicy).
"""

from __future__ import annotations

import copy
import os
import tempfile
from pathlib import Path

import yaml

from ocr_deploy.deployment import Deployment
from ocr_resources.settings import PROJECT_DIR, Settings

BASE_INSTANCE = PROJECT_DIR / "dagster.yaml"
LOCATION_NAME = "ocr"
RUN_RETRIES = 2  # runs whose worker died (a lost VM, an OOM kill): relaunched this often


def instance_config(settings: Settings, deployment: Deployment) -> dict:
    """The instance settings of ``deployment``: the project's, with the deployed sections."""
    config = copy.deepcopy(yaml.safe_load(BASE_INSTANCE.read_text()))
    runs = config["concurrency"]["runs"]
    runs["max_concurrent_runs"] = deployment.max_runs
    for limit in runs["tag_concurrency_limits"]:
        if limit["key"] == "dagster/backfill":
            limit["limit"] = deployment.max_runs
    if deployment.storage == "postgres":
        config["storage"] = {
            "postgres": {
                "postgres_db": {
                    "hostname": deployment.pg_host,
                    "port": deployment.pg_port,
                    "username": deployment.pg_user,
                    "password": {"env": Deployment.PASSWORD_VARIABLE},
                    "db_name": deployment.pg_db,
                    # SQLAlchemy 2.1 would take psycopg 3; dagster-postgres ships psycopg2.
                    "scheme": "postgresql+psycopg2",
                }
            }
        }
        config["run_retries"] = {
            "enabled": True,
            "max_retries": RUN_RETRIES,
            "retry_on_asset_or_op_failure": False,
        }
    if deployment.log_bucket:
        logs: dict = {
            "bucket": deployment.log_bucket,
            "prefix": deployment.log_prefix,
            "local_dir": str(deployment.home / "compute-logs"),
            "skip_empty_files": True,
            "upload_interval": 30,
            "region": settings.s3_region,
        }
        if settings.s3_endpoint_url:
            logs["endpoint_url"] = settings.s3_endpoint_url
            logs["use_ssl"] = settings.s3_endpoint_url.startswith("https://")
        config["compute_logs"] = {
            "module": "dagster_aws.s3.compute_log_manager",
            "class": "S3ComputeLogManager",
            "config": logs,
        }
    return config


def workspace_config(deployment: Deployment) -> dict:
    """The webserver's and daemon's workspace: the code location's gRPC server."""
    return {
        "load_from": [
            {
                "grpc_server": {
                    "host": "127.0.0.1",
                    "port": deployment.code_port,
                    "location_name": LOCATION_NAME,
                }
            }
        ]
    }


def write_instance(settings: Settings, deployment: Deployment) -> Path:
    """Write ``dagster.yaml`` and ``workspace.yaml`` into the deployment's home (each file
    replaced whole, so a service starting beside this never reads half of one)."""
    home = deployment.home
    home.mkdir(parents=True, exist_ok=True)
    _write_yaml(home / "dagster.yaml", instance_config(settings, deployment))
    _write_yaml(home / "workspace.yaml", workspace_config(deployment))
    return home


def _write_yaml(path: Path, content: dict) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as out:
            yaml.safe_dump(content, out, sort_keys=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
