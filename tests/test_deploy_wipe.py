"""The wipe of one namespace, and which namespaces qa has.

Wipes run on a root holding files of qa, staging, production, two PR namespaces and a
versioned qa namespace, and compare every file that must stay byte for byte; the command-line
wipes go through ``ocr-dagster deploy wipe`` in a fresh process.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import cast

import pytest
from cli_process import one_error_line, run_cli

from ocr_core.publish import staging_root
from ocr_core.storage import Storage
from ocr_deploy.wipe import WipeError, wipe_namespace
from ocr_resources.settings import Settings, SettingsError


def _cli(tmp_path: Path, *args: str, **env: str):
    return run_cli(tmp_path, *args, strip=("OCR_", "GITHUB_"), OCR_GRID="conus", **env)


# --- namespaces ------------------------------------------------------------------------------
def test_pull_request_namespace_only_for_qa():
    assert Settings.from_env({"OCR_PULL_REQUEST": "12"}).pull_request == 12
    for env in ({"OCR_ENVIRONMENT": "staging"}, {"OCR_VERSION": "1.0.0"}):
        with pytest.raises(SettingsError, match="OCR_PULL_REQUEST"):
            Settings.from_env({"OCR_PULL_REQUEST": "12"} | env)
    with pytest.raises(ValueError, match="not one of qa's"):
        Storage("/r", "qa").with_namespace("staging")
    with pytest.raises(ValueError, match="not one of qa's"):
        Storage("/r", "qa").with_namespace("qa/feature")


# --- wipe ------------------------------------------------------------------------------------
NAMESPACES = {
    "qa": Storage("", "qa"),
    "qa/pr-12": Storage("", "qa", pull_request=12),
    "qa/pr-7": Storage("", "qa", pull_request=7),
    "qa/v1.0.0": Storage("", "qa", "1.0.0"),
    "staging": Storage("", "staging"),
    "production/v1.2.3": Storage("", "production", "1.2.3"),
}


def _outputs(s: Storage) -> list[str]:
    """A file at every place the layout writes in the namespace."""
    files = [
        f"{s.icechunk_uri}/refs/main",
        f"{s.icechunk_uri}.lock",
        s.region_geoparquet_uri("y14_x5"),
        s.summary_stats_uri("nation"),
        f"{s.tile_features_dir}/buildings.fgb",
        s.consolidated_buildings_uri,
        f"{s.partitioned_buildings_uri}/state_fips=41/part-0.parquet",
        s.region_analysis_uri("nation", "csv"),
        s.pmtiles_uri("buildings"),
        f"{s.pyramid_uri}/zarr.json",
    ]
    if not s.is_s3:
        files.append(str(staging_root(s) / "stage-1" / "part.parquet"))
    return files


def _populate(root: str, s3: dict | None = None) -> dict[str, list[str]]:
    """Files of every namespace under ``root``; the paths of each, by namespace."""
    written = {}
    for name, template in NAMESPACES.items():
        s = Storage(
            root,
            template.environment,
            template.version,
            pull_request=template.pull_request,
            **(s3 or {}),
        )
        written[name] = _outputs(s)
        fs = s.filesystem()
        for uri in written[name]:
            if s.is_s3:
                fs.pipe_file(s.fs_path(uri), f"{name}:{uri}".encode())
            else:
                Path(uri).parent.mkdir(parents=True, exist_ok=True)
                Path(uri).write_bytes(f"{name}:{uri}".encode())
    return written


def _snapshot(storage: Storage) -> dict[str, bytes]:
    fs = storage.filesystem()
    base = storage.fs_path(storage.root)
    return {key: cast(bytes, fs.cat_file(key)) for key in fs.find(base)}


def _keys(storage: Storage, uris: list[str]) -> set[str]:
    return {os.path.abspath(u) if not storage.is_s3 else storage.fs_path(u) for u in uris}


def _assert_only_wiped(before, after, storage, written, wiped: str) -> None:
    gone = _keys(storage, written[wiped])
    assert gone and not gone & set(after), "files of the wiped namespace remain"
    kept = {k: v for k, v in before.items() if k not in gone}
    assert after == kept  # every other namespace byte-identical, nothing new


@pytest.fixture
def odd_root(tmp_path) -> Path:
    """A root whose name holds glob characters: wipes list entries, never match patterns."""
    return tmp_path / "out [x] *"


def test_cli_wipe_of_qa_keeps_pull_requests_staging_and_production(tmp_path, odd_root):
    written = _populate(str(odd_root))
    storage = Storage(str(odd_root))
    before = _snapshot(storage)
    proc = _cli(tmp_path, "deploy", "wipe", "--environment", "qa", OCR_STORAGE_ROOT=str(odd_root))
    assert proc.returncode == 0, proc.stderr
    *removed, summary = proc.stdout.splitlines()
    assert summary.startswith("wiped qa under ") and summary.endswith(": 10 entries removed")
    assert len(removed) == 10 and all(line.startswith("removed ") for line in removed)
    _assert_only_wiped(before, _snapshot(storage), storage, written, "qa")
    for top in ("output/fire-risk/tensor", "output/fire-risk/pyramid", "staging"):
        nested = sorted(p.name for p in (odd_root / top / "qa").iterdir())
        assert nested == ["pr-12", "pr-7", "v1.0.0"]


def test_cli_wipe_of_a_pull_request_keeps_qa(tmp_path, odd_root):
    written = _populate(str(odd_root))
    storage = Storage(str(odd_root))
    before = _snapshot(storage)
    proc = _cli(
        tmp_path,
        "deploy",
        "wipe",
        "--environment",
        "qa",
        "--namespace",
        "qa/pr-12",
        OCR_STORAGE_ROOT=str(odd_root),
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1].startswith("wiped qa/pr-12 under ")
    _assert_only_wiped(before, _snapshot(storage), storage, written, "qa/pr-12")
    assert not (odd_root / "output/fire-risk/tensor/qa/pr-12").exists()


def test_cli_refuses_to_wipe_production(tmp_path, odd_root):
    _populate(str(odd_root))
    storage = Storage(str(odd_root))
    before = _snapshot(storage)
    proc = _cli(
        tmp_path, "deploy", "wipe", "--environment", "production", OCR_STORAGE_ROOT=str(odd_root)
    )
    assert one_error_line(proc).startswith("error: refusing to wipe production")
    assert _snapshot(storage) == before
    with pytest.raises(WipeError):
        wipe_namespace(Storage(str(odd_root), "production", "1.2.3"))


def test_wipe_of_staging_leaves_the_stage_areas_of_others(odd_root):
    written = _populate(str(odd_root))
    storage = Storage(str(odd_root))
    before = _snapshot(storage)
    removed = wipe_namespace(Storage(str(odd_root), "staging"))
    assert str(odd_root / "staging" / "staging" / "stage-1") in removed
    _assert_only_wiped(before, _snapshot(storage), storage, written, "staging")
    assert wipe_namespace(Storage(str(odd_root), "staging")) == []  # nothing left, no error


def test_wipe_of_qa_on_s3(s3_server, s3_bucket):
    s3 = {"s3_endpoint_url": s3_server, "s3_region": "us-east-1"}
    root = f"{s3_bucket}/ocr"
    written = _populate(root, s3)
    storage = Storage(root, **s3)
    before = _snapshot(storage)
    removed = wipe_namespace(Storage(root, "qa", **s3))
    assert f"{root}/output/fire-risk/tensor/qa/ocr.icechunk" in removed
    assert not any("/pr-" in r or "/v1.0.0" in r for r in removed)
    _assert_only_wiped(before, _snapshot(storage), storage, written, "qa")
