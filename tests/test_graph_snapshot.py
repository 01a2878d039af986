"""The asset graph as a reviewed snapshot: any change to its keys, dependencies, groups, kinds,
owners, code versions, checks, partitioning, retries or jobs shows up in review as a diff of
``tests/__snapshots__/test_graph_snapshot.ambr``. After an intended change, refresh it with
``./dev test tests/test_graph_snapshot.py --snapshot-update`` and commit the diff."""

from __future__ import annotations

import dagster as dg
import pytest

from ocr_assets.definitions import build_defs
from ocr_resources.settings import Settings


def _key(key: dg.AssetKey) -> str:
    return key.to_user_string()


def graph_facts(defs: dg.Definitions) -> dict:
    """Everything a reviewer should see change, in a stable order."""
    graph = defs.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=_key):
        node = graph.get(key)
        spec = node.to_asset_spec()
        partitions = node.partitions_def
        policy = node.backfill_policy
        assets[_key(key)] = {
            "deps": sorted(_key(k) for k in node.parent_keys),
            "group": node.group_name,
            "kinds": sorted(spec.kinds),
            "owners": sorted(spec.owners),
            "code_version": node.code_version,
            "materializable": node.is_materializable,
            "observable": node.is_observable,
            "partitions": len(partitions.get_partition_keys()) if partitions else None,
            "backfill_policy": str(policy.policy_type) if policy else None,
            "checks": sorted(c.name for c in graph.get_check_keys_for_assets({key})),
            "automated": node.automation_condition is not None,
        }
    jobs = {}
    for job in sorted(defs.resolve_all_job_defs(), key=lambda j: j.name):
        if job.name.startswith("__"):
            continue  # Dagster's implicit job
        selected = job.asset_layer.selected_asset_keys
        jobs[job.name] = {
            "assets": sorted(_key(k) for k in selected),
            "tags": {k: v for k, v in sorted(job.tags.items()) if k.startswith("ocr/")},
        }
    return {"assets": assets, "jobs": jobs}


@pytest.mark.parametrize(
    "settings",
    [
        pytest.param(Settings(grid="demo"), id="demo-qa"),
        pytest.param(Settings(grid="conus", environment="staging"), id="conus-staging"),
    ],
)
def test_asset_graph_matches_the_reviewed_snapshot(settings, snapshot):
    assert graph_facts(build_defs(settings)) == snapshot
