"""Write, audit, publish (ocr_core.publish): stages, their sweep, the atomic swaps, the S3
pointer, and the fault switch that must never work in staging or production."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ocr_core import faults, publish
from ocr_core.checks import AuditError, audit
from ocr_core.storage import Storage
from ocr_resources.settings import Settings, SettingsError


def _tree(folder: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)


def test_a_killed_writers_stage_is_swept_and_a_live_one_kept(tmp_path):
    storage = Storage(str(tmp_path / "root"))
    area = publish.staging_root(storage)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from ocr_core import publish\nfrom ocr_core.storage import Storage\n"
            "with publish.stage(Storage(sys.argv[1])) as st:\n"
            "    (st.dir / 'half.parquet').write_bytes(b'x')\n"
            "    print(st.dir, flush=True)\n"
            "    time.sleep(60)\n",
            storage.root,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    live = Path(holder.stdout.readline().strip())
    assert live.parent == area and (live / "half.parquet").exists()
    assert publish.sweep(area) == []  # its writer holds the lock
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with publish.stage(storage) as st:  # opening a stage sweeps the dead one
        assert not live.exists() and st.dir.exists()
    assert list(area.iterdir()) == []


def test_a_sweep_skips_a_stage_that_vanishes_while_it_looks(tmp_path, monkeypatch):
    # Another writer renames its hidden folder between this sweep's listing and its probe.
    area = tmp_path / "area"
    hidden, dead = area / f"{publish.NEW}racing", area / "20260101T000000-dead"
    hidden.mkdir(parents=True)
    dead.mkdir()
    stat, probes = Path.stat, []

    def racing_stat(self, **kwargs):
        if self == hidden:
            probes.append(self)
            if len(probes) > 1:  # listed and seen as a folder, then gone
                raise FileNotFoundError(self)
        return stat(self, **kwargs)

    monkeypatch.setattr(Path, "stat", racing_stat)
    assert publish.sweep(area) == [str(dead)]
    assert len(probes) == 2 and os.path.isdir(hidden) and not os.path.isdir(dead)


def test_a_folder_swap_is_never_missing_for_a_reader(tmp_path):
    storage = Storage(str(tmp_path / "root"))
    uri = storage.join("output/ds")
    seen: list[str] = []
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            try:
                seen.append("".join(sorted(os.listdir(uri))))
            except FileNotFoundError:
                seen.append("missing")

    with storage.atomic_local_dir(uri) as folder:
        _tree(folder, {"a": b"1", "b": b"1"})
    thread = threading.Thread(target=reader)
    thread.start()
    for i in range(200):
        with storage.atomic_local_dir(uri) as folder:
            _tree(folder, {"a": b"2", "b": b"2"} if i % 2 else {"c": b"3"})
    stop.set()
    thread.join()
    assert "missing" not in seen and len(seen) > 200
    # A listing that began on the old folder may see it being removed; never a mix of both.
    assert all(set(x) <= set("ab") or x == "c" for x in seen), set(seen)


def test_the_two_rename_fallback_is_restored_by_the_next_sweep(tmp_path):
    """A kill between the fallback's two renames leaves the target missing; the dead stage
    records it and the next sweep moves the old folder back."""
    storage = Storage(str(tmp_path / "root"))
    target = Path(storage.join("output/ds"))
    target.mkdir(parents=True)
    (target / "old").write_bytes(b"old")
    dead = publish.staging_root(storage) / "20260101T000000-dead"
    dead.mkdir(parents=True)
    (dead / publish.LOCK).write_text("")
    (dead / publish.TARGET).write_text(str(target))
    os.replace(target, dead / publish.PREVIOUS)
    assert not target.exists()
    publish.sweep(publish.staging_root(storage))
    assert (target / "old").read_bytes() == b"old" and not dead.exists()


def pointer_version(storage: Storage, uri: str) -> str:
    pointer = publish.read_pointer(storage, uri)
    assert pointer is not None, f"{uri} was never published"
    return pointer["version"]


def test_s3_folder_versions_behind_a_pointer(s3_server, s3_bucket):
    storage = Storage(s3_bucket, s3_endpoint_url=s3_server, s3_region="us-east-1")
    uri = storage.join("output/ds")
    versions = []
    for i in range(3):
        with storage.atomic_local_dir(uri) as folder:
            _tree(folder, {f"part={i}/data_0.parquet": b"x" * (i + 1), "_common_metadata": b"m"})
        versions.append(pointer_version(storage, uri))
        current = storage.current_dir(uri)
        assert storage.read_bytes(f"{current}/part={i}/data_0.parquet") == b"x" * (i + 1)
    fs = storage.filesystem()
    kept = {
        k.split("/")[-2] if k.endswith("_common_metadata") else None
        for k in fs.find(storage.fs_path(uri))
    }
    assert kept - {None} == set(versions[1:])  # the current and the previous version
    with pytest.raises(RuntimeError, match="boom"), storage.atomic_local_dir(uri) as folder:
        _tree(folder, {"half": b"h"})
        raise RuntimeError("boom")
    assert pointer_version(storage, uri) == versions[-1]


def test_an_audit_failure_names_the_check_and_figures_and_survives_pickling():
    ok = (True, {"rows": 3})
    bad = (False, {"bp_2011": {"max": 1.5, "range": [0, 1], "ok": False}, "bp_2047": {"ok": True}})
    assert audit({"a": ok})["a"]["passed"] is True
    with pytest.raises(AuditError) as info:
        audit({"a": ok, "buildings_value_ranges": bad})
    message = str(info.value)
    assert (
        "buildings_value_ranges" in message and '"max":1.5' in message and "bp_2047" not in message
    )
    again = pickle.loads(pickle.dumps(info.value))
    assert str(again) == message and again.checks["a"]["passed"] is True


@pytest.mark.parametrize("environment", ["staging", "production"])
def test_the_fault_switch_is_refused_outside_qa(monkeypatch, environment):
    monkeypatch.setenv("OCR_FAULTS", '{"kill": {"point": "publish.before"}}')
    monkeypatch.setenv("OCR_ENVIRONMENT", environment)
    monkeypatch.setenv("OCR_VERSION", "1.0.0")
    with pytest.raises(SettingsError, match="OCR_FAULTS"):
        Settings.from_env()
    with pytest.raises(faults.FaultSwitchError, match="refused in staging and production"):
        faults.point("publish.before")


def test_a_held_region_attempt_waits_while_its_file_exists(tmp_path, monkeypatch):
    hold = tmp_path / "hold"
    monkeypatch.setenv("OCR_FAULTS", json.dumps({"hold_regions": {"y5_x14": str(hold)}}))
    monkeypatch.delenv("OCR_ENVIRONMENT", raising=False)
    hold.touch()
    released = threading.Timer(0.5, hold.unlink)
    released.start()
    started = time.monotonic()
    faults.region_attempt("y5_x14", 0)
    assert time.monotonic() - started >= 0.5 and not hold.exists()
    released.join()
    started = time.monotonic()
    hold.touch()
    faults.region_attempt("y6_x14", 0)  # another region is not held
    assert time.monotonic() - started < 0.5
