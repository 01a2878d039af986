"""``ocr-dagster deploy run``: launch a deploy into an environment's Dagster and follow it.

The deploy is one asset backfill, made over the webserver's GraphQL API as the UI makes it:
the requested region partitions of the region assets and every downstream product the plan
asks for, so Dagster runs the regions and then the fan-ins in the deployment itself (its queue,
limits, retries, run monitoring, lineage). This command only checks, launches and watches:

1. the code location is reloaded and must say it serves the expected environment and
   namespace (and commit, with ``--expect-ref``), so a deploy never lands in another one;
2. another deploy of the namespace in progress refuses this one (and of two launched at the
   same instant, the later cancels itself before any run starts);
3. ``--regions missing`` asks the deployment which regions have no successful materialization
   from a run of this namespace (a production rerun of a version redoes only those);
4. progress is printed until the backfill ends, then one line per failure and a summary; the
   exit status is 0 only if every region and product materialized;
5. SIGTERM or Ctrl-C (a cancelled CI job) cancels the backfill and terminates its runs.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ocr_assets.follow import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    IN_PROGRESS_RUN,
    Interrupted,
    Progress,
    raise_interrupted,
)
from ocr_core.errors import first_line
from ocr_core.fan_ins import FAN_INS
from ocr_deploy.graphql import DeployError, GraphQL
from ocr_deploy.instance import LOCATION_NAME
from ocr_deploy.queries import (
    ACTIVE_BACKFILLS,
    CANCEL,
    FAILURES,
    LAUNCH,
    MATERIALIZED,
    NAMESPACE_RUNS,
    PARTITION_KEYS,
    PROGRESS,
    RELOAD,
    TERMINATE,
)
from ocr_resources.run_coordinator import ENVIRONMENT_TAG, NAMESPACE_TAG

REGION_ASSETS = ("region_risk", "region_buildings")
OPTIONAL_PRODUCTS = {"region_analysis_files": "write_regional_stats", "risk_pyramid": "pyramid"}
DEPLOY_TAG = "ocr/deploy"  # on a deploy's backfill and its runs: the namespace deployed
REPOSITORY = "__repository__"
FACTS_JOB = "aggregate_and_tile"  # its tags are the location's facts (ocr_assets.jobs)
DONE_BACKFILL = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}
ACTIVE_BACKFILL = {"REQUESTED", "CANCELING", "FAILING"}


@dataclass(frozen=True)
class Target:
    """What a deploy is for: the environment and namespace the code location must serve."""

    environment: str
    namespace: str
    code_ref: str | None = None


@dataclass
class Followed:
    """The end of a deploy: counts per asset and one line per failure."""

    backfill_id: str
    status: str = ""
    regions: dict[str, int] = field(default_factory=dict)
    products: dict[str, str] = field(default_factory=dict)  # asset -> materialized/failed/...
    runs: list[dict] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            self.status in ("COMPLETED", "COMPLETED_SUCCESS")
            and not self.failures
            and self.regions.get("failed", 0) == 0
            and all(state == "materialized" for state in self.products.values())
        )


def _tags(entry: dict) -> dict[str, str]:
    return {t["key"]: t["value"] for t in entry.get("tags") or []}


def check_location(client: GraphQL, target: Target) -> dict[str, str]:
    """Reload the code location (so it serves what the host has now) and check that it is
    the target's; the location's metadata is returned."""
    entry = client(RELOAD, {"name": LOCATION_NAME})["reloadRepositoryLocation"]
    if entry["__typename"] != "WorkspaceLocationEntry":
        raise DeployError(
            f"code location {LOCATION_NAME!r} of {client.url} cannot be reloaded: "
            f"{entry.get('message', entry['__typename'])}"
        )
    location = entry["locationOrLoadError"] or {}
    if location.get("__typename") != "RepositoryLocation":
        raise DeployError(
            f"code location {LOCATION_NAME!r} of {client.url} does not load: "
            f"{first_line(location.get('message', entry['loadStatus']))}: see its code server"
        )
    repository = next(r for r in location["repositories"] if r["name"] == REPOSITORY)
    job = next((j for j in repository["jobs"] if j["name"] == FACTS_JOB), {})
    metadata = _tags(job)
    served = (metadata.get(ENVIRONMENT_TAG), metadata.get(NAMESPACE_TAG))
    if served != (target.environment, target.namespace):
        raise DeployError(
            f"the deployment at {client.url} serves {served[1] or '?'} (environment "
            f"{served[0] or '?'}), not {target.namespace}: use that environment's --dagster-url, "
            "or restart its code location with the deploy's env file"
        )
    if target.code_ref and metadata.get("ocr/code-ref") != target.code_ref:
        raise DeployError(
            f"the deployment at {client.url} runs commit {metadata.get('ocr/code-ref') or '?'}, "
            f"not {target.code_ref}: restart its code location with OCR_CODE_REF={target.code_ref}"
            " on that commit first"
        )
    return metadata


def all_regions(client: GraphQL) -> list[str]:
    node = client(PARTITION_KEYS, {"key": {"path": [REGION_ASSETS[0]]}})["assetNodeOrError"]
    if node["__typename"] != "AssetNode":
        raise DeployError(f"the deployment at {client.url} has no asset {REGION_ASSETS[0]}")
    return list(node["partitionKeys"])


def missing_regions(client: GraphQL, namespace: str, regions: Sequence[str]) -> list[str]:
    """The regions of ``regions`` whose region assets were not both materialized by a
    successful run of ``namespace`` (never run, failed, or only by another version)."""
    tags = [{"key": NAMESPACE_TAG, "value": namespace}]
    good = {r["runId"] for r in _runs(client(NAMESPACE_RUNS, {"tags": tags}))}
    keys = [{"path": [name]} for name in REGION_ASSETS]
    nodes = client(MATERIALIZED, {"keys": keys, "partitions": list(regions)})["assetNodes"]
    done: dict[str, set[str]] = {}
    for node in nodes:
        name = node["assetKey"]["path"][-1]
        for m in node["assetMaterializations"]:
            if m["runId"] in good:
                done.setdefault(m["partition"], set()).add(name)
    return [r for r in regions if done.get(r) != set(REGION_ASSETS)]


def _runs(data: dict) -> list[dict]:
    runs = data["runsOrError"]
    if runs["__typename"] != "Runs":
        raise DeployError(f"runs cannot be read: {runs.get('message', runs['__typename'])}")
    return runs["results"]


def active_deploys(client: GraphQL, namespace: str) -> list[dict]:
    """Backfills of this namespace's deploys that are still running, oldest first."""
    data = client(ACTIVE_BACKFILLS)["partitionBackfillsOrError"]
    if data["__typename"] != "PartitionBackfills":
        raise DeployError(f"backfills cannot be read: {data.get('message', data['__typename'])}")
    mine = [b for b in data["results"] if _tags(b).get(DEPLOY_TAG) == namespace]
    return sorted(mine, key=lambda b: (b["timestamp"], b["id"]))


def products(flags: dict[str, bool]) -> list[str]:
    """The fan-ins a deploy builds: all, the optional ones only when the plan asks."""
    return sorted(
        name
        for name in FAN_INS
        if name not in OPTIONAL_PRODUCTS or flags.get(OPTIONAL_PRODUCTS[name], False)
    )


def launch(client: GraphQL, namespace: str, regions: Sequence[str], assets: Sequence[str]) -> str:
    tags = [
        {"key": DEPLOY_TAG, "value": namespace},
        {"key": NAMESPACE_TAG, "value": namespace},
    ]
    params = {
        "assetSelection": [{"path": [name]} for name in assets],
        "partitionNames": list(regions),
        "fromFailure": False,
        "tags": tags,
        "title": f"deploy {namespace}",
    }
    result = client(LAUNCH, {"params": params})["launchPartitionBackfill"]
    if result["__typename"] != "LaunchBackfillSuccess":
        detail = result.get("message") or result.get("invalidStepKey") or result["__typename"]
        raise DeployError(f"the deploy's backfill was not launched: {first_line(detail)}")
    return result["backfillId"]


def poll(client: GraphQL, backfill_id: str) -> Followed:
    data = client(
        PROGRESS, {"id": backfill_id, "tags": [{"key": "dagster/backfill", "value": backfill_id}]}
    )
    backfill = data["partitionBackfillOrError"]
    if backfill["__typename"] != "PartitionBackfill":
        raise DeployError(f"backfill {backfill_id} cannot be read: {backfill.get('message')}")
    followed = Followed(backfill_id, backfill["status"], runs=_runs(data))
    regions = {"targeted": 0, "running": 0, "done": 0, "failed": 0}
    for status in (backfill.get("assetBackfillData") or {}).get("assetBackfillStatuses", []):
        name = status["assetKey"]["path"][-1]
        if status["__typename"] == "AssetPartitionsStatusCounts":
            if name == REGION_ASSETS[-1]:  # the second of the pair: a region is done with it
                regions = {
                    "targeted": status["numPartitionsTargeted"],
                    "running": status["numPartitionsInProgress"],
                    "done": status["numPartitionsMaterialized"],
                    "failed": status["numPartitionsFailed"],
                }
        else:
            followed.products[name] = (
                "materialized"
                if status["materialized"]
                else "failed"
                if status["failed"]
                else "running"
                if status["inProgress"]
                else "waiting"
            )
    followed.regions = regions
    return followed


def failure_lines(client: GraphQL, runs: Sequence[dict]) -> list[str]:
    """``FAILED <step> for region <id>: <cause>`` for each failed step of each failed run."""
    lines = []
    for run in runs:
        if run["status"] not in ("FAILURE", "CANCELED"):
            continue
        where = _tags(run).get("dagster/partition")
        subject = f" for region {where}" if where else ""
        logs = client(FAILURES, {"runId": run["runId"]})["logsForRun"]
        events = logs.get("events", []) if logs["__typename"] == "EventConnection" else []
        steps = [e for e in events if e["__typename"] == "ExecutionStepFailureEvent"]
        for event in steps:
            error = event.get("error") or {}
            cause = (error.get("cause") or {}).get("message") or error.get("message") or "?"
            lines.append(f"FAILED {event['stepKey']}{subject}: {first_line(cause)}")
        if not steps:
            run_failure = next((e for e in events if e["__typename"] == "RunFailureEvent"), {})
            message = run_failure.get("message") or run["status"].lower()
            lines.append(f"FAILED run {run['runId'][:8]}{subject}: {first_line(message)}")
    return lines


def cancel(client: GraphQL, backfill_id: str, wait_s: float = 90) -> int:
    """Cancel the backfill and terminate its runs; the number of runs terminated."""
    client(CANCEL, {"id": backfill_id})
    deadline = time.monotonic() + wait_s
    terminated: set[str] = set()
    while True:
        runs = poll(client, backfill_id).runs
        active = [r["runId"] for r in runs if r["status"] in IN_PROGRESS_RUN]
        fresh = [r for r in active if r not in terminated]
        if fresh:
            client(TERMINATE, {"ids": fresh})
            terminated.update(fresh)
        if not active or time.monotonic() > deadline:
            return len(terminated)
        time.sleep(1)


def deploy_run(
    url: str,
    target: Target,
    regions: Sequence[str] | str,
    flags: dict[str, bool],
    echo: Callable[[str], None] = print,
    poll_s: float = 2.0,
    stream=sys.stderr,
) -> int:
    """Launch and follow one deploy; the exit status (0 only if everything materialized)."""
    client = GraphQL(url)
    check_location(client, target)
    busy = active_deploys(client, target.namespace)
    if busy:
        raise DeployError(_busy_message(client, target, busy[0]))
    chosen = _chosen_regions(client, target, regions, echo)
    built = products(flags)
    assets = [*REGION_ASSETS, *built] if chosen else built
    previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, raise_interrupted)}
    backfill_id = None
    try:
        backfill_id = launch(client, target.namespace, chosen, assets)
        first = active_deploys(client, target.namespace)
        if first and first[0]["id"] != backfill_id:
            cancel(client, backfill_id)
            raise DeployError(_busy_message(client, target, first[0]))
        echo(
            f"deploy of {target.namespace}: backfill {backfill_id} of {len(chosen)} regions and "
            f"{len(built)} products, {client.url}/runs/b/{backfill_id}"
        )
        followed = _follow(client, backfill_id, len(chosen), Progress(stream), poll_s)
    except (KeyboardInterrupt, Interrupted) as exc:
        if backfill_id is None:
            return EXIT_INTERRUPTED
        n = cancel(client, backfill_id)
        echo(
            f"interrupted ({exc or 'SIGINT'}): backfill {backfill_id} canceled, {n} runs terminated"
        )
        return EXIT_INTERRUPTED
    finally:
        signal.signal(signal.SIGTERM, previous[signal.SIGTERM])
    followed.failures = failure_lines(client, followed.runs)
    for line in followed.failures:
        echo(line)
    echo(summary(followed, len(chosen)))
    return EXIT_OK if followed.ok else EXIT_FAILED


def _chosen_regions(
    client: GraphQL, target: Target, regions: Sequence[str] | str, echo: Callable[[str], None]
) -> list[str]:
    """The partitions a deploy launches: every one (``all``), the ones without a successful run
    of the namespace (``missing``), or the given ids, each a partition of the deployment."""
    every = all_regions(client)
    if regions == "all":
        return every
    if regions == "missing":
        chosen = missing_regions(client, target.namespace, every)
        echo(f"{len(chosen)} of {len(every)} regions have no successful run of {target.namespace}")
        return chosen
    unknown = sorted(set(regions) - set(every))
    if unknown:
        raise DeployError(
            f"regions {', '.join(unknown)} are not partitions of the deployment at {client.url}"
        )
    return list(regions)


def _busy_message(client: GraphQL, target: Target, other: dict) -> str:
    started = time.strftime("%H:%M:%S", time.gmtime(other["timestamp"]))
    return (
        f"another deploy of {target.namespace} is in progress (backfill {other['id']}, launched "
        f"{started} UTC): this one is refused; wait for it to finish ({client.url}/runs/b/"
        f"{other['id']}) or cancel it there, then deploy again"
    )


def _follow(client: GraphQL, backfill_id: str, n_regions: int, progress, poll_s: float) -> Followed:
    while True:
        followed = poll(client, backfill_id)
        r = followed.regions
        if n_regions:
            progress.show("regions", r["done"], r["running"], r["failed"], n_regions)
        if followed.status in DONE_BACKFILL:
            progress.end()
            return followed
        time.sleep(poll_s)


def summary(followed: Followed, n_regions: int) -> str:
    made = sum(state == "materialized" for state in followed.products.values())
    verdict = "succeeded" if followed.ok else "FAILED"
    return (
        f"deploy {verdict}: backfill {followed.backfill_id} {followed.status.lower()}, regions "
        f"{followed.regions.get('done', 0)}/{n_regions} done ({followed.regions.get('failed', 0)} "
        f"failed), products {made}/{len(followed.products)} materialized, {len(followed.runs)} runs"
    )
