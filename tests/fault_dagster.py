"""Fault-suite categories run in process through Dagster (tests/fault_suite.py): retries and
a permanent failure, idempotency; and the helpers the bad-input category shares."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fault_state import REGIONS, Case, Category, compare, orphans, published
from fault_workspace import Workspace, copy_root

RETRY_DELAY_S = 0.2


def dagster_resources(inputs: Path, root: str) -> dict:
    """The resources of an in-process run writing to ``root`` and reading ``inputs``."""
    from ocr_resources import (
        ComputeResource,
        DuckDBResource,
        InputCatalogResource,
        StorageResource,
        TippecanoeResource,
    )

    return {
        "storage": StorageResource(root=root),
        "catalog": InputCatalogResource(root=str(inputs)),
        "compute": ComputeResource(),
        "duckdb": DuckDBResource(memory_limit="1GB"),
        "tippecanoe": TippecanoeResource(),
    }


@contextmanager
def with_faults(plan: dict | None) -> Iterator[None]:
    """OCR_FAULTS set to ``plan`` (unset if None) for an in-process run."""
    previous = os.environ.pop("OCR_FAULTS", None)
    if plan:
        os.environ["OCR_FAULTS"] = json.dumps(plan)
    try:
        yield
    finally:
        os.environ.pop("OCR_FAULTS", None)
        if previous is not None:
            os.environ["OCR_FAULTS"] = previous


def region_step_asset(regions_per_run: int = 1):
    """The demo's region step (2 retries, a short delay), ``regions_per_run`` per run."""
    from ocr_assets.phase01_regions import region_assets

    return region_assets("demo", 2, regions_per_run=regions_per_run, retry_delay_s=RETRY_DELAY_S)[1]


def step_events(result, kind: str) -> list:
    """The events of ``kind`` (e.g. STEP_FAILURE) in a run's result."""
    return [e for e in result.all_events if e.event_type_value == kind]


def retry_category(ws: Workspace) -> Category:
    """Transient failures on 2 of 3 regions' first attempts (one of them twice): every region
    succeeds and the waits are 1 × and 2 × the delay. Then one region fails for good inside a
    run of all three and the fan-in after it: nothing downstream publishes."""
    from ocr_core.storage import Storage

    cat = Category("retries")
    root = copy_root(ws, "retries")
    storage = Storage(root)
    cat.cases += _transient_cases(ws, storage, root, cat.name)
    cat.add(_permanent_failure_case(ws, storage, root, cat.name))
    return cat


def _transient_cases(ws: Workspace, storage, root: str, category: str) -> list[Case]:
    """Each region run with its planned transient failures: it succeeds after waits of
    delay × attempt, and every published output is as before."""
    import dagster as dg

    cases = []
    flaky = {REGIONS[0]: 1, REGIONS[1]: 2}
    plan = {"transient_regions": list(flaky), "transient_attempts": flaky}
    step = region_step_asset()
    with dg.instance_for_test() as instance, with_faults(plan):
        for region in REGIONS:
            case = Case(category, f"transient ×{flaky.get(region, 0)} {region}")
            cases.append(case)
            before = published(storage)
            result = dg.materialize(
                [step],
                partition_key=region,
                instance=instance,
                resources=dagster_resources(ws.inputs["A"], root),
                raise_on_error=False,
            )
            waits = [
                e.event_specific_data.seconds_to_wait
                for e in step_events(result, "STEP_UP_FOR_RETRY")
            ]
            expected = [RETRY_DELAY_S * (k + 1) for k in range(flaky.get(region, 0))]
            case.lost, case.corrupted = compare(before, published(storage))
            case.orphans = len(orphans(storage))
            case.note = f"waits {waits} s, expected {expected} (linear: delay × attempt)"
            case.passed = (
                result.success
                and [round(w, 6) for w in waits] == [round(w, 6) for w in expected]
                and not (case.lost or case.corrupted or case.orphans)
            )
    return cases


def _permanent_failure_case(ws: Workspace, storage, root: str, category: str) -> Case:
    """The last region fails for good in a run of all three and the fan-ins after it: one
    failure, no retry, and only the other two regions' outputs change."""
    import dagster as dg

    from ocr_assets import phase02_aggregation, phase03_tiles

    case = Case(category, f"permanent failure of {REGIONS[2]} in a 3-region run")
    fan_ins = [phase02_aggregation.buildings_geoparquet, phase02_aggregation.region_summary_stats]
    before = published(storage)
    with dg.instance_for_test() as instance, with_faults({"permanent_regions": [REGIONS[2]]}):
        result = dg.materialize(
            [region_step_asset(len(REGIONS)), *fan_ins, phase03_tiles.regional_pmtiles],
            instance=instance,
            resources=dagster_resources(ws.inputs["B"], root),
            raise_on_error=False,
            tags={
                "dagster/asset_partition_range_start": REGIONS[0],
                "dagster/asset_partition_range_end": REGIONS[-1],
            },
        )
    after = published(storage)
    fan_in_keys = {a.key for a in fan_ins} | {phase03_tiles.regional_pmtiles.key}
    published_fan_ins = [
        e for e in result.all_events if e.is_step_materialization and e.asset_key in fan_in_keys
    ]
    changed = sorted(k for k in before if before[k] != after[k])
    moved = [k for k in changed if not k.endswith((REGIONS[0], REGIONS[1]))]
    failures = step_events(result, "STEP_FAILURE")
    case.lost, case.corrupted = compare(
        before, after, {k: after[k] for k in changed if k not in moved}
    )
    case.corrupted += len(moved)
    case.orphans = len(orphans(storage))
    case.note = f"changed: {changed}"
    case.passed = (
        not result.success
        and not published_fan_ins
        and not step_events(result, "STEP_UP_FOR_RETRY")
        and len(failures) == 1
        and "injected permanent failure" in failures[0].event_specific_data.error.message
        and not (case.lost or case.corrupted or case.orphans)
    )
    return case


def idempotency_category(ws: Workspace) -> Category:
    """A region partition materialized twice, and the consolidation twice: the same bytes,
    and no building twice downstream."""
    import dagster as dg

    from ocr_assets import phase02_aggregation
    from ocr_core import checks
    from ocr_core.storage import Storage

    cat = Category("idempotency")
    root = copy_root(ws, "idempotency")
    storage = Storage(root)
    with dg.instance_for_test() as instance:
        for label, assets, key in (
            ("region twice", [region_step_asset()], REGIONS[0]),
            ("consolidation twice", [phase02_aggregation.buildings_geoparquet], None),
        ):
            case = cat.add(Case(cat.name, label))
            states, successes = [], []
            for _ in range(2):
                result = dg.materialize(
                    assets,
                    partition_key=key,
                    instance=instance,
                    resources=dagster_resources(ws.inputs["A"], root),
                    raise_on_error=False,
                )
                states.append(published(storage))
                successes.append(result.success)
            clean = published(Storage(str(ws.base / "clean-a")))
            case.lost, case.corrupted = compare(clean, states[-1])
            case.corrupted += sum(1 for k in clean if states[0][k] != states[1][k])
            ok, details = checks.consolidated_matches_regions(storage)
            case.orphans = len(orphans(storage))
            case.note = (
                f"consolidated rows {details['consolidated']['rows']} of {details['region_rows']}"
            )
            case.passed = (
                all(successes) and ok and not (case.lost or case.corrupted or case.orphans)
            )
    return cat


def one_line_failure(result) -> tuple[bool, str]:
    """(the run failed once, not retried, with a one-line error; that line)."""
    failures = step_events(result, "STEP_FAILURE")
    if result.success or len(failures) != 1 or step_events(result, "STEP_UP_FOR_RETRY"):
        return False, f"success={result.success} failures={len(failures)}"
    message = failures[0].event_specific_data.error.message.strip()
    return len(message.splitlines()) == 1, message
