"""An environment's Dagster deployment as processes: its code server, webserver and daemon,
each started by ``ocr-dagster deploy serve`` as a host's service manager would, in its own
session; stopped by process group at the end."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from processes import LOOPBACK, PROJECT, stop_group

from ocr_deploy.graphql import DeployError, GraphQL

SERVICES = ("code-server", "webserver", "daemon")
START_TIMEOUT_S = 240

HEALTH = """
query Health {
  workspaceOrError { __typename ... on Workspace { locationEntries { name loadStatus
    locationOrLoadError { __typename ... on PythonError { message } } } } }
  instance { daemonHealth { allDaemonStatuses { daemonType healthy required } } }
}
"""


@dataclass
class Deployment:
    env: dict[str, str]
    home: Path
    url: str
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    start_s: float = 0.0  # how long the services took to come up healthy

    @property
    def graphql(self) -> GraphQL:
        return GraphQL(self.url)

    def log(self, service: str) -> Path:
        return self.home / f"{service}.log"

    def tails(self, lines: int = 40) -> str:
        out = []
        for service in SERVICES:
            path = self.log(service)
            text = path.read_text(errors="replace").splitlines() if path.exists() else []
            out.append(f"----- {service} ({path}) -----\n" + "\n".join(text[-lines:]))
        return "\n".join(out)

    def start(self, service: str) -> None:
        with open(self.log(service), "ab") as log:
            self.procs[service] = subprocess.Popen(
                [sys.executable, "-m", "ocr_assets.cli", "deploy", "serve", service],
                cwd=PROJECT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def stop(self, service: str) -> None:
        proc = self.procs.pop(service, None)
        if proc is None or proc.poll() is not None:
            return
        stop_group(proc)

    def check_alive(self) -> None:
        for service, proc in self.procs.items():
            if proc.poll() is not None:
                raise AssertionError(
                    f"{service} exited with code {proc.returncode}\n{self.tails()}"
                )

    def wait_healthy(self, timeout: float = START_TIMEOUT_S) -> None:
        """Until the code location is loaded and every required daemon is healthy."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                data = self.graphql(HEALTH)
            except DeployError as exc:
                last = exc
                time.sleep(1)
                continue
            entries = data["workspaceOrError"].get("locationEntries", [])
            loaded = [e for e in entries if e["loadStatus"] == "LOADED"]
            errors = [
                e["locationOrLoadError"]
                for e in loaded
                if e["locationOrLoadError"]["__typename"] == "PythonError"
            ]
            assert not errors, f"the code location failed to load: {errors}\n{self.tails()}"
            statuses = data["instance"]["daemonHealth"]["allDaemonStatuses"]
            if loaded and statuses and all(s["healthy"] for s in statuses if s["required"]):
                return
            last = statuses
            time.sleep(1)
        raise AssertionError(f"deployment not healthy after {timeout} s ({last})\n{self.tails()}")


@contextmanager
def deployment_running(env: dict[str, str]) -> Iterator[Deployment]:
    """The three services with ``env`` (its OCR_DAGSTER_* values pick home and ports)."""
    home = Path(env["OCR_DAGSTER_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    deployment = Deployment(env, home, f"http://{LOOPBACK}:{env['OCR_DAGSTER_PORT']}")
    started = time.monotonic()
    try:
        for service in SERVICES:
            deployment.start(service)
        deployment.wait_healthy()
        deployment.start_s = time.monotonic() - started
        yield deployment
    finally:
        for service in reversed(SERVICES):
            deployment.stop(service)
