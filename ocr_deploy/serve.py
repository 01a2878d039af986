"""Start one service of an environment's deployment: ``ocr-dagster deploy serve SERVICE``.

A deployment is three long-running processes on one host, each started by this command with
the same env file (``OCR_ENV_FILE``, one of ``deploy/env/*.env``) and the secrets in its
environment:

- ``code-server``: the code location (``ocr_assets.definitions``) as a gRPC server on loopback;
  it launches the runs, so restarting it with new code deploys that code;
- ``daemon``: the run queue, backfills, run monitoring and retries, the automation sensor;
- ``webserver``: the UI and the GraphQL API that ``deploy run`` (CI) talks to.

Each writes the instance and workspace files first (the same content from each), and on
PostgreSQL creates the instance's tables under a database lock, so the three can start in any
order; then it replaces itself with the Dagster process (so a service manager's stop signal
reaches Dagster directly).
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path
from typing import NoReturn

from ocr_deploy.deployment import Deployment
from ocr_deploy.instance import LOCATION_NAME, write_instance
from ocr_resources.settings import Settings, with_env_file

SERVICES = ("code-server", "daemon", "webserver")
CODE_SERVER_WAIT_S = 600
_SCHEMA_LOCK = 0x0C5D_A657  # PostgreSQL advisory lock held while the instance's tables are made


def service_command(service: str, deployment: Deployment) -> list[str]:
    """The Dagster command line of ``service`` in ``deployment``."""
    bin_dir = Path(sys.executable).parent
    workspace = str(deployment.home / "workspace.yaml")
    if service == "code-server":
        return [
            str(bin_dir / "dagster"),
            *("code-server", "start", "-m", "ocr_assets.definitions"),
            *("-h", "127.0.0.1", "-p", str(deployment.code_port)),
            *("--location-name", LOCATION_NAME),
        ]
    if service == "daemon":
        return [str(bin_dir / "dagster-daemon"), "run", "-w", workspace]
    if service == "webserver":
        return [
            str(bin_dir / "dagster-webserver"),
            *("-w", workspace, "-h", deployment.host, "-p", str(deployment.port)),
        ]
    raise ValueError(f"unknown service {service!r}: use one of {', '.join(SERVICES)}")


def prepare(environ: dict[str, str]) -> tuple[Settings, Deployment, dict[str, str]]:
    """Settings, deployment and the environment the service runs with: the process's
    environment over its env file, ``DAGSTER_HOME`` set to the deployment's home."""
    merged = dict(with_env_file(environ))
    settings = Settings.from_env(merged)
    deployment = Deployment.from_env(settings, merged)
    merged["DAGSTER_HOME"] = str(deployment.home)
    return settings, deployment, merged


def create_schema(deployment: Deployment, environ: dict[str, str]) -> None:
    """Make the instance's tables once, under an advisory lock: two services starting at the
    same time on a new database would otherwise both try to create them."""
    if deployment.storage != "postgres":
        return
    import psycopg2
    from dagster import DagsterInstance

    connection = psycopg2.connect(
        host=deployment.pg_host,
        port=deployment.pg_port,
        user=deployment.pg_user,
        password=environ[Deployment.PASSWORD_VARIABLE],
        dbname=deployment.pg_db,
        connect_timeout=20,
    )
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", (_SCHEMA_LOCK,))
            try:
                with DagsterInstance.from_config(str(deployment.home)):
                    pass
            finally:
                cursor.execute("SELECT pg_advisory_unlock(%s)", (_SCHEMA_LOCK,))
    finally:
        connection.close()


def wait_for_code_server(deployment: Deployment, timeout_s: float = CODE_SERVER_WAIT_S) -> None:
    """Until the code location answers on its port: a webserver or daemon that starts first
    would otherwise show the location as failed until someone reloads it."""
    from dagster._grpc.client import DagsterGrpcClient

    client = DagsterGrpcClient(port=deployment.code_port, host="127.0.0.1")
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if client.health_check_query() == "SERVING":
                return
        except Exception:  # not listening yet
            pass
        if time.monotonic() > deadline:
            raise ValueError(
                f"the code server on 127.0.0.1:{deployment.code_port} did not answer within "
                f"{timeout_s:.0f} s: start `ocr-dagster deploy serve code-server` with the same "
                "env file (OCR_DAGSTER_CODE_PORT)"
            )
        time.sleep(0.5)


def serve(service: str) -> NoReturn:
    """Write the deployment's files, make its tables, then become the service's process."""
    if service not in SERVICES:
        raise ValueError(f"unknown service {service!r}: use one of {', '.join(SERVICES)}")
    settings, deployment, environ = prepare(dict(os.environ))
    home = write_instance(settings, deployment)
    create_schema(deployment, environ)
    if service != "code-server":
        wait_for_code_server(deployment)
    command = service_command(service, deployment)
    print(
        f"{service} of {settings.namespace} ({deployment.storage} instance in {home}): "
        + " ".join(command),
        file=sys.stderr,
        flush=True,
    )
    if shutil.which(command[0]) is None:
        raise ValueError(f"{command[0]} is missing: run ./dev setup")
    os.execve(command[0], command, environ)
