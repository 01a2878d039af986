"""ComputeResource on the local platform: real local Dask runs, the choices it validates, and
its use inside Dagster assets (Coiled: tests/test_compute_coiled.py; profiles, memory and DuckDB
limits: tests/test_compute_profiles.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import compute_fakes
import dagster as dg
import pytest
from compute_fakes import fail, weighted_sum, where_am_i
from processes import PROJECT

from ocr_resources.compute import ComputeResource

# The fixtures of tests/compute_fakes.py, found by pytest among this module's names.
local_clusters = compute_fakes.local_clusters


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


def test_local_region_tasks_ask_for_no_worker_resources(local_clusters):
    """Locally (no MEMORY resource on the workers) region tasks still run."""
    pid, _ = ComputeResource(local_threads_per_worker=4).run(dg.AssetKey("region_risk"), where_am_i)
    assert pid == os.getpid()
    [(_, kwargs)] = local_clusters
    assert "resources" not in kwargs


def test_import_does_not_load_coiled_or_distributed():
    code = (
        "import sys, ocr_resources.compute; "
        "print(','.join(m for m in ('coiled', 'distributed') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == ""
