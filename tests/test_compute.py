"""ComputeResource: real local Dask runs, and Coiled with only ``coiled.Cluster`` and the
software environment API (tests/coiled_software_api.py) replaced.

The fake ``coiled.Cluster`` checks its keyword arguments against the installed coiled signature,
records them, and attaches to a real ``distributed.LocalCluster`` per cluster name (as Coiled
attaches to an existing cluster of the same name), whose workers get ``worker_options`` as
Coiled's do, so the function really runs.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

import dagster as dg
import numpy as np
import pytest
from coiled_software_api import installed

from ocr_core.machines import VM_TYPES
from ocr_resources.coiled_software import SoftwareBuildError
from ocr_resources.compute import PROFILES, ComputeResource
from ocr_resources.duckdb import DuckDBResource

REPO = Path(__file__).resolve().parent.parent

# AWS's documented sizes (vCPUs, GiB), written out again so a change must be deliberate.
EXPECTED_VMS = {
    "m8g.2xlarge": (8, 32),
    "m8g.4xlarge": (16, 64),
    "m8g.16xlarge": (64, 256),
    "c8g.12xlarge": (48, 96),
    "r8g.4xlarge": (16, 128),
}


# --- functions run as tasks (module level, so they pickle into worker processes) ------------


def where_am_i() -> tuple[int, str]:
    return os.getpid(), threading.current_thread().name


def weighted_sum(values, *, weight, key="default-key", retries=0):
    """``key``/``retries`` collide with ``Client.submit`` keywords and must still reach us."""
    return float(np.sum(np.asarray(values) * weight)), key, retries


def fail(region_id: str):
    raise ValueError(f"region {region_id}: input raster has no valid pixels")


def scheduler_address() -> str:
    from distributed import get_worker

    return get_worker().scheduler.address


# --- local platform --------------------------------------------------------------------------


def _tcp_listeners() -> set[tuple[str, int]]:
    """(host, port) of every TCP socket this process listens on."""
    import psutil

    return {
        (c.laddr.ip, c.laddr.port)
        for c in psutil.Process().net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN
    }


@pytest.fixture
def local_clusters(monkeypatch):
    """Real LocalClusters, with each instance and its arguments recorded."""
    import distributed

    made = []

    class RecordingLocalCluster(distributed.LocalCluster):
        def __init__(self, **kwargs):
            made.append((self, kwargs))
            super().__init__(**kwargs)
            port = self.scheduler_info["services"]["dashboard"]  # the scheduler's HTTP server
            self.http_hosts = {host for host, p in _tcp_listeners() if p == port}

    monkeypatch.setattr(distributed, "LocalCluster", RecordingLocalCluster)
    return made


def test_local_runs_on_a_dask_worker_and_tears_down(local_clusters):
    compute = ComputeResource(local_workers=1, local_threads_per_worker=3)
    pid, thread = compute.run(dg.AssetKey("region_risk"), where_am_i)
    assert pid == os.getpid()  # threads, not processes, by default
    assert thread != threading.current_thread().name
    assert "Dask" in thread

    [(cluster, kwargs)] = local_clusters
    assert kwargs["n_workers"] == 1
    assert kwargs["threads_per_worker"] == 3
    assert kwargs["processes"] is False
    assert kwargs["dashboard_address"] is None
    assert cluster.http_hosts == {"127.0.0.1"}  # no listener beyond loopback
    assert cluster.status.name == "closed"


def test_local_passes_args_and_kwargs(local_clusters):
    result = ComputeResource().run(
        dg.AssetKey("region_summary_stats"),
        weighted_sum,
        [1.0, 2.0, 3.0],
        weight=2.0,
        key="k",
        retries=5,
    )
    assert result == (12.0, "k", 5)


def test_local_processes_run_in_another_process(local_clusters):
    pid, _ = ComputeResource(local_processes=True).run(dg.AssetKey("risk_pyramid"), where_am_i)
    assert pid != os.getpid()
    assert local_clusters[0][0].status.name == "closed"


def test_local_exception_propagates_and_cluster_is_closed(local_clusters):
    with pytest.raises(ValueError, match=r"^region y5_x14: input raster has no valid pixels$"):
        ComputeResource().run(dg.AssetKey("region_risk"), fail, "y5_x14")
    assert local_clusters[0][0].status.name == "closed"


def test_unknown_asset_lists_known_names(local_clusters):
    with pytest.raises(KeyError, match="region_risk") as err:
        ComputeResource().run(dg.AssetKey("region_rsik"), where_am_i)
    assert "region_rsik" in str(err.value)
    assert local_clusters == []  # nothing started
    with pytest.raises(KeyError, match="building_pmtiles"):
        ComputeResource(platform="coiled").cluster_kwargs(dg.AssetKey("nope"))


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("platform", "aws", "OCR_PLATFORM"),
        ("environment", "QA", "OCR_ENVIRONMENT"),
        ("spot_policy", "cheap", "spot_with_fallback"),
    ],
)
def test_invalid_choices_are_rejected(field, value, named):
    with pytest.raises(ValueError, match=named) as err:
        ComputeResource(**{field: value})
    assert repr(value) in str(err.value)


def test_envvar_platform_is_validated_when_resolved(monkeypatch):
    @dg.asset
    def probe(compute: ComputeResource) -> str:
        return compute.platform

    resource = ComputeResource(platform=dg.EnvVar("OCR_TEST_PLATFORM"))
    monkeypatch.setenv("OCR_TEST_PLATFORM", "local")
    result = dg.materialize([probe], resources={"compute": resource})
    assert result.output_for_node("probe") == "local"

    monkeypatch.setenv("OCR_TEST_PLATFORM", "bogus")
    with pytest.raises(dg.DagsterResourceFunctionError) as err:
        dg.materialize([probe], resources={"compute": resource})
    assert "platform='bogus' is not valid" in str(err.value.__cause__)


def test_runs_inside_a_dagster_asset_with_its_logger():
    @dg.asset
    def summed(context, compute: ComputeResource):
        total, _, _ = compute.run(
            dg.AssetKey("region_summary_stats"), weighted_sum, [1, 2], weight=3, log=context.log
        )
        return dg.MaterializeResult(
            metadata={"total": total, **compute.describe(dg.AssetKey("region_summary_stats"))}
        )

    result = dg.materialize([summed], resources={"compute": ComputeResource()})
    [mat] = result.asset_materializations_for_node("summed")
    assert mat.metadata["total"].value == 9.0
    assert mat.metadata["compute_platform"].value == "local"


# --- coiled platform, control plane faked at coiled.Cluster ----------------------------------


class FakeCoiledCluster:
    """Stands in for ``coiled.Cluster``: same keyword names, attach-by-name, real Dask inside."""

    signature: inspect.Signature
    calls: list[dict]
    backends: dict  # cluster name -> LocalCluster
    clients: list
    closes: list[dict]
    submits: list[dict]

    def __init__(self, **kwargs):
        type(self).signature.bind(None, **kwargs)  # TypeError on a name coiled does not accept
        type(self).calls.append(kwargs)
        from distributed import LocalCluster

        name = kwargs["name"]
        if name not in self.backends:
            self.backends[name] = LocalCluster(
                n_workers=1,
                threads_per_worker=2,
                processes=False,
                dashboard_address=None,  # pyright: ignore[reportArgumentType] (None: none)
                scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                silence_logs=logging.ERROR,
                **kwargs.get("worker_options", {}),
            )
        self._backend = self.backends[name]
        self.shutdown_on_close = kwargs.get("shutdown_on_close")

    def get_client(self):
        """A real client of the cluster, its ``submit`` keyword arguments recorded."""
        client = self._backend.get_client()
        self.clients.append(client)
        submit = client.submit

        def recording_submit(*args, **kwargs):
            type(self).submits.append(kwargs)
            return submit(*args, **kwargs)

        client.submit = recording_submit
        return client

    def close(self, force_shutdown: bool = False, reason: str | None = None):
        self.closes.append({"force_shutdown": force_shutdown, "reason": reason})
        if force_shutdown or self.shutdown_on_close in (True, None):
            self._backend.close()


@pytest.fixture
def fake_coiled(monkeypatch):
    import coiled

    fake = type(
        "Fake",
        (FakeCoiledCluster,),
        {
            "signature": inspect.signature(coiled.Cluster.__init__),
            "calls": [],
            "backends": {},
            "clients": [],
            "closes": [],
            "submits": [],
        },
    )
    monkeypatch.setattr(coiled, "Cluster", fake)
    yield fake
    for backend in fake.backends.values():
        backend.close()


@pytest.fixture
def software_api(monkeypatch):
    yield from installed(monkeypatch)


@pytest.fixture
def test_log(caplog):
    caplog.set_level(logging.INFO, logger="ocr-test-compute")
    return logging.getLogger("ocr-test-compute")


def _expected_kwargs(asset: str, environment: str = "qa", name_suffix: str = "") -> dict:
    p = PROFILES[asset]
    _, memory_gib = EXPECTED_VMS[p.vm_type]
    kwargs = {
        "name": f"ocr-{environment}-{p.cluster_group}{name_suffix}",
        "worker_vm_types": [p.vm_type],
        "scheduler_vm_types": [p.scheduler_vm_type],
        "n_workers": list(p.n_workers) if isinstance(p.n_workers, tuple) else p.n_workers,
        "region": "us-west-2",
        "spot_policy": "spot_with_fallback",
        "tags": {
            "Project": "OCR",
            "Environment": environment,
            "ClusterGroup": p.cluster_group,
            "Asset": asset,
        },
        "worker_options": {"resources": {"MEMORY": memory_gib - 4}},
        "arm": True,
        "idle_timeout": "20 minutes",
        "shutdown_on_close": False,
    }
    if p.disk_gb is not None:
        kwargs["worker_disk_size"] = p.disk_gb
    return kwargs


@pytest.mark.parametrize("grid", ["demo", "conus"])
def test_profiles_cover_exactly_the_graphs_compute_assets(grid):
    """Every asset of the code location that takes the compute resource has a profile, and
    the table has no other row; with the real (external) inputs that is every executable
    asset of the graph."""
    from ocr_assets.definitions import build_defs
    from ocr_resources.settings import Settings

    graph = build_defs(Settings(grid=grid)).resolve_asset_graph()
    uses_compute = {
        key.to_user_string()
        for assets_def in graph.assets_defs
        if "compute" in assets_def.required_resource_keys
        for key in assets_def.keys
    }
    assert set(PROFILES) == uses_compute
    if grid == "conus":
        assert set(PROFILES) == {key.to_user_string() for key in graph.executable_asset_keys}


def test_region_outputs_share_one_adaptive_cluster():
    region = {name: PROFILES[name] for name in ("region_risk", "region_buildings", "region_inputs")}
    assert {(p.vm_type, p.cluster_group, p.n_workers, p.task_gib) for p in region.values()} == {
        ("m8g.2xlarge", "region", (1, 40), 4)
    }
    others = [p for name, p in PROFILES.items() if name not in region]
    assert all(p.n_workers == 1 and p.task_gib is None for p in others)


@pytest.mark.parametrize("asset", sorted(PROFILES))
def test_coiled_submits_exact_cluster_kwargs(fake_coiled, test_log, caplog, asset):
    compute = ComputeResource(platform="coiled", environment="staging")
    key = dg.AssetKey(asset)
    result = compute.run(key, weighted_sum, [2.0], weight=4.0, key="k", log=test_log)

    assert result == (8.0, "k", 0)
    assert fake_coiled.calls == [_expected_kwargs(asset, environment="staging")]
    assert compute.cluster_kwargs(key) == fake_coiled.calls[0]
    assert "software" not in fake_coiled.calls[0]
    assert [c.status for c in fake_coiled.clients] == ["closed"]
    assert fake_coiled.closes == [
        {"force_shutdown": False, "reason": None}
    ]  # handle dropped, VMs kept
    # region tasks hold 4 GiB of their worker's MEMORY; a single-task step needs no limit
    region = PROFILES[asset].cluster_group == "region"
    assert [s["resources"] for s in fake_coiled.submits] == [{"MEMORY": 4} if region else None]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "COILED_SOFTWARE_ENV_NAME is not set" in warnings[0].getMessage()
    assert "package sync" in warnings[0].getMessage()


def test_coiled_passes_software_and_its_build_and_does_not_warn(
    fake_coiled, software_api, test_log, caplog
):
    build = software_api.build("ocr-pr-42")
    compute = ComputeResource(platform="coiled", software="ocr-pr-42", environment="qa")
    assert (
        compute.run(dg.AssetKey("building_pmtiles"), weighted_sum, [1.0], weight=1.0, log=test_log)[
            0
        ]
        == 1.0
    )

    [kwargs] = fake_coiled.calls
    assert kwargs["software"] == "ocr-pr-42"
    assert kwargs["name"].startswith("ocr-qa-building-pmtiles-")
    assert kwargs["name"].endswith(f"-b{build}")
    assert kwargs["worker_disk_size"] == 250
    expected = _expected_kwargs("building_pmtiles", name_suffix=kwargs["name"][-14:])
    expected["tags"] |= {"SoftwareEnvironment": "ocr-pr-42", "SoftwareBuild": str(build)}
    assert {k: v for k, v in kwargs.items() if k != "software"} == expected
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert f"software ocr-pr-42 build {build}" in caplog.text


def test_coiled_cluster_name_is_per_software_environment(software_api):
    software_api.build("ocr-pr-1")
    software_api.build("ocr-pr-2")
    names = {
        ComputeResource(platform="coiled", software=s).cluster_name(dg.AssetKey("region_risk"))
        for s in ("ocr-pr-1", "ocr-pr-2", None)
    }
    assert len(names) == 3
    again = ComputeResource(platform="coiled", software="ocr-pr-1").cluster_name(
        dg.AssetKey("region_risk")
    )
    assert again in names


def _new_process() -> None:
    from ocr_resources.coiled_software import software_build

    software_build.cache_clear()


def test_cluster_name_is_per_build_of_one_software_environment(software_api):
    """A rebuild under the same name is another cluster; the same build is the same one."""
    compute = ComputeResource(platform="coiled", software="ocr-main")
    software_api.build("ocr-main")
    first = compute.cluster_name(dg.AssetKey("region_risk"))
    assert compute.cluster_name(dg.AssetKey("region_buildings")) == first
    assert len(software_api.list_calls) == 1  # resolved once per process

    _new_process()
    assert compute.cluster_name(dg.AssetKey("region_risk")) == first  # same build, another process

    rebuilt = software_api.build("ocr-main")
    assert compute.cluster_name(dg.AssetKey("region_risk")) == first  # this process keeps its build
    _new_process()
    second = compute.cluster_name(dg.AssetKey("region_risk"))
    assert second != first
    assert second.endswith(f"-b{rebuilt}")
    assert second.rsplit("-", 1)[0] == first.rsplit("-", 1)[0]


def test_a_deploy_after_a_rebuild_gets_its_own_cluster(fake_coiled, software_api, test_log):
    """The previous deploy's cluster is still up (idle timeout): the new build must not
    attach to it."""
    compute = ComputeResource(platform="coiled", software="ocr-v1-2-0")
    software_api.build("ocr-v1-2-0")
    before = compute.run(dg.AssetKey("region_risk"), scheduler_address, log=test_log)
    software_api.build("ocr-v1-2-0")
    _new_process()
    after = compute.run(dg.AssetKey("region_risk"), scheduler_address, log=test_log)
    assert before != after
    assert len(fake_coiled.backends) == 2
    builds = [c["tags"]["SoftwareBuild"] for c in fake_coiled.calls]
    assert builds[0] != builds[1]


@pytest.mark.parametrize(
    ("state", "message"),
    [
        (None, "Coiled has no software environment 'ocr-pr-9'"),
        ("building", "latest build 101 of software environment 'ocr-pr-9' is 'building'"),
        ("error", "is 'error', not built"),
    ],
)
def test_unresolved_build_fails_before_any_cluster(
    fake_coiled, software_api, test_log, state, message
):
    if state is not None:
        software_api.build("ocr-pr-9", state=state)
    compute = ComputeResource(platform="coiled", software="ocr-pr-9")
    with pytest.raises(SoftwareBuildError, match=message) as err:
        compute.run(dg.AssetKey("region_risk"), where_am_i, log=test_log)
    assert "python -m ocr_deploy.software_env create pr-9" in str(err.value)
    assert fake_coiled.calls == []


def test_an_environment_without_a_build_fails_clearly(software_api):
    software_api.aliases["ocr-x"] = {"id": 1, "name": "ocr-x", "latest_spec": None}
    with pytest.raises(SoftwareBuildError, match="'ocr-x' has no build on Coiled"):
        ComputeResource(platform="coiled", software="ocr-x").cluster_name(
            dg.AssetKey("risk_pyramid")
        )


def test_workspace_qualified_software_is_looked_up_in_its_workspace(software_api):
    software_api.build("ocr-main")
    name = ComputeResource(platform="coiled", software="carbonplan/ocr-main").cluster_name(
        dg.AssetKey("risk_pyramid")
    )
    assert name.endswith("-b101")
    assert software_api.list_calls == [{"workspace": "carbonplan"}]


def test_region_assets_share_one_cluster(fake_coiled, software_api, test_log):
    software_api.build("ocr-main")
    compute = ComputeResource(platform="coiled", software="ocr-main")
    first = compute.run(dg.AssetKey("region_risk"), scheduler_address, log=test_log)
    second = compute.run(dg.AssetKey("region_buildings"), scheduler_address, log=test_log)
    other = compute.run(dg.AssetKey("risk_pyramid"), scheduler_address, log=test_log)
    assert first == second != other
    assert fake_coiled.calls[0]["name"] == fake_coiled.calls[1]["name"]
    assert len(fake_coiled.backends) == 2


def test_coiled_exception_propagates_and_releases_client(fake_coiled, test_log):
    compute = ComputeResource(platform="coiled")
    with pytest.raises(ValueError, match=r"^region y1_x2: input raster has no valid pixels$"):
        compute.run(dg.AssetKey("region_risk"), fail, "y1_x2", log=test_log)
    assert [c.status for c in fake_coiled.clients] == ["closed"]
    assert fake_coiled.closes == [{"force_shutdown": False, "reason": None}]


def test_coiled_kwargs_match_installed_signature(software_api):
    import coiled

    software_api.build("env")
    signature = inspect.signature(coiled.Cluster.__init__)
    for asset in PROFILES:
        kwargs = ComputeResource(platform="coiled", software="env").cluster_kwargs(
            dg.AssetKey(asset)
        )
        signature.bind(None, **kwargs)
        assert set(kwargs) <= set(signature.parameters)


def test_describe_is_small_json(software_api):
    software_api.build("s")
    local = ComputeResource().describe(dg.AssetKey("regional_pmtiles"))
    assert local == {
        "compute_platform": "local",
        "local_workers": 1,
        "local_threads_per_worker": 2,
    }
    pmtiles = ComputeResource(platform="coiled").describe(dg.AssetKey("regional_pmtiles"))
    assert pmtiles["vm_type"] == pmtiles["scheduler_vm_type"] == "c8g.12xlarge"
    assert pmtiles["worker_disk_gb"] == 250
    assert pmtiles["software"] == "package sync"
    region = ComputeResource(platform="coiled", software="s").describe(dg.AssetKey("region_risk"))
    assert "worker_disk_gb" not in region
    assert region["software"] == "s"
    assert str(region["cluster_name"]).startswith("ocr-qa-region-")
    assert str(region["cluster_name"]).endswith("-b101")
    assert region["software_build"] == "101"
    assert (region["worker_memory_resource_gib"], region["task_memory_gib"]) == (28, 4)
    assert region["tasks_per_worker"] == 7
    assert "tasks_per_worker" not in pmtiles
    stats = ComputeResource(platform="coiled").describe(
        dg.AssetKey("region_summary_stats"), DuckDBResource().config(VM_TYPES["m8g.16xlarge"])
    )
    assert (stats["duckdb_memory_limit"], stats["duckdb_threads"]) == ("192GiB", 64)
    local_db = ComputeResource().describe(
        dg.AssetKey("region_summary_stats"), DuckDBResource().config()
    )
    assert (local_db["duckdb_memory_limit"], local_db["duckdb_threads"]) == ("4GB", "all cores")
    for info in (local, pmtiles, region, stats, local_db):
        assert json.loads(json.dumps(info)) == info


# --- memory: region tasks per worker, DuckDB limits per VM -------------------------------------


def test_every_profile_vm_has_its_documented_size():
    used = {p.vm_type for p in PROFILES.values()} | {p.scheduler_vm_type for p in PROFILES.values()}
    assert used <= set(VM_TYPES)
    assert {name: (vm.vcpus, vm.memory_gib) for name, vm in VM_TYPES.items()} == EXPECTED_VMS


_running = 0
_most_running = 0
_lock = threading.Lock()


def hold_a_while(seconds: float) -> None:
    global _running, _most_running
    import time

    with _lock:
        _running += 1
        _most_running = max(_most_running, _running)
    time.sleep(seconds)
    with _lock:
        _running -= 1


@pytest.mark.parametrize(("resources", "at_once"), [({"MEMORY": 4}, 7), (None, 8)])
def test_worker_memory_bounds_region_tasks_at_once(resources, at_once):
    """A real worker the size of an m8g.2xlarge (8 threads, 28 GiB of MEMORY): 12 region tasks,
    at most 7 at a time; without the task resources its 8 threads would run 8."""
    global _most_running
    from distributed import LocalCluster

    from ocr_resources.compute import _gather

    _most_running = 0
    coiled_kwargs = ComputeResource(platform="coiled").cluster_kwargs(dg.AssetKey("region_risk"))
    worker_options = coiled_kwargs["worker_options"]
    cluster = LocalCluster(
        n_workers=1,
        threads_per_worker=8,
        processes=False,
        dashboard_address=None,  # pyright: ignore[reportArgumentType] (None: no dashboard)
        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
        silence_logs=logging.ERROR,
        **worker_options,
    )
    with cluster, cluster.get_client() as client:
        _gather(client, dg.AssetKey("region_risk"), hold_a_while, [(0.3,)] * 12, {}, resources)
    assert _most_running == at_once


def test_local_region_tasks_ask_for_no_worker_resources(local_clusters):
    """Locally (no MEMORY resource on the workers) region tasks still run."""
    pid, _ = ComputeResource(local_threads_per_worker=4).run(dg.AssetKey("region_risk"), where_am_i)
    assert pid == os.getpid()
    [(_, kwargs)] = local_clusters
    assert "resources" not in kwargs


DUCKDB_ASSETS = {
    # asset: the DuckDB memory_limit and threads its VM gets on Coiled
    "buildings_geoparquet": ("72GiB", 48),
    "region_summary_stats": ("192GiB", 64),
    "region_analysis_files": ("96GiB", 16),
    "regional_pmtiles": ("72GiB", 48),
    "building_tile_features": ("72GiB", 48),
}


@pytest.mark.parametrize("asset", sorted(DUCKDB_ASSETS))
def test_duckdb_limits_follow_the_assets_vm_on_coiled(asset):
    duckdb = DuckDBResource(temp_directory="/scratch")
    coiled = duckdb.config(ComputeResource(platform="coiled").vm(dg.AssetKey(asset)))
    assert (coiled.memory_limit, coiled.threads) == DUCKDB_ASSETS[asset]
    assert coiled.temp_directory == "/scratch"
    local = duckdb.config(ComputeResource().vm(dg.AssetKey(asset)))
    assert (local.memory_limit, local.threads, local.temp_directory) == ("4GB", None, "/scratch")


def test_duckdb_takes_the_limit_it_is_given():
    import duckdb as duck

    from ocr_core.machines import duckdb_memory_limit

    con = duck.connect(
        ":memory:", config={"memory_limit": duckdb_memory_limit(VM_TYPES["m8g.16xlarge"])}
    )
    assert con.sql("SELECT current_setting('memory_limit')").fetchone() == ("192.0 GiB",)


def test_import_does_not_load_coiled_or_distributed():
    code = (
        "import sys, ocr_resources.compute; "
        "print(','.join(m for m in ('coiled', 'distributed') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == ""


def worker_plugins() -> list[str]:
    from distributed import get_worker

    return sorted(get_worker().plugins)


def test_region_workers_fill_the_kernel_cache_before_regions(fake_coiled, test_log):
    """A Coiled region worker compiles (or loads) the numba kernels as it starts."""
    compute = ComputeResource(platform="coiled", environment="qa")
    assert "ocr-kernel-cache" in compute.run(
        dg.AssetKey("region_risk"), worker_plugins, log=test_log
    )
    assert "ocr-kernel-cache" not in compute.run(
        dg.AssetKey("risk_pyramid"), worker_plugins, log=test_log
    )


# --- the DuckDB limits reach the task of each asset that opens connections ------------------

_written_with: list = []
_check_names: list[str] = []


def writer_stub(writer: str, *args, **kwargs):
    """Stands in for an asset's writer on the cluster: records the DuckDBConfig it was given
    and returns the writer's result type, every check passed."""
    from ocr_core.analysis_files import AnalysisFiles
    from ocr_core.consolidate import ConsolidatedBuildings
    from ocr_core.duck import DuckDBConfig
    from ocr_core.statistics import SummaryStats
    from ocr_core.tiles import FeatureExport, TilesetResult
    from ocr_core.tileset_info import PMTilesInfo

    _written_with.extend(a for a in (*args, *kwargs.values()) if isinstance(a, DuckDBConfig))
    checks = {name: {"passed": True, "details": {}} for name in _check_names}
    if writer == "write_buildings_geoparquet":
        return ConsolidatedBuildings("/nowhere", "/nowhere", 0, 0, 0, 0, 0, 0.0, checks)
    if writer == "write_summary_stats":
        return SummaryStats("/nowhere", 0, {}, {}, checks)
    if writer == "write_analysis_files":
        return AnalysisFiles("/nowhere", {}, (), checks)
    if writer == "export_building_features":
        return FeatureExport(0, 0.0, {}, checks)
    info = PMTilesInfo(
        bytes=0, min_zoom=0, max_zoom=0, bounds=[], tiles=0, layers=[], layer_features={},
        features=0,
    )  # fmt: skip
    return TilesetResult("/nowhere", info, checks, 0.0)


DUCKDB_WRITERS = {
    "buildings_geoparquet": (
        "ocr_assets.phase02_aggregation",
        "consolidate",
        "write_buildings_geoparquet",
    ),
    "region_summary_stats": ("ocr_assets.phase02_aggregation", "statistics", "write_summary_stats"),
    "region_analysis_files": (
        "ocr_assets.phase02_aggregation",
        "analysis_files",
        "write_analysis_files",
    ),
    "regional_pmtiles": ("ocr_assets.phase03_tiles", "tiles", "build_regional_pmtiles"),
    "building_tile_features": ("ocr_assets.phase03_tiles", "tiles", "export_building_features"),
}


@pytest.mark.parametrize("platform", ["coiled", "local"])
@pytest.mark.parametrize("asset_name", sorted(DUCKDB_WRITERS))
def test_each_duckdb_asset_hands_its_vms_limits_to_its_task(
    fake_coiled, monkeypatch, tmp_path, asset_name, platform
):
    import functools
    import importlib

    from ocr_resources import InputCatalogResource, StorageResource, TippecanoeResource

    assets_module, core_module, writer = DUCKDB_WRITERS[asset_name]
    stub = functools.partial(writer_stub, writer)
    monkeypatch.setattr(importlib.import_module(f"ocr_core.{core_module}"), writer, stub)
    asset = getattr(importlib.import_module(assets_module), asset_name)
    _written_with.clear()
    _check_names[:] = [spec.name for spec in asset.check_specs]
    result = dg.materialize(
        [asset],
        resources={
            "storage": StorageResource(root=str(tmp_path)),
            "catalog": InputCatalogResource(root=str(tmp_path)),
            "duckdb": DuckDBResource(),
            "tippecanoe": TippecanoeResource(),
            "compute": ComputeResource(platform=platform),
        },
    )
    assert result.success
    [config] = _written_with
    expected = DUCKDB_ASSETS[asset_name] if platform == "coiled" else ("4GB", None)
    assert (config.memory_limit, config.threads) == expected
    [mat] = result.asset_materializations_for_node(asset_name)
    shown = mat.metadata["compute"].value
    assert isinstance(shown, dict)
    assert shown["duckdb_memory_limit"] == expected[0]
    assert shown["duckdb_threads"] == (expected[1] or "all cores")
