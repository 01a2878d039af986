"""A deployment's own settings, and what a GitHub workflow run tells a deploy step.

A deployment (``ocr-dagster deploy serve``, ``deploy/README.md``) reads its instance settings
from the same env files as ``ocr_resources.settings``, by ``Deployment.from_env``:

| variable | default | meaning |
|---|---|---|
| OCR_DAGSTER_HOME | ~/.ocr-dagster/<environment> | the instance folder the services share |
| OCR_DAGSTER_STORAGE | sqlite | sqlite (local use) or postgres (deployed environments) |
| OCR_DAGSTER_PG_HOST, _PORT, _USER, _DB | localhost, 5432, ocr_dagster, ocr_<env> | PostgreSQL |
| OCR_DAGSTER_PG_PASSWORD | unset | the database password: only ever from the environment |
| OCR_DAGSTER_LOG_BUCKET, _PREFIX | unset, dagster/<environment>/compute-logs | S3 logs |
| OCR_DAGSTER_MAX_RUNS | 4 | runs in progress at once (each region run is one process) |
| OCR_DAGSTER_HOST, OCR_DAGSTER_PORT | 127.0.0.1, 3000 | where the webserver listens |
| OCR_DAGSTER_CODE_PORT | 4000 | the code location's gRPC port (on loopback) |

GitHub's own variables of a workflow run (GITHUB_EVENT_NAME, GITHUB_EVENT_PATH, GITHUB_SHA,
GITHUB_OUTPUT) are read by ``GitHubRun.from_env``, for ``ocr-dagster deploy plan``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ocr_resources.settings import Settings, SettingsError, Variables, with_env_file


@dataclass(frozen=True)
class Deployment:
    """A Dagster deployment's own settings: its instance storage, logs, limits and ports.

    One deployment per environment; its code location serves one namespace at a time (qa,
    or a PR's qa/pr-N; production/vX.Y.Z of the release deployed), set by the deploy."""

    home: Path
    storage: str = "sqlite"
    pg_host: str = "localhost"
    pg_port: int = 5432
    pg_user: str = "ocr_dagster"
    pg_db: str = "ocr_qa"
    log_bucket: str | None = None
    log_prefix: str = "dagster/qa/compute-logs"
    max_runs: int = 4
    host: str = "127.0.0.1"
    port: int = 3000
    code_port: int = 4000

    PASSWORD_VARIABLE = "OCR_DAGSTER_PG_PASSWORD"

    @classmethod
    def from_env(cls, settings: Settings, environ: Mapping[str, str] | None = None) -> Deployment:
        v = Variables(with_env_file(os.environ if environ is None else environ))
        environment = settings.environment
        storage = v.text("OCR_DAGSTER_STORAGE") or cls.storage
        if storage not in ("sqlite", "postgres"):
            raise SettingsError(
                f"OCR_DAGSTER_STORAGE={storage!r} is not an instance storage: use sqlite or "
                "postgres"
            )
        if storage == "postgres" and not v.text(cls.PASSWORD_VARIABLE):
            raise SettingsError(
                f"OCR_DAGSTER_STORAGE=postgres needs {cls.PASSWORD_VARIABLE} in the environment "
                "(the database password; never in a file)"
            )
        home = Path(v.text("OCR_DAGSTER_HOME") or Path.home() / ".ocr-dagster" / environment)
        deployment = cls(
            home=home.expanduser().resolve(),
            storage=storage,
            pg_host=v.text("OCR_DAGSTER_PG_HOST") or cls.pg_host,
            pg_port=v.whole("OCR_DAGSTER_PG_PORT", cls.pg_port),
            pg_user=v.text("OCR_DAGSTER_PG_USER") or cls.pg_user,
            pg_db=v.text("OCR_DAGSTER_PG_DB") or f"ocr_{environment}",
            log_bucket=v.text("OCR_DAGSTER_LOG_BUCKET"),
            log_prefix=v.text("OCR_DAGSTER_LOG_PREFIX") or f"dagster/{environment}/compute-logs",
            max_runs=v.whole("OCR_DAGSTER_MAX_RUNS", cls.max_runs),
            host=v.text("OCR_DAGSTER_HOST") or cls.host,
            port=v.whole("OCR_DAGSTER_PORT", cls.port),
            code_port=v.whole("OCR_DAGSTER_CODE_PORT", cls.code_port),
        )
        if deployment.max_runs < 1:
            raise SettingsError("OCR_DAGSTER_MAX_RUNS must be 1 or more")
        return deployment


@dataclass(frozen=True)
class GitHubRun:
    """What GitHub Actions tells a step about its run: the event and where outputs go."""

    event_name: str | None = None
    event_path: str | None = None
    sha: str | None = None
    output_path: str | None = None  # GITHUB_OUTPUT: the file of the step's key=value outputs

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> GitHubRun:
        env = os.environ if environ is None else environ
        return cls(
            *(
                env.get(name, "").strip() or None
                for name in (
                    "GITHUB_EVENT_NAME",
                    "GITHUB_EVENT_PATH",
                    "GITHUB_SHA",
                    "GITHUB_OUTPUT",
                )
            )
        )
