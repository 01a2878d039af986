"""The webserver and daemon of the UI check (what ``./dev ui`` starts through ``dagster dev``),
on a fresh instance, and how to talk to them: GraphQL, and the automation sensor's state."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from processes import LOOPBACK, PROJECT, free_port, stop_group

from ocr_assets.automation import SENSOR

BIN = Path(sys.executable).parent
START_TIMEOUT_S = 240
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
    state = sensor_state(ui)
    assert state["status"] == "RUNNING", "the automation sensor should be on from the start"


def sensor_state(ui: UI) -> dict:
    data = ui.graphql(SENSOR_STATE, {"selector": SENSOR_SELECTOR})["sensorOrError"]
    assert data["__typename"] == "Sensor", data
    return data["sensorState"]


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
            {"id": sensor_state(ui)["id"]},
        )["stopSensor"]
        assert result.get("instigationState", {}).get("status") == "STOPPED", result
