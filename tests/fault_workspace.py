"""The fault suite's work root (tests/fault_suite.py): demo inputs in two versions, each
step run in its own process, and clean roots to copy and compare with."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fault_state import REGIONS, published

HERE = Path(__file__).resolve().parent
N_BUILDINGS = 12_000
STEP_TIMEOUT_S = 300
FAN_IN_STEPS = ("consolidate", "summary", "tiles", "pyramid")


class Workspace:
    """Demo inputs in two versions (B: a tenth of the buildings dropped), and a storage root
    published completely from version A."""

    def __init__(self, base: Path, env: dict | None = None):
        self.base = base
        self.env = {**os.environ, **(env or {}), "PYTHONDONTWRITEBYTECODE": "1"}
        self.env.pop("OCR_FAULTS", None)
        self.inputs = {"A": base / "inputs-a", "B": base / "inputs-b"}
        self.versions: dict = {}  # (root, region or "fan-ins") -> input version published there

    def make_inputs(self, source: Path | None = None) -> None:
        import pyarrow.parquet as pq

        from ocr_core.catalog import spec
        from ocr_core.schema import BUILDINGS

        if source is None:
            source = self.base / "inputs-src"
            self._demo_inputs(source)
        for version, path in self.inputs.items():
            shutil.copytree(source, path)
            if version == "B":
                target = path / spec(BUILDINGS).prefix
                table = pq.read_table(target)
                keep = [i for i in range(table.num_rows) if i % 10]
                pq.write_table(table.take(keep), target)

    def _demo_inputs(self, root: Path) -> None:
        import dagster as dg

        from ocr_assets.inputs import demo_inputs
        from ocr_resources import InputCatalogResource

        result = dg.materialize(
            [demo_inputs],
            resources={"catalog": InputCatalogResource(root=str(root))},
            run_config={"ops": {"demo_inputs": {"config": {"n_buildings": N_BUILDINGS}}}},
        )
        assert result.success

    def start(
        self, step: str, root: str, version: str = "A", faults=None, regions=REGIONS, **env
    ) -> subprocess.Popen:
        """A step started in its own process (``env``: extra variables, e.g. OCR_ENVIRONMENT)."""
        run_env = {**self.env, **env}
        if faults:
            run_env["OCR_FAULTS"] = json.dumps(faults)
        args = [
            sys.executable,
            str(HERE / "fault_worker.py"),
            step,
            root,
            str(self.inputs[version]),
        ]
        return subprocess.Popen(
            [*args, *regions],
            env=run_env,
            cwd=HERE.parent,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def step(
        self,
        step: str,
        root: str,
        version: str = "A",
        faults: dict | None = None,
        kill_after: float | None = None,
        regions=REGIONS,
        **env,
    ) -> tuple[int | None, float]:
        """Run a step in its own process; (exit code, None if it had to be killed as stuck;
        seconds). ``kill_after``: SIGKILL it after that many seconds."""
        started = time.monotonic()
        proc = self.start(step, root, version, faults, regions, **env)
        if kill_after is not None:
            try:
                proc.wait(timeout=kill_after)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
        return finish(proc, step), time.monotonic() - started

    def publish_all(self, root: str, version: str = "A") -> dict[str, float]:
        """Every step once, in pipeline order; the seconds each took."""
        seconds = {}
        for step in ("region", *FAN_IN_STEPS):
            code, took = self.step(step, root, version)
            if code != 0:
                raise RuntimeError(f"{step} did not finish (exit {code})")
            seconds[step] = took
        return seconds


def finish(proc: subprocess.Popen, step: str) -> int | None:
    """Wait for a step's process: its exit code, or None if it had to be killed as stuck."""
    try:
        _, err = proc.communicate(timeout=STEP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return None
    if proc.returncode not in (0, -signal.SIGKILL):
        raise RuntimeError(f"{step} exited {proc.returncode}: {err.decode()[-2000:]}")
    return proc.returncode


def belongs(output: str, step: str) -> bool:
    prefix = {
        "region": ("region ", "raster "),
        "consolidate": ("consolidated", "hive"),
        "summary": ("summary", "analysis"),
        "tiles": ("pmtiles",),
        "pyramid": ("pyramid",),
    }[step]
    return output.startswith(prefix)


def prepare_step(ws: Workspace, storage, step: str, version: str) -> None:
    """Bring what the step reads to ``version`` by copying it from that version's clean root
    (region files; for the tiles, the statistics too), so only the step under test changes
    what it publishes."""
    from ocr_core.storage import Storage

    if step == "region":
        return
    clean = Storage(str(ws.base / f"clean-{version.lower()}"))
    folders = [clean.region_geoparquet_dir]
    if step in ("tiles", "pyramid"):
        folders.append(clean.summary_stats_dir)
    for folder in folders:
        target = storage.join(folder[len(clean.root) + 1 :])
        if storage.is_s3:  # the S3 trials' steps read the region files only
            fs = storage.filesystem()
            for f in sorted(Path(folder).iterdir()):
                fs.put_file(str(f), storage.fs_path(f"{target}/{f.name}"))
            continue
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(folder, target)


def clean_states(ws: Workspace, make_storage: Callable[[str], Any]) -> tuple[dict, dict]:
    """The complete published state of versions A and B, each from clean runs in its own
    root; and the seconds per step (for the random kill delays)."""
    states, seconds = {}, {}
    for version in ("A", "B"):
        storage = make_storage(str(ws.base / f"clean-{version.lower()}"))
        seconds = ws.publish_all(storage.root, version)
        states[version] = published(storage)
    return states, seconds


def copy_root(ws: Workspace, name: str) -> str:
    """A new local root holding a copy of clean root A (everything published from A)."""
    target = ws.base / name
    shutil.copytree(ws.base / "clean-a", target, symlinks=True)
    return str(target)
