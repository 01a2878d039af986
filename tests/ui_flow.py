"""A backfill of region partitions followed over the UI's GraphQL API: launched with the UI's
own mutation, then polled until its regions and the fan-ins the automation builds are done."""

from __future__ import annotations

from dataclasses import dataclass, field

from ui_server import UI, sensor_state, wait_until

from ocr_assets.automation import SENSOR
from ocr_core import fan_ins

REGION_KEYS = ("region_risk", "region_buildings")
N_REGIONS = 12  # the demo grid
FAN_INS = tuple(sorted(fan_ins.FAN_INS))
FLOW_TIMEOUT_S = 480

# The mutation and the parameters the UI's "Materialize" → partitions → "Launch backfill"
# sends (dagster-webserver 1.13.27, LaunchAssetChoosePartitionsDialog: asset job target).
LAUNCH_PARTITION_BACKFILL = """
mutation LaunchPartitionBackfill($backfillParams: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $backfillParams) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PartitionSetNotFoundError { message }
    ... on PartitionKeysNotFoundError { message }
    ... on UnauthorizedError { message }
    ... on PythonError { message stack }
  }
}
"""
UI_TAGS = [{"key": "dagster/from_ui", "value": "true"}]

PROGRESS = """
query Progress($backfillId: String!, $regions: [AssetKeyInput!], $partitions: [String!],
               $fanIns: [AssetKeyInput!]) {
  partitionBackfillOrError(backfillId: $backfillId) {
    __typename
    ... on PartitionBackfill { status partitionNames assetSelection { path } }
    ... on PythonError { message }
  }
  regions: assetNodes(assetKeys: $regions) {
    assetKey { path }
    assetMaterializations(partitions: $partitions) { runId partition timestamp }
  }
  fanIns: assetNodes(assetKeys: $fanIns) {
    assetKey { path }
    assetMaterializations(limit: 1) { runId timestamp }
  }
  runsOrError {
    __typename
    ... on Runs { results { runId status startTime endTime tags { key value } } }
  }
}
"""
STALENESS = """
query Staleness($regions: [AssetKeyInput!], $partitions: [String!], $fanIns: [AssetKeyInput!]) {
  regions: assetNodes(assetKeys: $regions) {
    assetKey { path }
    staleStatusByPartition(partitions: $partitions)
  }
  fanIns: assetNodes(assetKeys: $fanIns) { assetKey { path } staleStatus }
}
"""
FAILED_RUN = {"FAILURE", "CANCELED", "CANCELING"}
FAILED_BACKFILL = {"FAILED", "COMPLETED_FAILED", "CANCELED", "CANCELING", "FAILING"}


def asset_keys(names) -> list[dict]:
    return [{"path": [name]} for name in names]


def staleness(ui, partitions) -> dict:
    """Dagster's stale status of the region partitions and of the fan-ins, over GraphQL."""
    variables = {
        "regions": asset_keys(REGION_KEYS),
        "partitions": list(partitions),
        "fanIns": asset_keys(FAN_INS),
    }
    return ui.graphql(STALENESS, variables)


def run_tags(run: dict) -> dict:
    return {t["key"]: t["value"] for t in run["tags"]}


def from_automation(run: dict) -> bool:
    tags = run_tags(run)
    return (
        tags.get("dagster/from_automation_condition") == "true"
        or tags.get("dagster/sensor_name") == SENSOR
    )


def launch_backfill_like_the_ui(ui: UI, partitions) -> str:
    params = {
        "tags": UI_TAGS,
        "assetSelection": asset_keys(REGION_KEYS),
        "partitionNames": list(partitions),
        "fromFailure": False,
    }
    result = ui.graphql(LAUNCH_PARTITION_BACKFILL, {"backfillParams": params})
    result = result["launchPartitionBackfill"]
    assert result["__typename"] == "LaunchBackfillSuccess", result
    return result["backfillId"]


@dataclass
class Flow:
    """A backfill followed to the end: its regions, then the fan-ins the daemon built."""

    backfill_id: str
    partitions: tuple[str, ...]
    backfill: dict = field(default_factory=dict)
    region_materializations: dict = field(default_factory=dict)  # (asset, partition) -> event
    fan_in_materializations: dict = field(default_factory=dict)  # asset -> latest event
    runs: list[dict] = field(default_factory=list)

    @property
    def regions_done_ms(self) -> int:
        return max(int(m["timestamp"]) for m in self.region_materializations.values())

    def poll(self, ui: UI) -> dict:
        """The backfill, the regions, the fan-ins and the runs now; a failed run or backfill
        fails the test at once."""
        data = ui.graphql(
            PROGRESS,
            {
                "backfillId": self.backfill_id,
                "regions": asset_keys(REGION_KEYS),
                "partitions": list(self.partitions),
                "fanIns": asset_keys(FAN_INS),
            },
        )
        backfill = data["partitionBackfillOrError"]
        assert backfill["__typename"] == "PartitionBackfill", backfill
        assert backfill["status"] not in FAILED_BACKFILL, f"backfill {self.backfill_id}: {backfill}"
        runs = data["runsOrError"]["results"]
        failed = [(r["runId"], run_tags(r)) for r in runs if r["status"] in FAILED_RUN]
        assert not failed, f"runs failed: {failed}"
        self.backfill, self.runs = backfill, runs
        return data

    def wait_for_regions(self, ui: UI, timeout: float = FLOW_TIMEOUT_S) -> None:
        """Until the backfill has completed and each of its regions is materialized."""
        wanted = {(key, p) for key in REGION_KEYS for p in self.partitions}

        def done():
            data = self.poll(ui)
            events = {
                ("/".join(n["assetKey"]["path"]), m["partition"]): m
                for n in data["regions"]
                for m in reversed(n["assetMaterializations"])  # newest last, so it wins
            }
            completed = self.backfill["status"] in {"COMPLETED", "COMPLETED_SUCCESS"}
            return events if completed and wanted <= set(events) else None

        self.region_materializations = wait_until(
            f"the regions of backfill {self.backfill_id}", done, timeout
        )

    def wait_for_fan_ins(self, ui: UI, timeout: float = FLOW_TIMEOUT_S) -> None:
        """Until every fan-in has a materialization newer than the regions, from a run that
        has finished (its checks run after the assets)."""
        after = self.regions_done_ms

        def done():
            data = self.poll(ui)
            latest = {
                "/".join(n["assetKey"]["path"]): n["assetMaterializations"][0]
                for n in data["fanIns"]
                if n["assetMaterializations"]
            }
            fresh = {k: m for k, m in latest.items() if int(m["timestamp"]) > after}
            if set(fresh) != set(FAN_INS):
                return None
            statuses = {r["runId"]: r["status"] for r in self.runs}
            finished = all(statuses.get(m["runId"]) == "SUCCESS" for m in fresh.values())
            return fresh if finished else None

        self.fan_in_materializations = wait_until("the fan-ins after the regions", done, timeout)


def wait_for_quiet_automation(ui: UI, after_s: float, ticks: int = 2) -> list[dict]:
    """The automation's next ``ticks`` evaluations after ``after_s`` (epoch seconds)."""

    def later_ticks():
        found = [t for t in sensor_state(ui)["ticks"] if t["timestamp"] > after_s]
        done = [t for t in found if t["endTimestamp"]]
        return done if len(done) >= ticks else None

    return wait_until(f"{ticks} automation ticks", later_ticks, 120, 2)


def project_status(ui: UI):
    """``ocr_assets.staleness`` on the module's instance, read from its DAGSTER_HOME."""
    import dagster as dg
    from dagster._core.instance.ref import InstanceRef

    from ocr_assets.definitions import build_defs
    from ocr_assets.staleness import pipeline_status
    from ocr_resources.settings import Settings

    defs = build_defs(Settings(storage_root=str(ui.root), input_root=str(ui.input_root)))
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(ui.home))) as instance:
        return pipeline_status(instance, defs)
