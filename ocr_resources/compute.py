"""Where each asset's heavy work runs: a local Dask cluster, or a Coiled cluster sized per asset.

``PROFILES`` is the single table of Coiled machine sizes, keyed by asset key (every asset that
uses this resource has a row; ``tests/test_compute_profiles.py`` checks it against the graph).
Assets call ``ComputeResource.run_for(context, fn, ...)`` (or ``run(asset_key, fn, ...)`` for
one output of a multi-asset), which runs ``fn`` as one Dask task on that asset's cluster and
returns its result. Inside ``fn``, dask/xarray computations use the same cluster
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
from typing import TYPE_CHECKING, Any, TypeVar

import dagster as dg
from pydantic import Field, ValidationInfo, field_validator

from ocr_core.duck import DuckDBConfig
from ocr_core.errors import picklable_stand_in, survives_pickling
from ocr_core.machines import (
    MEMORY_RESOURCE,
    REGION_TASK_GIB,
    VMType,
    region_tasks_per_worker,
    vm_type,
    worker_memory_gib,
)
from ocr_resources.coiled_software import software_build
from ocr_resources.settings import ENVIRONMENTS, PLATFORMS

if TYPE_CHECKING:
    from distributed import Client

T = TypeVar("T")
Figure = str | int | float  # a value of ``describe``

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
    # the one export of building features both building tile steps read (not a reference step)
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


def profile(asset: dg.AssetKey) -> ComputeProfile:
    """The profile of ``asset``; one without a row is a KeyError listing the known ones."""
    try:
        return PROFILES[asset.to_user_string()]
    except KeyError:
        raise KeyError(
            f"no compute profile for asset {asset.to_user_string()!r}; known assets: "
            f"{', '.join(sorted(PROFILES))}"
        ) from None


def _call(fn: Callable[..., T], args: tuple, kwargs: dict) -> T:
    """Task body: keeps ``fn``'s keyword arguments apart from ``Client.submit``'s own, and
    makes sure its exception reaches the caller with a type that says whether to retry."""
    try:
        return fn(*args, **kwargs)
    except Exception as exc:
        if survives_pickling(exc):
            raise
        stand_in = picklable_stand_in(exc)
    raise stand_in  # outside the handler: no unpicklable __context__ attached


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
        assert info.field_name is not None  # a field validator always names its field
        allowed, variable = _CHOICES[info.field_name]
        if value not in allowed:
            raise ValueError(
                f"{info.field_name}={value!r} is not valid: use one of {', '.join(allowed)}"
                + (f" (set by {variable})" if variable else "")
            )
        return value

    def _software(self) -> dict[str, str]:
        """``software`` and its build by their Coiled tag names; empty with package sync."""
        if not self.software:
            return {}
        return {
            "SoftwareEnvironment": self.software,
            "SoftwareBuild": software_build(self.software),
        }

    def cluster_name(self, asset: dg.AssetKey) -> str:
        """Deterministic, so concurrent runs of one group and build attach to the same cluster.

        A software environment adds a short hash of its name and its build id: runs of two
        code versions (two PRs in qa, or a rebuild of one name) must not share workers that run
        the other version's code.
        """
        name = f"ocr-{self.environment}-{profile(asset).cluster_group}"
        if software := self._software():
            name += "-" + hashlib.sha256(software["SoftwareEnvironment"].encode()).hexdigest()[:8]
            name += "-b" + software["SoftwareBuild"]
        return name

    def vm(self, asset: dg.AssetKey) -> VMType | None:
        """The VM ``asset``'s task runs on; None locally (this machine, not a profile)."""
        return None if self.platform == "local" else profile(asset).vm

    def vm_for(self, context: dg.AssetExecutionContext) -> VMType | None:
        """``vm`` of the asset being materialized (e.g. to size its DuckDB connections)."""
        return self.vm(context.asset_key)

    def cluster_kwargs(self, asset: dg.AssetKey) -> dict[str, Any]:
        """The exact keyword arguments given to ``coiled.Cluster`` for ``asset``."""
        p = profile(asset)
        kwargs: dict[str, Any] = {
            "name": self.cluster_name(asset),
            "worker_vm_types": [p.vm_type],
            "scheduler_vm_types": [p.scheduler_vm_type],
            "n_workers": list(p.n_workers) if isinstance(p.n_workers, tuple) else p.n_workers,
            "region": self.region,
            "spot_policy": self.spot_policy,
            "tags": {
                **self.tags,
                "Environment": self.environment,
                "ClusterGroup": p.cluster_group,
                "Asset": asset.to_user_string(),
                **self._software(),
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

    def describe(self, asset: dg.AssetKey, duckdb: DuckDBConfig | None = None) -> dict[str, Figure]:
        """Small JSON-able facts about where ``asset`` runs, for Dagster metadata; with the
        DuckDB limits its connections used, when it opened any."""
        limits: dict[str, Figure] = {}
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
        return self._coiled_facts(asset, limits)

    def _coiled_facts(self, asset: dg.AssetKey, limits: dict[str, Figure]) -> dict[str, Figure]:
        p = profile(asset)
        software = self._software()
        info: dict[str, Figure] = {
            "compute_platform": "coiled",
            "cluster_name": self.cluster_name(asset),
            "vm_type": p.vm_type,
            "scheduler_vm_type": p.scheduler_vm_type,
            "n_workers": str(list(p.n_workers)) if isinstance(p.n_workers, tuple) else p.n_workers,
            "region": self.region,
            "software": self.software or "package sync",
            "worker_memory_resource_gib": worker_memory_gib(p.vm),
            **limits,
        }
        if software:
            info["software_build"] = software["SoftwareBuild"]
        if p.disk_gb is not None:
            info["worker_disk_gb"] = p.disk_gb
        if p.task_gib is not None:
            info["task_memory_gib"] = p.task_gib
            info["tasks_per_worker"] = region_tasks_per_worker(p.vm, p.task_gib)
        return info

    def run_for(self, context: dg.AssetExecutionContext, fn: Callable[..., T], *args: Any) -> T:
        """``run`` for the asset being materialized (its key names the profile)."""
        return self.run(context.asset_key, fn, *args, log=context.log)

    def metadata_for(
        self, context: dg.AssetExecutionContext, duckdb: DuckDBConfig | None = None
    ) -> dg.MetadataValue:
        """``describe`` of the asset being materialized, as Dagster metadata."""
        return dg.MetadataValue.json(self.describe(context.asset_key, duckdb))

    def run(
        self,
        asset: dg.AssetKey,
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
        return self.map(asset, fn, [args], log=log, **kwargs)[0]

    def map(
        self,
        asset: dg.AssetKey,
        fn: Callable[..., T],
        calls: list[tuple],
        log: Any = None,
        **kwargs: Any,
    ) -> list[T]:
        """``fn(*args, **kwargs)`` for every ``args`` of ``calls``, as tasks on one cluster of
        the asset's profile; results in the order of ``calls``."""
        log = log or logger
        p = profile(asset)  # an asset without a profile fails here, on either platform
        if self.platform == "local":
            return self._run_local(asset, fn, calls, kwargs, log)
        return self._run_coiled(asset, p, fn, calls, kwargs, log)

    def _run_local(self, asset: dg.AssetKey, fn, calls: list[tuple], kwargs: dict, log) -> list:
        from distributed import LocalCluster

        log.info(
            f"{asset.to_user_string()}: running on a local Dask cluster ({self.local_workers} "
            f"worker(s) x {self.local_threads_per_worker} thread(s))"
        )
        cluster = LocalCluster(
            n_workers=self.local_workers,
            threads_per_worker=self.local_threads_per_worker,
            processes=self.local_processes,
            dashboard_address=None,  # pyright: ignore[reportArgumentType] (None: no dashboard)
            # No dashboard; the scheduler's health/metrics server still starts, so keep it
            # on loopback and a free port (its default is :8787 on the host's address).
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
            silence_logs=logging.ERROR,
        )
        with cluster, cluster.get_client() as client:
            return _gather(client, asset, fn, calls, kwargs)

    def _run_coiled(
        self, asset: dg.AssetKey, p: ComputeProfile, fn, calls: list[tuple], kwargs: dict, log
    ) -> list:
        import coiled

        cluster_kwargs = self.cluster_kwargs(asset)
        software = self._software()
        if not software:
            log.warning(
                "COILED_SOFTWARE_ENV_NAME is not set: Coiled will fall back to package sync "
                "of this Python environment (slower starts, not reproducible)"
            )
        build = f", software {self.software} build {software['SoftwareBuild']}" if software else ""
        log.info(
            f"{asset.to_user_string()}: running on Coiled cluster {cluster_kwargs['name']} "
            f"({cluster_kwargs['worker_vm_types'][0]}, n_workers={cluster_kwargs['n_workers']}"
            f"{build})"
        )
        cluster = coiled.Cluster(**cluster_kwargs)
        try:
            client = cluster.get_client()
            if p.cluster_group == REGION_GROUP:
                from ocr_core.kernel_cache import KernelCachePlugin

                client.register_plugin(KernelCachePlugin(), name=KernelCachePlugin.name)
            resources = {MEMORY_RESOURCE: p.task_gib} if p.task_gib is not None else None
            try:
                return _gather(client, asset, fn, calls, kwargs, resources)
            finally:
                client.close()
        finally:
            # shutdown_on_close=False: this only drops this process's connection and adaptive
            # loop; the VMs stay up for other partitions and stop after idle_timeout.
            cluster.close()


def _gather(
    client: Client,
    asset: dg.AssetKey,
    fn,
    calls: list[tuple],
    kwargs: dict,
    resources: dict | None = None,
) -> list:
    """Submit one task per call (each holding ``resources`` of its worker while it runs) and
    wait for all of them."""
    key = asset.to_user_string()
    futures = [
        client.submit(_call, fn, args, kwargs, key=f"{key}-{uuid.uuid4().hex}", resources=resources)
        for args in calls
    ]
    return [f.result() for f in futures]
