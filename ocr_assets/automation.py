"""How the pipeline completes itself: the fan-in assets follow the regions, evaluated by the daemon.

Whatever launched the regions (a UI backfill, ``ocr-dagster run``, CI), once the regions it
asked for are materialized the daemon's automation sensor requests the fan-ins — consolidated
buildings, statistics, tiles (and the analysis files and pyramid when the environment
switches them on) — in one run, and never while a region or a fan-in is still in progress or
queued in a backfill, nor while a region's latest run failed (the products never mix fresh
and failed regions). Nothing is requested before the first region exists: the condition waits
for a computed parent to update, not for a missing output or a new input.
"""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg

SENSOR = "ocr_pipeline_automation"


def after_upstream(inputs_group: str) -> dg.AutomationCondition:
    """True once a computed parent updated (or will in this tick) since this asset was last
    requested, no parent's latest run failed, and nothing upstream or here is running. New
    input datasets alone request nothing: the regions read them first."""
    return (
        dg.AutomationCondition.any_deps_updated()
        .ignore(dg.AssetSelection.groups(inputs_group))
        .since_last_handled()
        & ~dg.AutomationCondition.any_deps_match(dg.AutomationCondition.execution_failed())
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
    ).with_label("after_upstream_done")


def with_automation(assets: Sequence, keys: set[dg.AssetKey], inputs_group: str) -> list:
    """``assets`` with the fan-in condition set on the specs whose key is in ``keys``."""
    condition = after_upstream(inputs_group)
    return list(
        dg.map_asset_specs(
            lambda spec: (
                spec.replace_attributes(automation_condition=condition)
                if spec.key in keys
                else spec
            ),
            assets,
        )
    )


def automation_sensor(interval_seconds: int) -> dg.AutomationConditionSensorDefinition:
    """The daemon's evaluation of the conditions, on from the start."""
    return dg.AutomationConditionSensorDefinition(
        SENSOR,
        target=dg.AssetSelection.all(),
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=interval_seconds,
        description="Materializes the fan-in assets once the regions they read are done.",
    )
