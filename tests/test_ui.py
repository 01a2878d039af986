"""The UI check of issue 9: what a user does in the Dagster UI, against the real deployment.

One webserver and one daemon (what ``./dev ui`` starts through ``dagster dev``) serve a fresh
instance for the module. A backfill of two regions, launched with the UI's own GraphQL
mutation, is the only launch: the daemon runs the regions and then, by the automation sensor,
every fan-in. Headless Chromium then has to show the backfill completed and the graph
materialized with nothing "Unsynced"; and the "Materialize" dialog, clicked, launches a
backfill whose fan-ins show "Unsynced" until the automation has rebuilt them.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Page, ViewportSize, expect, sync_playwright
from processes import free_port, stop_group

from ocr_assets.automation import SENSOR
from ocr_core import fan_ins

PROJECT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
LOOPBACK = "127.0.0.1"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
]
# Wide enough that the lineage graphs fit at a zoom where Dagster draws full asset nodes
# (status, partitions, "Unsynced" tag) rather than bare names.
VIEWPORT: ViewportSize = {"width": 2560, "height": 1600}

REGION_KEYS = ("region_risk", "region_buildings")
N_REGIONS = 12  # the demo grid
BACKFILL_REGIONS = ("y2_x1", "y2_x2")  # launched over GraphQL
CLICKED_REGIONS = ("y1_x1", "y1_x2")  # launched by clicking "Materialize"
FAN_INS = tuple(sorted(fan_ins.FAN_INS))
START_TIMEOUT_S = 240
FLOW_TIMEOUT_S = 480
VECTOR = Path("fire-risk/vector/qa")

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
SENSOR_SELECTOR = {
    "repositoryLocationName": "ocr",
    "repositoryName": "__repository__",
    "sensorName": SENSOR,
}
SENSOR_STATE = """
query Sensor($selector: SensorSelector!) {
  sensorOrError(sensorSelector: $selector) {
    __typename
    ... on Sensor {
      sensorState { id status ticks(limit: 10) { timestamp endTimestamp status runIds } }
    }
  }
}
"""
FAILED_RUN = {"FAILURE", "CANCELED", "CANCELING"}
FAILED_BACKFILL = {"FAILED", "COMPLETED_FAILED", "CANCELED", "CANCELING", "FAILING"}


def _tail(path: Path, lines: int = 60) -> str:
    if not path.exists():
        return f"({path} not written)"
    text = path.read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:])


@dataclass
class UI:
    """The running webserver and daemon of the module, and how to talk to them."""

    port: int
    home: Path
    root: Path
    input_root: Path
    logs: dict[str, Path]
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        """The ``data`` of a GraphQL answer; an answer with errors fails the test."""
        self.check_alive()
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        req = urllib.request.Request(
            f"{self.url}/graphql",
            data=json.dumps({"query": query, "variables": variables or {}}).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with opener.open(req, timeout=60) as resp:
                answer = json.loads(resp.read())
        except urllib.error.HTTPError as exc:  # GraphQL errors come back as HTTP 500
            answer = json.loads(exc.read() or b"{}")
        if answer.get("errors"):
            messages = "; ".join(e.get("message", "?") for e in answer["errors"])
            raise AssertionError(f"GraphQL error: {messages}")
        return answer["data"]

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise AssertionError(f"dagster {name} exited with code {proc.returncode}")

    def log_tails(self) -> str:
        return "\n".join(
            f"----- last lines of {name} ({path}) -----\n{_tail(path)}"
            for name, path in self.logs.items()
        )

    @contextlib.contextmanager
    def explained(self):
        """On any failure inside, print the tail of the webserver's and daemon's logs."""
        try:
            yield
        except Exception:
            print(self.log_tails())
            raise


def wait_until(what: str, probe, timeout: float, interval: float = 2.0):
    """``probe()``'s first truthy result, polled; probes raise to stop early on a failure."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


@pytest.fixture(scope="module")
def ui(tmp_path_factory, demo_inputs_root):
    """``dagster-webserver`` and ``dagster-daemon`` on loopback (as ``./dev ui``), on a fresh
    instance and storage root, reading the session's demo inputs."""
    with serving(tmp_path_factory.mktemp("ui"), demo_inputs_root) as ui:
        yield ui


@contextlib.contextmanager
def serving(tmp: Path, demo_inputs_root: Path):
    """The webserver and the daemon on the instance in ``tmp/dagster-home`` (made if new),
    writing to ``tmp/root``, logging to ``tmp/*.log``; both stopped on leaving."""
    home, root = tmp / "dagster-home", tmp / "root"
    home.mkdir(exist_ok=True)
    shutil.copyfile(PROJECT / "dagster.yaml", home / "dagster.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OCR_", "DAGSTER_"))}
    env.update(
        DAGSTER_HOME=str(home),
        OCR_STORAGE_ROOT=str(root),
        OCR_INPUT_ROOT=str(demo_inputs_root),
        OCR_AUTOMATION_INTERVAL_S="5",
        NO_PROXY=",".join(filter(None, [os.environ.get("NO_PROXY"), LOOPBACK])),
        no_proxy=",".join(filter(None, [os.environ.get("no_proxy"), LOOPBACK])),
    )
    port = free_port()
    ui = UI(
        port=port,
        home=home,
        root=root,
        input_root=demo_inputs_root,
        logs={"webserver": tmp / "webserver.log", "daemon": tmp / "daemon.log"},
    )
    commands = {
        "webserver": [
            BIN / "dagster-webserver", "-w", "workspace.yaml", "-h", LOOPBACK, "-p", str(port)
        ],
        "daemon": [BIN / "dagster-daemon", "run", "-w", "workspace.yaml"],
    }  # fmt: skip
    try:
        for name, command in commands.items():
            with ui.logs[name].open("wb") as log:
                ui.procs[name] = subprocess.Popen(
                    command,
                    cwd=PROJECT,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
        with ui.explained():
            _wait_until_serving(ui)
        yield ui
    finally:
        for proc in ui.procs.values():
            stop_group(proc, timeout=30)


def _wait_until_serving(ui: UI) -> None:
    def location_loaded():
        try:
            data = ui.graphql('{ assetNodes(assetKeys: [{path: ["region_risk"]}]) { id } }')
        except (OSError, ValueError):  # not listening yet, or an empty answer
            return False
        return bool(data["assetNodes"])

    wait_until("the webserver to serve the code location", location_loaded, START_TIMEOUT_S, 1)

    def daemons_beat():
        data = ui.graphql(
            "{ instance { daemonHealth { allDaemonStatuses { daemonType required healthy } } } }"
        )
        statuses = data["instance"]["daemonHealth"]["allDaemonStatuses"]
        required = [s for s in statuses if s["required"]]
        return required and all(s["healthy"] for s in required)

    wait_until("every required daemon to heartbeat", daemons_beat, START_TIMEOUT_S, 1)
    state = _sensor_state(ui)
    assert state["status"] == "RUNNING", "the automation sensor should be on from the start"


def _sensor_state(ui: UI) -> dict:
    data = ui.graphql(SENSOR_STATE, {"selector": SENSOR_SELECTOR})["sensorOrError"]
    assert data["__typename"] == "Sensor", data
    return data["sensorState"]


def _keys(names) -> list[dict]:
    return [{"path": [name]} for name in names]


def _staleness(ui, partitions) -> dict:
    """Dagster's stale status of the region partitions and of the fan-ins, over GraphQL."""
    variables = {
        "regions": _keys(REGION_KEYS),
        "partitions": list(partitions),
        "fanIns": _keys(FAN_INS),
    }
    return ui.graphql(STALENESS, variables)


def _tags(run: dict) -> dict:
    return {t["key"]: t["value"] for t in run["tags"]}


def _from_automation(run: dict) -> bool:
    tags = _tags(run)
    return (
        tags.get("dagster/from_automation_condition") == "true"
        or tags.get("dagster/sensor_name") == SENSOR
    )


def launch_backfill_like_the_ui(ui: UI, partitions) -> str:
    params = {
        "tags": UI_TAGS,
        "assetSelection": _keys(REGION_KEYS),
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
                "regions": _keys(REGION_KEYS),
                "partitions": list(self.partitions),
                "fanIns": _keys(FAN_INS),
            },
        )
        backfill = data["partitionBackfillOrError"]
        assert backfill["__typename"] == "PartitionBackfill", backfill
        assert backfill["status"] not in FAILED_BACKFILL, f"backfill {self.backfill_id}: {backfill}"
        runs = data["runsOrError"]["results"]
        failed = [(r["runId"], _tags(r)) for r in runs if r["status"] in FAILED_RUN]
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
        found = [t for t in _sensor_state(ui)["ticks"] if t["timestamp"] > after_s]
        done = [t for t in found if t["endTimestamp"]]
        return done if len(done) >= ticks else None

    return wait_until(f"{ticks} automation ticks", later_ticks, 120, 2)


@pytest.fixture(scope="module")
def graphql_flow(ui) -> Flow:
    """Test A's launch: two regions, as the UI launches them, and nothing else."""
    with ui.explained():
        flow = Flow(launch_backfill_like_the_ui(ui, BACKFILL_REGIONS), BACKFILL_REGIONS)
        flow.wait_for_regions(ui)
        flow.wait_for_fan_ins(ui)
        return flow


def test_a_backfill_launched_like_the_ui_completes_the_whole_graph(ui, graphql_flow):
    from ocr_assets.definitions import automated_keys
    from ocr_resources.settings import Settings

    flow = graphql_flow
    with ui.explained():
        assert {k.to_user_string() for k in automated_keys(Settings(grid="demo"))} == set(FAN_INS)
        assert flow.backfill["status"] == "COMPLETED_SUCCESS"
        assert sorted(flow.backfill["partitionNames"]) == sorted(BACKFILL_REGIONS)
        assert {tuple(k["path"]) for k in flow.backfill["assetSelection"]} == {
            (k,) for k in REGION_KEYS
        }

        # The only launch was the backfill: every run is one of its regions or the automation's.
        runs = {r["runId"]: r for r in flow.runs}
        region_runs = {m["runId"] for m in flow.region_materializations.values()}
        for run_id in region_runs:
            tags = _tags(runs[run_id])
            assert tags.get("dagster/backfill") == flow.backfill_id, tags
            assert tags.get("dagster/from_ui") == "true", tags
        assert len(region_runs) == len(BACKFILL_REGIONS)  # one run per region
        automation_runs = [r for r in flow.runs if _from_automation(r)]
        others = [
            (r["runId"], _tags(r))
            for r in flow.runs
            if r["runId"] not in region_runs and not _from_automation(r)
        ]
        assert not others, f"runs nobody asked for: {others}"

        # Dagster built every fan-in, in one run, after the last region.
        fan_in_runs = {m["runId"] for m in flow.fan_in_materializations.values()}
        assert len(fan_in_runs) == 1, flow.fan_in_materializations
        (fan_in_run,) = fan_in_runs
        assert _from_automation(runs[fan_in_run]), _tags(runs[fan_in_run])
        assert [r["runId"] for r in automation_runs] == [fan_in_run], (
            "the automation should request the fan-ins once for one backfill"
        )

        # ... and then has nothing more to do (no loop of re-materializations).
        later = wait_for_quiet_automation(ui, after_s=runs[fan_in_run]["endTime"])
        assert all(not t["runIds"] for t in later), later

        # Nothing is stale: Dagster's data versions and the project's own closure over them.
        stale = _staleness(ui, BACKFILL_REGIONS)
        for node in stale["regions"]:
            assert node["staleStatusByPartition"] == ["FRESH"] * len(BACKFILL_REGIONS), node
        for node in stale["fanIns"]:
            assert node["staleStatus"] == "FRESH", node
        status = _project_status(ui)
        assert status.fresh_regions == len(BACKFILL_REGIONS), status.describe()
        assert not status.stale_regions and not status.stale_fan_ins, status.describe()
        assert len(status.missing_regions) == N_REGIONS - len(BACKFILL_REGIONS)

        # The files: one per region that ran, and the published tiles.
        regions_dir = ui.root / "intermediate" / VECTOR / "geoparquet-regions"
        assert sorted(p.name for p in regions_dir.iterdir()) == [
            f"{rid}.parquet" for rid in sorted(BACKFILL_REGIONS)
        ]
        import pyarrow.parquet as pq

        for rid in BACKFILL_REGIONS:
            assert pq.read_metadata(regions_dir / f"{rid}.parquet").num_rows > 0, rid
        pmtiles = sorted((ui.root / "output" / VECTOR / "pmtiles").glob("*.pmtiles"))
        assert [p.name for p in pmtiles] == [
            "building_centroids.pmtiles",
            "buildings.pmtiles",
            "regions.pmtiles",
        ]
        for path in pmtiles:
            header = path.read_bytes()[:8]
            assert header[:7] == b"PMTiles" and header[7] == 3, (path, header)
        assert (ui.root / "output" / VECTOR / "geoparquet" / "buildings.parquet").is_dir()


def _project_status(ui: UI):
    """``ocr_assets.staleness`` on the module's instance, read from its DAGSTER_HOME."""
    import dagster as dg
    from dagster._core.instance.ref import InstanceRef

    from ocr_assets.definitions import build_defs
    from ocr_assets.staleness import pipeline_status
    from ocr_resources.settings import Settings

    defs = build_defs(Settings(storage_root=str(ui.root), input_root=str(ui.input_root)))
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(ui.home))) as instance:
        return pipeline_status(instance, defs)


# ----------------------------------------------------------------------------- the browser


@dataclass
class Screen:
    """The browser page of a test, where its screenshots go, and what the page threw."""

    page: Page
    shots: Path
    ui: UI
    errors: list[str] = field(default_factory=list)

    def shot(self, name: str) -> None:
        path = self.shots / f"{name}.png"
        self.page.screenshot(path=path)
        print(f"screenshot: {path}")

    @contextlib.contextmanager
    def explained(self):
        """On a failure inside: a screenshot, the page's errors and the servers' log tails."""
        try:
            yield
        except Exception:
            with contextlib.suppress(Exception):
                self.shot("failure")
            if self.errors:
                print("errors thrown in the page:\n" + "\n".join(self.errors))
            print(self.ui.log_tails())
            raise


@pytest.fixture
def screen(ui, tmp_path):
    """A page of headless Chromium (the system's browser) on the module's webserver."""
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: ./dev setup installs Debian's chromium"
    ui.graphql("mutation { setNuxSeen }")  # no first-visit dialog in front of the pages
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport=VIEWPORT, base_url=ui.url)
            page = context.new_page()
            page.set_default_timeout(60_000)
            expect.set_options(timeout=60_000)
            screen = Screen(page=page, shots=tmp_path, ui=ui)
            page.on("pageerror", lambda exc: screen.errors.append(str(exc)))
            yield screen
        finally:
            browser.close()


def open_page(page: Page, path: str) -> None:
    page.goto(path)
    page.wait_for_load_state("networkidle")
    # A modal (first-visit notice, community invitation) would hide what is checked below.
    expect(page.get_by_role("dialog")).to_have_count(0)


def expect_backfill_succeeded(page: Page, backfill_id: str, partitions) -> None:
    """The backfill page: status Succeeded, its partitions, each region asset 100 % done."""
    open_page(page, f"/runs/b/{backfill_id}")
    expect(page.get_by_text(re.compile(rf"/\s*{backfill_id}$"))).to_be_visible()  # breadcrumb
    status = page.get_by_text("Status", exact=True).locator("xpath=..")
    expect(status).to_contain_text("Succeeded")
    selection = page.get_by_text("Partition selection", exact=True).locator("xpath=..")
    for rid in partitions:
        expect(selection.get_by_text(rid, exact=True)).to_be_visible()
    n = str(len(partitions))
    for key in REGION_KEYS:  # asset and progress, partitions targeted / in progress / done / failed
        cells = table_row(page, f"/assets/{key}").locator('[class*="VirtualizedTable_cellBox__"]')
        expect(cells).to_have_text([re.compile(r"100% completed"), n, "0", n, "0"])


def wait_for_inner_text(locator, pattern: str, timeout_s: float = 60) -> str:
    """``locator``'s rendered text once it matches ``pattern`` (``expect`` matches the raw
    text content, where table cells run together)."""
    deadline = time.monotonic() + timeout_s
    while True:
        text = locator.inner_text()
        if re.search(pattern, text):
            return text
        if time.monotonic() > deadline:
            raise AssertionError(f"{pattern!r} not shown in {text!r}")
        locator.page.wait_for_timeout(500)


def table_row(page: Page, href: str):
    """The row of one of the UI's (virtualized, role-less) tables that links to ``href``."""
    return page.locator('[class*="VirtualizedTable_row__"]').filter(
        has=page.locator(f'a[href="{href}"]')
    )


def asset_node(page: Page, key: str):
    """The full node of asset ``key`` in a lineage graph (each node is a foreignObject)."""
    return page.locator("foreignObject").filter(has=page.get_by_text(key, exact=True))


def expect_graph_state(page: Page, n_materialized: int, unsynced: Collection[str] = ()):
    """Every fan-in drawn materialized, the regions with their share of partitions, and the
    "Unsynced" tag on exactly the assets in ``unsynced``."""
    for key in (*REGION_KEYS, *FAN_INS):
        node = asset_node(page, key)
        expect(node).to_have_count(1)
        expect(node).not_to_contain_text("Loading")
    for key in FAN_INS:
        expect(asset_node(page, key)).to_contain_text("Materialized")
    for key in REGION_KEYS:
        filled = n_materialized * 100 // N_REGIONS
        expect(asset_node(page, key)).to_contain_text(f"{filled}% filled")
    page.wait_for_load_state("networkidle")  # the staleness arrives with the live data
    for key in (*REGION_KEYS, *FAN_INS):
        marker = asset_node(page, key).get_by_text(re.compile(r"^(Unsynced|Stale)\b"))
        if key in unsynced:
            expect(marker).to_be_visible()
        else:
            expect(marker).to_have_count(0)


def test_b_browser_shows_the_backfill_done_and_nothing_unsynced(screen, graphql_flow):
    with screen.explained():
        _browse_the_backfill_and_the_graph(screen, graphql_flow)


def _browse_the_backfill_and_the_graph(screen: Screen, flow: Flow) -> None:
    page = screen.page

    # The runs list, backfills view (where /overview/backfills redirects), then its page.
    open_page(page, "/overview/backfills")
    expect(page).to_have_url(re.compile(r"/runs\?view=backfills"))
    row = table_row(page, f"/runs/b/{flow.backfill_id}")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Backfill")
    expect(row).to_contain_text("Success")
    screen.shot("1-backfills")
    row.locator(f'a[href="/runs/b/{flow.backfill_id}"]').first.click()
    expect(page).to_have_url(re.compile(rf"/runs/b/{flow.backfill_id}"))
    expect_backfill_succeeded(page, flow.backfill_id, BACKFILL_REGIONS)
    screen.shot("2-backfill")

    # The catalog: each fan-in materialized, no asset marked stale.
    open_page(page, "/assets")
    for key in FAN_INS:
        expect(table_row(page, f"/assets/{key}")).to_contain_text("Materialized")
    done, missing = len(BACKFILL_REGIONS), N_REGIONS - len(BACKFILL_REGIONS)
    for key in REGION_KEYS:  # partitions materialized / missing / failed / in progress
        row = table_row(page, f"/assets/{key}")
        wait_for_inner_text(row, rf"\n{done}\n{missing}\n0\n0\n{N_REGIONS} partitions")
    expect(page.get_by_text(re.compile(r"^(Unsynced|Stale)\b"))).to_have_count(0)
    screen.shot("3-catalog")

    # The global lineage with every group expanded, then the regions' downstream lineage.
    groups = ("inputs", "phase01_regions", "phase02_aggregation", "phase03_tiles")
    expanded = ",".join(f"global@global:{g}" for g in groups)
    open_page(page, f"/asset-groups?expanded={expanded}")
    expect_graph_state(page, len(BACKFILL_REGIONS))
    screen.shot("4-global-lineage")
    open_page(page, "/assets/region_risk?view=lineage&lineageScope=downstream&lineageDepth=4")
    expect_graph_state(page, len(BACKFILL_REGIONS))
    screen.shot("5-region-lineage")


def set_automation(ui: UI, running: bool) -> None:
    """Switch the automation sensor on or off (the toggle on the UI's Automation page)."""
    if running:
        result = ui.graphql(
            "mutation($s: SensorSelector!) { startSensor(sensorSelector: $s) {"
            " __typename ... on Sensor { sensorState { status } } } }",
            {"s": SENSOR_SELECTOR},
        )["startSensor"]
        assert result.get("sensorState", {}).get("status") == "RUNNING", result
    else:
        result = ui.graphql(
            "mutation($id: String!) { stopSensor(id: $id) { __typename"
            " ... on StopSensorMutationResult { instigationState { status } } } }",
            {"id": _sensor_state(ui)["id"]},
        )["stopSensor"]
        assert result.get("instigationState", {}).get("status") == "STOPPED", result


def launch_backfill_by_clicking(screen: Screen, partitions) -> str:
    """Materialize… on region_risk, the partitions picked from the list, Launch backfill;
    the id from the toast, whose View opens the backfill's page."""
    page = screen.page
    open_page(page, "/assets/region_risk")
    page.get_by_role("button", name="Materialize…").click()
    # The region step cannot be subset: the UI says region_buildings comes along.
    notice = page.get_by_role("dialog").filter(has_text="Additional assets will be materialized")
    expect(notice).to_contain_text("region_buildings")
    notice.get_by_role("button", name="Confirm").click()
    launch = page.get_by_role("dialog").filter(has_text="Launch runs to materialize 2 assets")
    # The inputs were generated outside this instance, so the UI warns they were never
    # materialized here; the regions read them all the same.
    upstream = page.get_by_role("dialog").filter(has_text="Are you sure?")
    expect(launch.or_(upstream)).to_be_visible()
    if upstream.is_visible():
        upstream.get_by_role("button", name="Confirm").click()
    expect(launch).to_be_visible()
    launch.get_by_text("Select a partition or create one").click()
    for rid in partitions:
        # The list re-renders while partition statuses load, so the item may never hold still
        # for Playwright's stability wait; the partition count below checks what was chosen.
        page.get_by_role("menuitem", name=re.compile(rf"^{rid}\b")).click(force=True)
    launch.get_by_text("Launch runs to materialize 2 assets").click()  # closes the list
    expect(launch).to_contain_text(f"{len(partitions)} partitions")
    screen.shot("6-materialize-dialog")
    launch.get_by_role("button", name="Launch backfill").click()
    notifications = page.get_by_role("region", name=re.compile("Notifications"))
    toast = notifications.get_by_text(re.compile(r"Created backfill \w+"))
    expect(toast).to_be_visible()
    created = re.search(r"Created backfill (\w+)", toast.inner_text())
    assert created, toast.inner_text()
    backfill_id = created.group(1)
    notifications.get_by_role("link", name="View", exact=True).click()  # an AnchorButton
    expect(page).to_have_url(re.compile(rf"/runs/b/{backfill_id}"))
    return backfill_id


def test_c_materialize_dialog_launches_a_backfill_whose_fan_ins_follow(ui, screen, graphql_flow):
    """Clicked, not posted: the dialog's backfill runs, its products show "Unsynced" while the
    automation is off, and the automation, switched back on, rebuilds them."""
    with screen.explained():
        _click_a_backfill_and_follow_it(ui, screen)


def _click_a_backfill_and_follow_it(ui: UI, screen: Screen) -> None:
    page = screen.page
    lineage = "/assets/region_risk?view=lineage&lineageScope=downstream&lineageDepth=4"
    n_regions = len(BACKFILL_REGIONS) + len(CLICKED_REGIONS)
    set_automation(ui, running=False)
    try:
        flow = Flow(launch_backfill_by_clicking(screen, CLICKED_REGIONS), CLICKED_REGIONS)
        flow.wait_for_regions(ui)
        region_runs = [r for r in flow.runs if _tags(r).get("dagster/backfill") == flow.backfill_id]
        assert len(region_runs) == len(CLICKED_REGIONS)
        assert all(_tags(r).get("dagster/from_ui") == "true" for r in region_runs)
        expect_backfill_succeeded(page, flow.backfill_id, CLICKED_REGIONS)
        screen.shot("7-clicked-backfill")

        stale = _staleness(ui, CLICKED_REGIONS)
        for node in stale["regions"]:
            assert node["staleStatusByPartition"] == ["FRESH"] * len(CLICKED_REGIONS), node
        unsynced = {
            n["assetKey"]["path"][0] for n in stale["fanIns"] if n["staleStatus"] == "STALE"
        }
        # The fan-ins that read the regions directly are out of date now, at least (Dagster
        # compares direct parents only, so the tiles built from them are not marked).
        print(f"stale after the clicked backfill: {sorted(unsynced)}")
        assert {"buildings_geoparquet", "building_tile_features", "risk_pyramid"} <= unsynced
        open_page(page, lineage)
        expect_graph_state(page, n_regions, unsynced=unsynced)
        screen.shot("8-lineage-unsynced")
    finally:
        set_automation(ui, running=True)

    flow.wait_for_fan_ins(ui)
    runs = {r["runId"]: r for r in flow.runs}
    (fan_in_run,) = {m["runId"] for m in flow.fan_in_materializations.values()}
    assert _from_automation(runs[fan_in_run]), _tags(runs[fan_in_run])
    open_page(page, lineage)
    expect_graph_state(page, n_regions)
    screen.shot("9-lineage-rebuilt")
