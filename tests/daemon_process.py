"""A real ``dagster-daemon`` for a test's instance: started in its own session, stopped by pid."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from processes import PROJECT, stop_group

from ocr_assets.launch import daemon_running

BIN = Path(sys.executable).parent


@contextmanager
def running_daemon(env: dict, instance, workspace: Path | str) -> Iterator[subprocess.Popen]:
    """``dagster-daemon run -w workspace`` for ``instance`` (at ``env``'s DAGSTER_HOME, log in
    ``daemon.log`` there) until every daemon beats; SIGTERM to its group at the end."""
    with open(Path(env["DAGSTER_HOME"]) / "daemon.log", "ab") as log:
        proc = subprocess.Popen(
            [BIN / "dagster-daemon", "run", "-w", str(workspace)],
            cwd=PROJECT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.time() + 180
        while not daemon_running(instance):
            assert proc.poll() is None and time.time() < deadline, "the daemon did not start"
            time.sleep(0.5)
        yield proc
    finally:
        stop_group(proc)
