"""Which regions and products are out of date, from Dagster's own data versions.

A region is stale when Dagster says so — its code version changed, or the digest of its
inputs (``region_inputs``, observed) differs from the one it was computed from — or when it
was never materialized. A product downstream is stale when Dagster says so or when anything
it is built from is stale (Dagster compares only direct parents, so the closure is taken
here): after one region's inputs change, that region and the fan-ins are stale, nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ocr_assets.phase01_regions import REGION_BUILDINGS, REGION_RISK

REGION_KEYS = (REGION_RISK, REGION_BUILDINGS)


@dataclass
class PipelineStatus:
    stale_regions: dict[str, list[str]] = field(default_factory=dict)  # region -> causes
    missing_regions: list[str] = field(default_factory=list)
    stale_fan_ins: dict[str, list[str]] = field(default_factory=dict)  # asset -> causes
    fresh_regions: int = 0

    @property
    def regions_to_run(self) -> list[str]:
        """The regions whose code or inputs changed. Missing regions are not among them: an
        environment runs the regions it names (qa: 15 of 405), so absence is not a change."""
        return sorted(self.stale_regions)

    def describe(self) -> str:
        lines = [
            f"regions: {self.fresh_regions} up to date, {len(self.stale_regions)} stale, "
            f"{len(self.missing_regions)} missing"
        ]
        for rid, causes in sorted(self.stale_regions.items()):
            lines.append(f"  stale {rid}: {'; '.join(causes)}")
        if self.missing_regions:
            lines.append(f"  missing: {' '.join(self.missing_regions)}")
        for key, causes in sorted(self.stale_fan_ins.items()):
            lines.append(f"  stale {key}: {'; '.join(causes)}")
        return "\n".join(lines)


def _resolver(instance, asset_graph):
    from dagster._core.asset_graph_view.asset_graph_view import AssetGraphView
    from dagster._core.definitions.data_version import CachingStaleStatusResolver
    from dagster._core.definitions.temporal_context import TemporalContext
    from dagster._time import get_current_datetime

    view = AssetGraphView(
        temporal_context=TemporalContext(effective_dt=get_current_datetime(), last_event_id=None),
        instance=instance,
        asset_graph=asset_graph,
    )
    return CachingStaleStatusResolver(
        instance=instance, asset_graph=asset_graph, loading_context=view
    )


def _causes(resolver, key, partition=None) -> list[str]:
    return sorted(
        {
            f"{c.asset_key.to_user_string()} {c.reason}" if c.asset_key != key else c.reason
            for c in resolver.get_stale_root_causes(key, partition)
        }
    )


def pipeline_status(instance, defs) -> PipelineStatus:
    """Stale and missing regions (by partition) and stale products of the definitions."""
    from dagster._core.definitions.data_version import StaleStatus

    graph = defs.resolve_asset_graph()
    resolver = _resolver(instance, graph)
    status = PipelineStatus()
    regions = graph.get(REGION_RISK).partitions_def.get_partition_keys()
    for rid in regions:
        states = {key: resolver.get_status(key, rid) for key in REGION_KEYS}
        if StaleStatus.MISSING in states.values():
            status.missing_regions.append(rid)
        elif StaleStatus.STALE in states.values():
            status.stale_regions[rid] = sorted(
                {c for key in REGION_KEYS for c in _causes(resolver, key, rid)}
            )
        else:
            status.fresh_regions += 1
    upstream_stale = bool(status.stale_regions)
    for key in _downstream_in_order(graph):
        node = graph.get(key)
        materialized = instance.get_latest_materialization_event(key) is not None
        if not materialized:
            continue
        causes = []
        if resolver.get_status(key) == StaleStatus.STALE:
            causes += _causes(resolver, key)
        stale_parents = [
            p.to_user_string()
            for p in node.parent_keys
            if p.to_user_string() in status.stale_fan_ins or (p in REGION_KEYS and upstream_stale)
        ]
        if stale_parents:
            causes.append(f"built from stale {', '.join(sorted(stale_parents))}")
        if causes:
            status.stale_fan_ins[key.to_user_string()] = causes
    return status


def _downstream_in_order(graph) -> list:
    """The materializable unpartitioned assets, parents before children."""
    keys = [
        k
        for level in graph.toposorted_asset_keys_by_level
        for k in level
        if graph.get(k).is_materializable and not graph.get(k).is_partitioned
    ]
    return keys
