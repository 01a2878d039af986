"""ComputeResource on Coiled, with only ``coiled.Cluster`` and the software environment API
faked (tests/compute_fakes.py): the exact cluster arguments, cluster names per software build,
errors before any cluster, and what ``describe`` shows."""

from __future__ import annotations

import inspect
import json
import logging

import compute_fakes
import dagster as dg
import pytest
from compute_fakes import (
    expected_kwargs,
    fail,
    new_process,
    scheduler_address,
    weighted_sum,
    where_am_i,
)

from ocr_core.machines import VM_TYPES
from ocr_resources.coiled_software import SoftwareBuildError
from ocr_resources.compute import PROFILES, ComputeResource
from ocr_resources.duckdb import DuckDBResource

# The fixtures of tests/compute_fakes.py, found by pytest among this module's names.
fake_coiled = compute_fakes.fake_coiled
software_api = compute_fakes.software_api
test_log = compute_fakes.test_log


@pytest.mark.parametrize("asset", sorted(PROFILES))
def test_coiled_submits_exact_cluster_kwargs(fake_coiled, test_log, caplog, asset):
    compute = ComputeResource(platform="coiled", environment="staging")
    key = dg.AssetKey(asset)
    result = compute.run(key, weighted_sum, [2.0], weight=4.0, key="k", log=test_log)

    assert result == (8.0, "k", 0)
    assert fake_coiled.calls == [expected_kwargs(asset, environment="staging")]
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
    expected = expected_kwargs("building_pmtiles", name_suffix=kwargs["name"][-14:])
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


def test_cluster_name_is_per_build_of_one_software_environment(software_api):
    """A rebuild under the same name is another cluster; the same build is the same one."""
    compute = ComputeResource(platform="coiled", software="ocr-main")
    software_api.build("ocr-main")
    first = compute.cluster_name(dg.AssetKey("region_risk"))
    assert compute.cluster_name(dg.AssetKey("region_buildings")) == first
    assert len(software_api.list_calls) == 1  # resolved once per process

    new_process()
    assert compute.cluster_name(dg.AssetKey("region_risk")) == first  # same build, another process

    rebuilt = software_api.build("ocr-main")
    assert compute.cluster_name(dg.AssetKey("region_risk")) == first  # this process keeps its build
    new_process()
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
    new_process()
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
