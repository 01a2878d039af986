"""Phase 01 — process regions: risk raster per region, then its buildings.

One step per region partition materializes ``region_risk`` and then ``region_buildings``; they
cannot be selected apart, so rerunning a region always refreshes both. ``region_inputs``
holds each region's input identity (a digest of what it reads), so Dagster marks exactly the
regions whose inputs or code changed as stale. ``region_assets`` builds them for a grid and a
retry count (the module-level ones are the demo grid's, for tests). A failed region is
retried by Dagster with a linear backoff (``Settings.region_retry_delay_s`` × attempt); bad
input and interrupts fail at once with a clear error, since retrying cannot fix them. The
region tasks return ``ocr_core.region_results`` records (``ocr_assets.metadata`` turns them
into the materializations' metadata).
"""

from collections.abc import Callable
from typing import TypeVar

import dagster as dg
from dagster._core.errors import DagsterExecutionInterruptedError

from ocr_assets import OWNERS
from ocr_assets.inputs import GROUP as INPUTS_GROUP
from ocr_assets.inputs import riley_2025, scott_2024, tagged_buildings, wind_direction_distribution
from ocr_assets.metadata import region_buildings_metadata, region_risk_metadata
from ocr_assets.partitions import region_partitions
from ocr_core import faults
from ocr_core.checks import AuditError
from ocr_core.errors import InputDataError, TransientInputError, is_transient, summary
from ocr_core.grid import RegionIdError
from ocr_core.versions import CODE_VERSIONS
from ocr_resources.compute import ComputeResource
from ocr_resources.settings import Settings
from ocr_resources.storage import InputCatalogResource, StorageResource

T = TypeVar("T")
GROUP = "phase01_regions"
RETRY_DELAY_S = Settings.region_retry_delay_s  # the default; × attempt (linear backoff)
REGION_RISK = dg.AssetKey("region_risk")
REGION_BUILDINGS = dg.AssetKey("region_buildings")
REGION_INPUTS = dg.AssetKey("region_inputs")
REGION_STEP = "process_region"  # the op of both region outputs
REGION_DEPS = {
    REGION_RISK: [scott_2024, riley_2025, wind_direction_distribution, REGION_INPUTS],
    REGION_BUILDINGS: [REGION_RISK, tagged_buildings, REGION_INPUTS],
}
OBSERVE_REGIONS_TAG = "ocr/regions"  # a run tag limiting an observation to these regions
ACCEPT_SHRINK_TAG = "ocr/accept-shrink"  # a run tag: accept building counts that collapsed
NOT_RETRYABLE = (RegionIdError, InputDataError, AuditError)
# Raised by input readers for what no retry can fix (missing, unreadable, malformed input).
NOT_RETRYABLE_IF_NOT_TRANSIENT = (PermissionError, FileNotFoundError, ValueError)


def retryable(exc: BaseException) -> bool:
    """Whether a region step that raised ``exc`` should be retried.

    Our classification wins: ``TransientInputError`` is retried, ``InputDataError`` and
    ``RegionIdError`` are not. Otherwise timeouts, throttling and dropped connections are
    retried, permission/missing-file/value errors are not, and anything else (a lost worker,
    an unexpected crash) is retried as before.
    """
    if isinstance(exc, TransientInputError):
        return True
    if isinstance(exc, NOT_RETRYABLE):
        return False
    if is_transient(exc):
        return True
    return not isinstance(exc, NOT_RETRYABLE_IF_NOT_TRANSIENT)


def region_retry_policy(max_retries: int, delay_s: float = RETRY_DELAY_S) -> dg.RetryPolicy:
    return dg.RetryPolicy(max_retries=max_retries, delay=delay_s, backoff=dg.Backoff.LINEAR)


def accepts_shrink(context: dg.AssetExecutionContext) -> bool:
    return context.run.tags.get(ACCEPT_SHRINK_TAG, "").lower() in ("1", "true", "yes")


def run_region_step(
    context: dg.AssetExecutionContext,
    region: str,
    key: dg.AssetKey,
    compute: ComputeResource,
    catalog: InputCatalogResource,
    fn: Callable[..., T],
    *args,
) -> T:
    """Run a region task on the region cluster; turn its failure into a clear Dagster error."""
    policy = context.op_def.retry_policy
    attempt, attempts = context.retry_number + 1, (policy.max_retries if policy else 0) + 1
    asset = key.to_user_string()
    try:
        faults.region_attempt(region, context.retry_number)
        return compute.run(key, fn, region, catalog.grid, catalog.catalog(), *args, log=context.log)
    except (DagsterExecutionInterruptedError, KeyboardInterrupt) as exc:
        # Dagster would retry an interrupt like any failure; a canceled run must stop.
        raise dg.Failure(
            description=f"{asset} for region {region}: interrupted (the run was canceled); "
            "not retried",
            allow_retries=False,
        ) from exc
    except Exception as exc:
        if not retryable(exc) or _canceling(context):
            message = str(exc) if isinstance(exc, NOT_RETRYABLE) else summary(exc)
            raise dg.Failure(
                description=f"{asset} for region {region}: {message}", allow_retries=False
            ) from exc
        cause = summary(exc)
        if attempt >= attempts:
            raise dg.Failure(
                description=f"{asset} for region {region} failed after {attempt} attempt(s); "
                f"last error: {cause}",
                allow_retries=False,
            ) from exc
        delay = policy.delay * attempt if policy and policy.delay else 0
        context.log.warning(
            f"{asset} for region {region}: attempt {attempt}/{attempts} failed ({cause}); "
            f"retrying in {delay:g} s"
        )
        raise


def _canceling(context: dg.AssetExecutionContext) -> bool:
    """Whether the run is being terminated: a task lost to the interrupt is never retried."""
    run = context.instance.get_run_by_id(context.run.run_id)
    return run is not None and run.status in (
        dg.DagsterRunStatus.CANCELING,
        dg.DagsterRunStatus.CANCELED,
    )


class RegionRecorder:
    """Records each region output of a run as its own partition's materialization, with the
    data version Dagster derives from that partition's inputs (see ``provenance.py``). The
    unpartitioned inputs' versions are read once per step, the region's input digest once
    per region."""

    def __init__(self, context: dg.AssetExecutionContext):
        self.context = context
        self._shared: dict = {}
        self._regions: dict = {}

    def _version(self, dep: dg.AssetKey, region: str):
        from ocr_assets.provenance import latest_version

        instance = self.context.instance
        if dep == REGION_INPUTS:
            if region not in self._regions:
                self._regions[region] = latest_version(instance, dep, region, observable=True)
            return self._regions[region]
        if dep not in self._shared:
            self._shared[dep] = latest_version(instance, dep, None, observable=False)
        return self._shared[dep]

    def materialization(
        self, key: dg.AssetKey, region: str, metadata: dict, produced: dict
    ) -> dg.AssetMaterialization:
        from ocr_assets.provenance import provenance_tags

        inputs = {
            dep: produced[dep] if dep in produced else self._version(dep, region)
            for dep in REGION_DEPS[key]
        }
        tags = provenance_tags(region_code_version(key), inputs)
        if backfill := self.context.run.tags.get("dagster/backfill"):
            tags["dagster/backfill"] = backfill
        produced[key] = (dg.DataVersion(tags["dagster/data_version"]), None)
        return dg.AssetMaterialization(
            asset_key=key, partition=region, metadata=metadata, tags=tags
        )

    def done_in_this_run(self, region: str) -> bool:
        """Whether an earlier attempt of this run already recorded the region."""
        if self.context.retry_number == 0:
            return False
        records = self.context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=REGION_BUILDINGS, asset_partitions=[region]), limit=1
        ).records
        return bool(records) and records[0].run_id == self.context.run.run_id


def _process_region(
    context: dg.AssetExecutionContext,
    storage: StorageResource,
    catalog: InputCatalogResource,
    compute: ComputeResource,
):
    """Each region of the run: its risk, then its buildings. A region that fails for a reason
    no retry fixes does not stop the others; the step fails at the end, naming them."""
    try:
        yield from _process_regions(context, storage, catalog, compute)
    except (DagsterExecutionInterruptedError, KeyboardInterrupt) as exc:
        raise _interrupted(context) from exc


def _interrupted(context: dg.AssetExecutionContext) -> dg.Failure:
    return dg.Failure(
        description=f"region step for {', '.join(context.partition_keys)}: interrupted (the "
        "run was canceled); not retried",
        allow_retries=False,
    )


def _process_regions(
    context: dg.AssetExecutionContext,
    storage: StorageResource,
    catalog: InputCatalogResource,
    compute: ComputeResource,
):
    from ocr_core.process_region import run_region_buildings, run_region_risk

    if _canceling(context):  # an interrupt Dagster turned into a retry: stop here
        raise _interrupted(context)
    out = storage.storage()
    recorder = RegionRecorder(context)
    failures: list[str] = []
    for region in context.partition_keys:
        if recorder.done_in_this_run(region):
            continue
        produced: dict = {}
        try:
            risk = run_region_step(
                context, region, REGION_RISK, compute, catalog, run_region_risk, out
            )
            yield recorder.materialization(
                REGION_RISK,
                region,
                region_risk_metadata(risk, compute.describe(REGION_RISK)),
                produced,
            )
            buildings = run_region_step(
                context,
                region,
                REGION_BUILDINGS,
                compute,
                catalog,
                run_region_buildings,
                out,
                accepts_shrink(context),
            )
            yield recorder.materialization(
                REGION_BUILDINGS,
                region,
                region_buildings_metadata(buildings, compute.describe(REGION_BUILDINGS)),
                produced,
            )
        except dg.Failure as failure:
            if len(context.partition_keys) == 1:
                raise
            message = failure.description or str(failure)
            context.log.error(message)
            failures.append(message)
    if failures:
        raise dg.Failure(
            description=f"{len(failures)} region(s) failed: " + " | ".join(failures),
            allow_retries=False,
        )


def _observe_region_inputs(
    context: dg.OpExecutionContext, catalog: InputCatalogResource, compute: ComputeResource
) -> dg.DataVersionsByPartition:
    from ocr_core.fingerprint import observed_fingerprint

    ids = region_partitions(catalog.grid).get_partition_keys()
    if asked := context.run.tags.get(OBSERVE_REGIONS_TAG):
        ids = [rid for rid in ids if rid in set(asked.split(","))]
    cat = catalog.catalog()
    digests = compute.map(
        REGION_INPUTS,
        observed_fingerprint,
        [(rid, catalog.grid, cat) for rid in ids],
        log=context.log,
    )
    unreadable = [rid for rid, d in zip(ids, digests, strict=True) if d.startswith("unreadable")]
    if unreadable:
        context.log.warning(
            f"inputs of {len(unreadable)} region(s) cannot be read ({', '.join(unreadable)}); "
            "they are marked changed and their run will say why"
        )
    return dg.DataVersionsByPartition(
        {rid: dg.DataVersion(d) for rid, d in zip(ids, digests, strict=True)}
    )


def region_inputs_asset(grid_name: str) -> dg.AssetsDefinition:
    """The per-region identity of the inputs: observe it, and Dagster marks exactly the
    regions whose input windows changed as stale."""
    from dagster._core.definitions.external_asset import create_external_asset_from_source_asset

    source = dg.observable_source_asset(
        name=REGION_INPUTS.path[-1],
        partitions_def=region_partitions(grid_name),
        group_name=INPUTS_GROUP,
        description="Digest of what each region reads (its input windows and buildings); "
        "observe it after changing an input to see which regions need a rerun.",
    )(_observe_region_inputs)
    # A source asset drops owners; its asset form keeps them.
    return create_external_asset_from_source_asset(source).map_asset_specs(
        lambda spec: spec.replace_attributes(owners=OWNERS)
    )


def _trivial_region(context: dg.AssetExecutionContext):
    """The region step with no work, for measuring what orchestration alone costs (the
    materializations are recorded as a real run records them)."""
    recorder = RegionRecorder(context)
    for region in context.partition_keys:
        produced: dict = {}
        for key in (REGION_RISK, REGION_BUILDINGS):
            yield recorder.materialization(key, region, {"trivial_compute": True}, produced)


def region_assets(
    grid_name: str,
    max_retries: int,
    trivial_compute: bool = False,
    regions_per_run: int = 1,
    retry_delay_s: float = RETRY_DELAY_S,
) -> list:
    """``region_inputs`` and the region step, which materializes ``region_risk`` and then
    ``region_buildings`` for each of its partitions (they cannot be selected apart). A
    backfill puts ``regions_per_run`` regions in one run."""
    common = {"group_name": GROUP, "tags": {"ocr/phase": "01"}, "owners": OWNERS}
    specs = [
        dg.AssetSpec(
            REGION_RISK,
            code_version=region_code_version(REGION_RISK),
            deps=REGION_DEPS[REGION_RISK],
            skippable=True,  # recorded per partition by RegionRecorder
            kinds={"python", "dask", "icechunk"},
            description="Wind-informed fire risk (8 variables) for one region, committed to "
            "the icechunk risk repository (one commit per region).",
            **common,
        ),
        dg.AssetSpec(
            REGION_BUILDINGS,
            code_version=region_code_version(REGION_BUILDINGS),
            deps=REGION_DEPS[REGION_BUILDINGS],
            skippable=True,
            kinds={"python", "dask", "parquet"},
            description="The region's buildings with the 8 risk values sampled at their "
            "centroids (geoparquet-regions/{region}.parquet, GeoParquet 1.1).",
            **common,
        ),
    ]
    step = dg.multi_asset(
        name=REGION_STEP,
        specs=specs,
        partitions_def=region_partitions(grid_name),
        retry_policy=region_retry_policy(max_retries, retry_delay_s),
        # One region per run by default (runs tagged with their partition, as in the UI);
        # several share a run's start-up cost when asked to.
        backfill_policy=(
            dg.BackfillPolicy.multi_run(regions_per_run) if regions_per_run > 1 else None
        ),
        can_subset=False,
        description="One region: its risk raster, then its buildings sampled from it.",
    )(_trivial_region if trivial_compute else _process_region)
    return [region_inputs_asset(grid_name), step]


def region_code_version(key: dg.AssetKey) -> str:
    """A region output's code version; the buildings carry the risk method's too, since they
    hold values it computed."""
    if key == REGION_RISK:
        return CODE_VERSIONS["region_risk"]
    return f"{CODE_VERSIONS['region_buildings']}+risk.{CODE_VERSIONS['region_risk']}"


region_inputs, process_region = region_assets("demo", Settings().region_max_retries)
