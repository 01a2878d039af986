"""Where each asset's heavy work runs: a local Dask cluster, or a Coiled cluster sized per asset.

``PROFILES`` is the single table of Coiled machine sizes (asset-graph.md "Compute profiles"); the
reference repeated these literals in several places (ocr-pipeline §5 weakness 9). Assets call
``ComputeResource.run(asset_name, fn, ...)``, which runs ``fn`` as one Dask task on that asset's
cluster and returns its result. Inside ``fn``, dask/xarray computations use the same cluster
(the task's worker client), so a region's raster work spreads over the cluster's workers.

Coiled clusters are named per environment, cluster group and software environment *build*, and
are created with ``shutdown_on_close=False``: the ~400 region partition runs attach to one
cluster instead of each booting its own VMs, and the cluster stops after ``idle_timeout``
without work. The build in the name keeps a deploy from attaching to a cluster that is still
up (idle, within ``idle_timeout``) with an earlier build's code.

Each Coiled worker offers its VM's memory as the Dask resource ``MEMORY`` (GiB, less a reserve)
and a region task asks for ``REGION_TASK_GIB`` of it, so a worker runs only as many region tasks
at once as its memory holds, whatever its thread count.

``coiled`` and ``distributed`` are imported only inside methods, so loading the Dagster
definitions stays fast and needs no Coiled credentials.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import dagster as dg
from pydantic import Field, ValidationInfo, field_validator

from ocr_core.duck import DuckDBConfig
from ocr_core.machines import (
    MEMORY_RESOURCE,
    REGION_TASK_GIB,
    VMType,
    region_tasks_per_worker,
    vm_type,
    worker_memory_gib,
)
from ocr_deploy.software_env import software_build
from ocr_resources.settings import ENVIRONMENTS, PLATFORMS

T = TypeVar("T")

SPOT_POLICIES = ("on-demand", "spot", "spot_with_fallback")
_CHOICES = {
    "platform": (PLATFORMS, "OCR_PLATFORM"),
    "environment": (ENVIRONMENTS, "OCR_ENVIRONMENT"),
    "spot_policy": (SPOT_POLICIES, None),
}

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ComputeProfile:
    """Coiled machine shape of one asset; ``cluster_group`` names the cluster it runs on.
    ``task_gib``: the memory each of its tasks reserves on a Coiled worker (None: no limit,
    the asset is one task on a worker of its own)."""

    vm_type: str
    scheduler_vm_type: str
    cluster_group: str
    n_workers: int | tuple[int, int] = 1
    disk_gb: int | None = None
    task_gib: float | None = None

    @property
    def vm(self) -> VMType:
        return vm_type(self.vm_type)


# n_workers: the region group is adaptive, [min, max]. It starts with one VM (a QA run of a
# handful of regions stays cheap) and grows with the number of region partitions running at
# once; the cap bounds cost and the number of concurrent Icechunk commits that must rebase.
# Every other step is a single-node job in the reference (DuckDB, tippecanoe, one xarray
# write), so it gets exactly one worker of the listed size.
_REGION_WORKERS = (1, 40)
REGION_GROUP = "region"
_REGION = ComputeProfile(
    "m8g.2xlarge", "m8g.2xlarge", REGION_GROUP, _REGION_WORKERS, task_gib=REGION_TASK_GIB
)

PROFILES: dict[str, ComputeProfile] = {
    "region_risk": _REGION,
    "region_buildings": _REGION,
    # the digest of every region's input windows reads what the region steps read
    "region_inputs": _REGION,
    "risk_pyramid": ComputeProfile("m8g.4xlarge", "m8g.4xlarge", "risk-pyramid"),
    "buildings_geoparquet": ComputeProfile("c8g.12xlarge", "c8g.12xlarge", "buildings-geoparquet"),
    "region_summary_stats": ComputeProfile("m8g.16xlarge", "m8g.16xlarge", "region-summary-stats"),
    "region_analysis_files": ComputeProfile("r8g.4xlarge", "r8g.4xlarge", "region-analysis-files"),
    "regional_pmtiles": ComputeProfile(
        "c8g.12xlarge", "c8g.12xlarge", "regional-pmtiles", disk_gb=250
    ),
    # Not in the seed: the one export of building features both building tile steps read.
    "building_tile_features": ComputeProfile(
        "c8g.12xlarge", "c8g.12xlarge", "building-tile-features", disk_gb=250
    ),
    "building_pmtiles": ComputeProfile(
        "c8g.12xlarge", "c8g.12xlarge", "building-pmtiles", disk_gb=250
    ),
    "building_centroid_pmtiles": ComputeProfile(
        "c8g.12xlarge", "c8g.12xlarge", "building-centroid-pmtiles", disk_gb=250
    ),
}


def profile(asset_name: str) -> ComputeProfile:
    """The profile of ``asset_name``; an unknown name is a KeyError listing the known ones."""
    try:
        return PROFILES[asset_name]
    except KeyError:
        raise KeyError(
            f"no compute profile for asset {asset_name!r}; known assets: "
            f"{', '.join(sorted(PROFILES))}"
        ) from None


def _call(fn: Callable[..., T], args: tuple, kwargs: dict) -> T:
    """Task body: keeps ``fn``'s keyword arguments apart from ``Client.submit``'s own, and
    makes sure its exception reaches the caller with a type that says whether to retry."""
    try:
        return fn(*args, **kwargs)
    except Exception as exc:
        if _survives_pickling(exc):
            raise
        stand_in = _stand_in(exc)
    raise stand_in  # outside the handler: no unpicklable __context__ attached


def _survives_pickling(exc: BaseException) -> bool:
    """Whether Dask can ship ``exc`` back as is (with its causes, as ``distributed`` does);
    otherwise it would arrive as a bare ``Exception(repr)`` and lose its type."""
    import pickle

    from tblib import pickling_support

    causes, e = [], exc
    while e.__cause__ is not None:
        causes.append(e.__cause__)
        e = e.__cause__
    pickling_support.install(exc, *causes)
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return False
    return True


def _stand_in(exc: Exception) -> Exception:
    """A picklable exception with the same meaning for retries: ``TransientInputError`` for a
    transient error, else the nearest built-in base class of ``exc``, with its summary."""
    from ocr_core.errors import TransientInputError, is_transient, summary

    if is_transient(exc):
        return TransientInputError(summary(exc))
    base = next(c for c in type(exc).__mro__ if c.__module__ == "builtins")
    try:
        return base(summary(exc))
    except Exception:
        return RuntimeError(summary(exc))


class ComputeResource(dg.ConfigurableResource):
    """Runs an asset's heavy function on local Dask or on the asset's Coiled cluster."""

    platform: str = "local"
    environment: str = "qa"
    software: str | None = None
    region: str = "us-west-2"
    spot_policy: str = "spot_with_fallback"
    tags: dict[str, str] = Field(default_factory=lambda: {"Project": "OCR"})
    local_workers: int = 1
    local_threads_per_worker: int = 2
    local_processes: bool = False
    idle_timeout: str = "20 minutes"

    @field_validator("platform", "environment", "spot_policy", mode="before")
    @classmethod
    def _check_choice(cls, value: str, info: ValidationInfo) -> str:
        # An EnvVar is checked once Dagster resolves it at launch (the model is re-validated).
        if isinstance(value, dg.EnvVar):
            return value
        allowed, variable = _CHOICES[info.field_name]
        if value not in allowed:
            raise ValueError(
                f"{info.field_name}={value!r} is not valid: use one of {', '.join(allowed)}"
                + (f" (set by {variable})" if variable else "")
            )
        return value

    def software_build(self) -> str | None:
        """The Coiled build of ``software`` (asked once per process); None with package sync.
        A SoftwareBuildError when it has no finished build: better no cluster than one that
        runs another build's code."""
        return software_build(self.software) if self.software else None

    def cluster_name(self, asset_name: str) -> str:
        """Deterministic, so concurrent runs of one group and build attach to the same cluster.

        A software environment adds a short hash of its name and its build id: runs of two
        code versions (two PRs in qa, or a rebuild of one name) must not share workers that run
        the other version's code.
        """
        name = f"ocr-{self.environment}-{profile(asset_name).cluster_group}"
        if self.software:
            name += "-" + hashlib.sha256(self.software.encode()).hexdigest()[:8]
            name += "-b" + self.software_build()
        return name

    def vm(self, asset_name: str) -> VMType | None:
        """The VM ``asset_name``'s task runs on; None locally (this machine, not a profile)."""
        return None if self.platform == "local" else profile(asset_name).vm

    def vm_for(self, context: dg.AssetExecutionContext) -> VMType | None:
        """``vm`` of the asset being materialized (e.g. to size its DuckDB connections)."""
        return self.vm(context.asset_key.to_user_string())

    def cluster_kwargs(self, asset_name: str) -> dict[str, Any]:
        """The exact keyword arguments given to ``coiled.Cluster`` for ``asset_name``."""
        p = profile(asset_name)
        kwargs: dict[str, Any] = {
            "name": self.cluster_name(asset_name),
            "worker_vm_types": [p.vm_type],
            "scheduler_vm_types": [p.scheduler_vm_type],
            "n_workers": list(p.n_workers) if isinstance(p.n_workers, tuple) else p.n_workers,
            "region": self.region,
            "spot_policy": self.spot_policy,
            "tags": {
                **self.tags,
                "Environment": self.environment,
                "ClusterGroup": p.cluster_group,
                "Asset": asset_name,
                **(
                    {"SoftwareEnvironment": self.software, "SoftwareBuild": self.software_build()}
                    if self.software
                    else {}
                ),
            },
            "worker_options": {"resources": {MEMORY_RESOURCE: worker_memory_gib(p.vm)}},
            "arm": True,
            "idle_timeout": self.idle_timeout,
            "shutdown_on_close": False,
        }
        if p.disk_gb is not None:
            kwargs["worker_disk_size"] = p.disk_gb
        if self.software:
            kwargs["software"] = self.software
        return kwargs

    def describe(self, asset_name: str, duckdb: DuckDBConfig | None = None) -> dict[str, str | int]:
        """Small JSON-able facts about where ``asset_name`` runs, for Dagster metadata; with the
        DuckDB limits its connections used, when it opened any."""
        p = profile(asset_name)
        limits: dict[str, str | int] = {}
        if duckdb is not None:
            limits = {
                "duckdb_memory_limit": duckdb.memory_limit,
                "duckdb_threads": duckdb.threads or "all cores",
            }
        if self.platform == "local":
            return {
                "compute_platform": "local",
                "local_workers": self.local_workers,
                "local_threads_per_worker": self.local_threads_per_worker,
                **limits,
            }
        info: dict[str, str | int] = {
            "compute_platform": "coiled",
            "cluster_name": self.cluster_name(asset_name),
            "vm_type": p.vm_type,
            "scheduler_vm_type": p.scheduler_vm_type,
            "n_workers": str(list(p.n_workers)) if isinstance(p.n_workers, tuple) else p.n_workers,
            "region": self.region,
            "software": self.software or "package sync",
            "worker_memory_resource_gib": worker_memory_gib(p.vm),
            **limits,
        }
        if self.software:
            info["software_build"] = self.software_build()
        if p.disk_gb is not None:
            info["worker_disk_gb"] = p.disk_gb
        if p.task_gib is not None:
            info["task_memory_gib"] = p.task_gib
            info["tasks_per_worker"] = region_tasks_per_worker(p.vm, p.task_gib)
        return info

    def run_for(self, context: dg.AssetExecutionContext, fn: Callable[..., T], *args: Any) -> T:
        """``run`` for the asset being materialized (its key names the profile)."""
        return self.run(context.asset_key.to_user_string(), fn, *args, log=context.log)

    def metadata_for(
        self, context: dg.AssetExecutionContext, duckdb: DuckDBConfig | None = None
    ) -> dg.MetadataValue:
        """``describe`` of the asset being materialized, as Dagster metadata."""
        return dg.MetadataValue.json(self.describe(context.asset_key.to_user_string(), duckdb))

    def run(
        self,
        asset_name: str,
        fn: Callable[..., T],
        *args: Any,
        log: Any = None,
        **kwargs: Any,
    ) -> T:
        """Run ``fn(*args, **kwargs)`` as one task on the asset's cluster and return its result.

        ``log`` is a Dagster or ``logging`` logger. Exceptions raised by ``fn`` propagate with
        their type and message (one that cannot be pickled arrives as a stand-in that is
        retried, or not, the same way). With ``local_processes`` or on Coiled, ``fn`` and its
        arguments must be picklable (module-level functions, not closures over resources).
        """
        return self.map(asset_name, fn, [args], log=log, **kwargs)[0]

    def map(
        self,
        asset_name: str,
        fn: Callable[..., T],
        calls: list[tuple],
        log: Any = None,
        **kwargs: Any,
    ) -> list[T]:
        """``fn(*args, **kwargs)`` for every ``args`` of ``calls``, as tasks on one cluster of
        the asset's profile; results in the order of ``calls``."""
        log = log or logger
        if self.platform == "local":
            return self._run_local(asset_name, fn, calls, kwargs, log)
        return self._run_coiled(asset_name, fn, calls, kwargs, log)

    def _run_local(self, asset_name, fn, calls, kwargs, log):
        from distributed import LocalCluster

        profile(asset_name)
        log.info(
            f"{asset_name}: running on a local Dask cluster ({self.local_workers} worker(s) x "
            f"{self.local_threads_per_worker} thread(s))"
        )
        with (
            LocalCluster(
                n_workers=self.local_workers,
                threads_per_worker=self.local_threads_per_worker,
                processes=self.local_processes,
                dashboard_address=None,
                # No dashboard; the scheduler's health/metrics server still starts, so keep it
                # on loopback and a free port (its default is :8787 on the host's address).
                scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                silence_logs=logging.ERROR,
            ) as cluster,
            cluster.get_client() as client,
        ):
            return _gather(client, asset_name, fn, calls, kwargs)

    def _run_coiled(self, asset_name, fn, calls, kwargs, log):
        import coiled

        cluster_kwargs = self.cluster_kwargs(asset_name)
        if not self.software:
            log.warning(
                "COILED_SOFTWARE_ENV_NAME is not set: Coiled will fall back to package sync "
                "of this Python environment (slower starts, not reproducible)"
            )
        build = f", software {self.software} build {self.software_build()}" if self.software else ""
        log.info(
            f"{asset_name}: running on Coiled cluster {cluster_kwargs['name']} "
            f"({cluster_kwargs['worker_vm_types'][0]}, n_workers={cluster_kwargs['n_workers']}"
            f"{build})"
        )
        cluster = coiled.Cluster(**cluster_kwargs)
        try:
            client = cluster.get_client()
            if profile(asset_name).cluster_group == REGION_GROUP:
                from ocr_core.kernel_cache import KernelCachePlugin

                client.register_plugin(KernelCachePlugin(), name=KernelCachePlugin.name)
            task_gib = profile(asset_name).task_gib
            resources = {MEMORY_RESOURCE: task_gib} if task_gib is not None else None
            try:
                return _gather(client, asset_name, fn, calls, kwargs, resources)
            finally:
                client.close()
        finally:
            # shutdown_on_close=False: this only drops this process's connection and adaptive
            # loop; the VMs stay up for other partitions and stop after idle_timeout.
            cluster.close()


def _gather(
    client, asset_name: str, fn, calls: list[tuple], kwargs: dict, resources: dict | None = None
) -> list:
    """Submit one task per call (each holding ``resources`` of its worker while it runs) and
    wait for all of them."""
    futures = [
        client.submit(_call, fn, args, kwargs, key=_task_key(asset_name), resources=resources)
        for args in calls
    ]
    return [f.result() for f in futures]


def _task_key(asset_name: str) -> str:
    return f"{asset_name}-{uuid.uuid4().hex}"
