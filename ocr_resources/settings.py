"""The one place that decides the environment: every OCR_* variable is read and checked here.

| variable | default | meaning |
|---|---|---|
| OCR_ENVIRONMENT | qa | deployment namespace: qa, staging or production |
| OCR_VERSION | unset | SemVer (no leading v); required for production, which is versioned |
| OCR_PULL_REQUEST | unset | a QA pull request's number: outputs in its own namespace qa/pr-N |
| OCR_STORAGE_ROOT | ./data in the checkout | local folder or s3://bucket[/prefix] for all outputs |
| OCR_INPUT_ROOT | OCR_STORAGE_ROOT | where the input catalog's stores live |
| OCR_GRID | demo | demo (embedded, generated inputs) or conus |
| OCR_PLATFORM | local | local (Dask on this machine) or coiled |
| OCR_REGION_MAX_RETRIES | 2 | retries of a failed region step (linear backoff 5 s × attempt) |
| OCR_REGION_RETRY_DELAY_S | 5 | the backoff's unit: a retry waits this × the attempt number |
| OCR_S3_ENDPOINT_URL | unset | S3 API endpoint (a loopback server in tests, MinIO, ...) |
| OCR_S3_REGION | us-west-2 | S3 region |
| COILED_SOFTWARE_ENV_NAME | unset | Coiled software environment; unset: package sync (warned) |
| OCR_WRITE_REGIONAL_STATS | on for demo | also write the analysis downloads after the statistics |
| OCR_CREATE_PYRAMID | on for demo | also build the raster pyramid after the regions |
| OCR_AUTOMATION_INTERVAL_S | 10 | seconds between the daemon's evaluations of the fan-ins |
| OCR_REGIONS_PER_RUN | 1 | regions a backfill puts in one run (spreads a run's start-up cost) |
| OCR_TRIVIAL_COMPUTE | 0 | benchmarks only: region steps do no work (orchestration overhead) |
| OCR_FAULTS | unset | fault suite only: a JSON fault plan (ocr_core.faults); refused outside qa |
| OCR_CODE_REF | unset | the commit a deployment's code location runs (checked by deploy run) |
| OCR_ENV_FILE | unset | env files (``deploy/env/*.env``, ``:``-separated); the process's own win |

A deployment's own variables (OCR_DAGSTER_*: its instance storage, logs, limits and ports) are
read from the same env files by ``ocr_deploy.deployment.Deployment``, and GitHub's variables of
a workflow run by ``ocr_deploy.deployment.GitHubRun``.

Secrets (the database password, AWS and Coiled credentials) come only from the process
environment: an env file that sets one is refused.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import overload

from ocr_core.storage import SEMVER_RE, Storage

ENVIRONMENTS = ("qa", "staging", "production")
PLATFORMS = ("local", "coiled")
GRID_NAMES = ("demo", "conus")
PROJECT_DIR = Path(__file__).resolve().parent.parent
DEFAULT_LOCAL_ROOT = PROJECT_DIR / "data"


class SettingsError(ValueError):
    """A configuration value that cannot work; the message names the variable and the fix."""


class Variables:
    """Reads variables: blank is unset; a value not of its kind is a SettingsError naming it."""

    def __init__(self, env: Mapping[str, str]):
        self.env = env

    def text(self, name: str) -> str | None:
        value = self.env.get(name)
        return value.strip() if value and value.strip() else None

    @overload
    def whole(self, name: str, default: int) -> int: ...
    @overload
    def whole(self, name: str, default: None) -> int | None: ...
    def whole(self, name: str, default: int | None) -> int | None:
        value = self.text(name)
        try:
            return int(value) if value is not None else default
        except ValueError:
            raise SettingsError(f"{name}={value!r} is not a whole number") from None

    def switch(self, name: str) -> bool | None:
        value = self.text(name)
        if value is None:
            return None
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
        raise SettingsError(f"{name}={value!r} is not a switch: use 1 or 0")


@dataclass(frozen=True)
class Settings:
    environment: str = "qa"
    version: str | None = None
    pull_request: int | None = None
    storage_root: str = str(DEFAULT_LOCAL_ROOT)
    input_root: str | None = None
    grid: str = "demo"
    platform: str = "local"
    region_max_retries: int = 2
    region_retry_delay_s: float = 5.0
    s3_endpoint_url: str | None = None
    s3_region: str = "us-west-2"
    coiled_software: str | None = None
    write_regional_stats: bool | None = None  # None: on for the demo grid only
    create_pyramid: bool | None = None  # None: on for the demo grid only
    automation_interval_s: int = 10
    trivial_compute: bool = False
    regions_per_run: int = 1
    code_ref: str | None = None

    @property
    def analysis_files_on(self) -> bool:
        return (
            self.grid == "demo" if self.write_regional_stats is None else self.write_regional_stats
        )

    @property
    def pyramid_on(self) -> bool:
        return self.grid == "demo" if self.create_pyramid is None else self.create_pyramid

    def __post_init__(self) -> None:
        _check_name("OCR_ENVIRONMENT", self.environment, ENVIRONMENTS, "an environment")
        self._check_namespace()
        _check_name("OCR_GRID", self.grid, GRID_NAMES, "a grid")
        _check_name("OCR_PLATFORM", self.platform, PLATFORMS, "a platform")
        self._check_limits()
        _check_root("OCR_STORAGE_ROOT", self.storage_root)
        if self.input_root is not None:
            _check_root("OCR_INPUT_ROOT", self.input_root)

    def _check_namespace(self) -> None:
        """The version and pull request name a namespace the environment can have."""
        if self.version is not None and not SEMVER_RE.match(self.version):
            raise SettingsError(
                f"OCR_VERSION={self.version!r} is not a semantic version like 1.2.3 "
                "(no leading 'v')"
            )
        if self.pull_request is not None and (
            self.environment != "qa" or self.version is not None or self.pull_request < 1
        ):
            raise SettingsError(
                f"OCR_PULL_REQUEST={self.pull_request!r} names a QA pull request's own namespace "
                "(qa/pr-N): use a PR number of 1 or more with OCR_ENVIRONMENT=qa and no "
                "OCR_VERSION"
            )
        if self.environment == "production" and self.version is None:
            raise SettingsError(
                "OCR_ENVIRONMENT=production needs OCR_VERSION (e.g. 1.2.3): production "
                "outputs are versioned so a release never overwrites another"
            )

    def _check_limits(self) -> None:
        for variable, value, least in (
            ("OCR_REGIONS_PER_RUN", self.regions_per_run, 1),
            ("OCR_AUTOMATION_INTERVAL_S", self.automation_interval_s, 1),
            ("OCR_REGION_MAX_RETRIES", self.region_max_retries, 0),
            ("OCR_REGION_RETRY_DELAY_S", self.region_retry_delay_s, 0),
        ):
            if value < least:
                raise SettingsError(f"{variable} must be {least} or more")

    @property
    def inputs_root(self) -> str:
        return self.input_root or self.storage_root

    def storage(self, namespace: str | None = None, environment: str | None = None) -> Storage:
        """The output storage of this environment's namespace; or of ``namespace`` of
        ``environment`` (default: this one), e.g. ``qa/pr-12`` of qa, its own namespace if
        only ``environment`` is given (ValueError for a namespace not of that environment)."""
        own = Storage(
            root=self.storage_root,
            environment=self.environment,
            version=self.version,
            s3_endpoint_url=self.s3_endpoint_url,
            s3_region=self.s3_region,
            pull_request=self.pull_request,
        )
        if namespace is None and environment is None:
            return own
        environment = environment or self.environment
        return replace(own, environment=environment).with_namespace(namespace or environment)

    def input_storage(self) -> Storage:
        """Where the input catalog's stores live (OCR_INPUT_ROOT, else OCR_STORAGE_ROOT)."""
        return Storage(
            root=self.inputs_root,
            s3_endpoint_url=self.s3_endpoint_url,
            s3_region=self.s3_region,
            variable="OCR_INPUT_ROOT",
        )

    @property
    def namespace(self) -> str:
        """Where this environment's outputs go: qa, qa/pr-N, staging or production/vX.Y.Z."""
        return self.storage().namespace

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        variables = Variables(with_env_file(os.environ if environ is None else environ))
        get, whole, switch = variables.text, variables.whole, variables.switch
        root, input_root = get("OCR_STORAGE_ROOT"), get("OCR_INPUT_ROOT")
        environment = get("OCR_ENVIRONMENT") or cls.environment
        if get("OCR_FAULTS") and environment in ("staging", "production"):
            raise SettingsError(
                f"OCR_FAULTS is set in OCR_ENVIRONMENT={environment}: fault injection is for "
                "the fault suite only and refused in staging and production. Fix: unset it."
            )
        try:
            retry_delay = float(get("OCR_REGION_RETRY_DELAY_S") or cls.region_retry_delay_s)
        except ValueError:
            raise SettingsError("OCR_REGION_RETRY_DELAY_S is not a number of seconds") from None
        return cls(
            environment=environment,
            version=get("OCR_VERSION"),
            pull_request=whole("OCR_PULL_REQUEST", None),
            storage_root=_absolute(root) if root else cls.storage_root,
            input_root=_absolute(input_root) if input_root else None,
            grid=get("OCR_GRID") or cls.grid,
            platform=get("OCR_PLATFORM") or cls.platform,
            region_max_retries=whole("OCR_REGION_MAX_RETRIES", cls.region_max_retries),
            region_retry_delay_s=retry_delay,
            s3_endpoint_url=get("OCR_S3_ENDPOINT_URL"),
            s3_region=get("OCR_S3_REGION") or cls.s3_region,
            coiled_software=get("COILED_SOFTWARE_ENV_NAME"),
            write_regional_stats=switch("OCR_WRITE_REGIONAL_STATS"),
            create_pyramid=switch("OCR_CREATE_PYRAMID"),
            automation_interval_s=whole("OCR_AUTOMATION_INTERVAL_S", cls.automation_interval_s),
            trivial_compute=bool(switch("OCR_TRIVIAL_COMPUTE")),
            regions_per_run=whole("OCR_REGIONS_PER_RUN", cls.regions_per_run),
            code_ref=get("OCR_CODE_REF"),
        )


# Names a secret has: such a variable is never read from a file.
SECRET_RE = re.compile(r"PASSWORD|SECRET|TOKEN|CREDENTIAL|PRIVATE|_KEY(_ID)?$", re.IGNORECASE)
_ENV_LINE_RE = re.compile(r"(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)")


def read_env_file(path: str | Path) -> dict[str, str]:
    """``NAME=value`` lines of an env file (``#`` comments, optional quotes, ``export``).

    A line that is not an assignment, or a secret's name, is a SettingsError naming the line:
    secrets belong in the environment (CI secrets, the service manager), never in a file.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise SettingsError(
            f"OCR_ENV_FILE={str(path)!r} cannot be read ({exc.strerror or exc}): point it at "
            "one of deploy/env/*.env"
        ) from None
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _ENV_LINE_RE.fullmatch(line)
        if match is None:
            raise SettingsError(f"{path}:{number}: not a NAME=value line: {line!r}")
        name, value = match.group(1), match.group(2).strip()
        if SECRET_RE.search(name):
            raise SettingsError(
                f"{path}:{number}: {name} is a secret: set it in the environment (a CI secret, "
                "the service's environment), never in an env file"
            )
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[name] = value
    return values


def with_env_file(environ: Mapping[str, str]) -> Mapping[str, str]:
    """``environ`` over the values of its ``OCR_ENV_FILE``: one file, or several separated by
    ``:`` of which a later one wins (an environment's file, then the release a deploy wrote)."""
    paths = [p for p in (environ.get("OCR_ENV_FILE") or "").split(os.pathsep) if p.strip()]
    if not paths:
        return environ
    values: dict[str, str] = {}
    for path in paths:
        values.update(read_env_file(path.strip()))
    return {**values, **environ}


# A bucket name as S3 accepts it: 3-63 lower-case letters, digits, '.' and '-', starting and
# ending with a letter or digit, no '..', not an IP address.
S3_BUCKET_RE = re.compile(r"(?!\d+\.\d+\.\d+\.\d+$)(?!.*\.\.)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def _check_name(variable: str, value: str, names: tuple[str, ...], kind: str) -> None:
    if value not in names:
        case = " (lower case)" if variable == "OCR_ENVIRONMENT" else ""
        raise SettingsError(
            f"{variable}={value!r} is not {kind}: use one of {', '.join(names)}{case}"
        )


def _looks_like_url(value: str) -> bool:
    """A scheme (``gs://``, ``S3://``) or an attempt at S3 (``s3:b``, ``s3:/b``), not a path."""
    return bool(_SCHEME_RE.match(value)) or value.lower().startswith("s3:")


def _check_root(variable: str, value: str) -> None:
    """A storage or input root must be a local path or ``s3://bucket[/prefix]``: anything else
    would be taken for a local folder (``s3:/b``) or fail deep inside a writer."""
    if value.startswith("file://") or not _looks_like_url(value):
        return
    fix = "write it as s3://bucket[/prefix] or a local folder"
    scheme = _SCHEME_RE.match(value)
    if scheme is None:
        raise SettingsError(f"{variable}={value!r} is a malformed S3 URL: {fix}")
    if scheme.group(1) != "s3":
        if scheme.group(1).lower() == "s3":
            raise SettingsError(
                f"{variable}={value!r}: S3 URLs start with a lower-case s3://, so write "
                f"s3://{value[len('s3://') :]}"
            )
        raise SettingsError(
            f"{variable}={value!r}: {scheme.group(1)}:// is not supported: use a local folder "
            "or s3://bucket[/prefix]"
        )
    bucket = value[len("s3://") :].split("/", 1)[0]
    if not bucket:
        raise SettingsError(f"{variable}={value!r} names no bucket: {fix}")
    if not S3_BUCKET_RE.fullmatch(bucket):
        raise SettingsError(
            f"{variable}={value!r}: {bucket!r} is not an S3 bucket name (3-63 lower-case "
            "letters, digits, '.' and '-', starting and ending with a letter or digit): "
            "write the bucket's exact name"
        )


def _absolute(root: str) -> str:
    """An absolute local path, or the URL as given without trailing slashes (checked later)."""
    if root.startswith("file://"):
        root = root[len("file://") :]
    elif _looks_like_url(root):
        scheme, sep, rest = root.partition("://")
        return f"{scheme}{sep}{rest.rstrip('/')}"
    return str(Path(root).expanduser().resolve())


_current: Settings | None = None


def current_settings() -> Settings:
    """Settings of this process, read from the environment once (definitions load time)."""
    global _current
    if _current is None:
        _current = Settings.from_env()
    return _current


def reload_settings() -> Settings:
    """Read the environment again (after a command line switch changed it)."""
    global _current
    _current = None
    return current_settings()
