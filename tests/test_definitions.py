"""The code location loads (in-process, via the CLI and in the real webserver) and stays light."""

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dagster as dg
from processes import PROJECT, free_port, stop_group

from ocr_assets.definitions import defs
from ocr_core.grid import DEMO

BIN = Path(sys.executable).parent


def partition_keys(definition: dg.AssetsDefinition | dg.JobDefinition) -> list[str]:
    assert definition.partitions_def is not None
    return list(definition.partitions_def.get_partition_keys())


def max_retries(definition: dg.AssetsDefinition) -> int:
    assert definition.op.retry_policy is not None
    return definition.op.retry_policy.max_retries


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCR_")}
    env.update(extra)
    return env


def test_definitions_are_loadable():
    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {"region_risk", "region_buildings", "scott_2024", "tagged_buildings"} <= keys
    risk = defs.resolve_assets_def("region_risk")
    assert partition_keys(risk) == list(DEMO.valid_region_ids)
    assert dg.AssetKey("region_risk") in graph.get(dg.AssetKey("region_buildings")).parent_keys
    job = defs.resolve_job_def("process_regions")
    assert partition_keys(job) == list(DEMO.valid_region_ids)


def test_cli_validates_the_workspace():
    proc = subprocess.run(
        [BIN / "dagster", "definitions", "validate", "-w", "workspace.yaml"],
        cwd=PROJECT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "All code locations passed validation" in proc.stderr + proc.stdout


def test_demo_and_conus_definitions_build_in_one_process():
    """Definitions come from the settings passed in: both grids side by side, no subprocess."""
    from ocr_assets.definitions import build_defs
    from ocr_resources.settings import Settings

    demo = build_defs(Settings(grid="demo", region_max_retries=1))
    conus = build_defs(Settings(grid="conus", environment="staging", region_max_retries=4))
    for d in (demo, conus):
        dg.Definitions.validate_loadable(d)
    conus_risk = conus.resolve_assets_def("region_risk")
    assert len(partition_keys(conus_risk)) == 405
    assert max_retries(conus_risk) == 4
    assert max_retries(demo.resolve_assets_def("region_risk")) == 1
    assert demo.resolve_assets_def("region_risk").backfill_policy is None  # a run per region
    batched = build_defs(Settings(grid="conus", regions_per_run=8))
    policy = batched.resolve_assets_def("region_risk").backfill_policy
    assert policy is not None and policy.max_partitions_per_run == 8
    assert len(partition_keys(demo.resolve_assets_def("region_buildings"))) == 12
    assert conus.resolve_job_def("process_regions").tags["ocr/environment"] == "staging"
    assert "generate_demo_inputs" not in {j.name for j in conus.jobs or []}  # inputs external
    assert "generate_demo_inputs" in {j.name for j in demo.jobs or []}
    assert (conus.resources or {})["catalog"].grid == "conus"
    for d in (demo, conus):
        specs = [spec for a in d.resolve_asset_graph().assets_defs for spec in a.specs]
        assert specs and all(spec.owners == ["team:ocr"] for spec in specs)


def test_every_materialized_asset_has_its_code_version():
    """One version table, covering exactly what the graph materializes (demo inputs included)."""
    from ocr_assets.definitions import build_defs
    from ocr_core.versions import CODE_VERSIONS
    from ocr_resources.settings import Settings

    graph = build_defs(Settings(grid="demo")).resolve_asset_graph()
    materialized = [a for a in graph.assets_defs if a.is_materializable and a.keys]
    versions = {}
    for a in materialized:
        for key in a.keys:
            name = a.node_def.name if a.node_def.name in CODE_VERSIONS else key.path[-1]
            versions.setdefault(name, set()).add(a.code_versions_by_key[key])
    assert set(versions) == set(CODE_VERSIONS)
    risk = CODE_VERSIONS["region_risk"]
    for name, found in versions.items():
        expected = CODE_VERSIONS[name]
        if name == "region_buildings":  # the buildings hold values the risk method computed
            expected = f"{expected}+risk.{risk}"
        assert found == {expected}, name


def test_wrong_environment_name_fails_loading_with_the_fix():
    proc = subprocess.run(
        [sys.executable, "-c", "import ocr_assets.definitions"],
        cwd=PROJECT,
        env=_env(OCR_ENVIRONMENT="QA"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "OCR_ENVIRONMENT='QA' is not an environment: use one of qa, staging, production" in (
        proc.stderr
    )


def test_loading_definitions_imports_no_heavy_library():
    code = (
        "import sys, ocr_assets.definitions;"
        "heavy = ['xarray', 'geopandas', 'coiled', 'duckdb', 'distributed', 'cv2', 'icechunk',"
        " 'zarr', 'shapely', 'pyarrow.dataset'];"
        "print([m for m in heavy if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout.strip()
    assert out == "[]"


def _graphql(port: int, query: str) -> dict:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def test_webserver_serves_the_graph(tmp_path):
    """The real webserver loads workspace.yaml and shows the partitioned region assets."""
    port = free_port()
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text((PROJECT / "dagster.yaml").read_text())
    proc = subprocess.Popen(
        [BIN / "dagster-webserver", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        cwd=PROJECT,
        env=_env(DAGSTER_HOME=str(home), OCR_STORAGE_ROOT=str(tmp_path / "root")),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 90
        nodes = None
        while time.time() < deadline:
            try:
                data = _graphql(
                    port, "{ assetNodes { assetKey { path } isPartitioned partitionKeys } }"
                )
                nodes = {"/".join(n["assetKey"]["path"]): n for n in data["data"]["assetNodes"]}
                if "region_risk" in nodes:
                    break
            except (OSError, KeyError, TypeError):
                pass
            time.sleep(1)
        assert nodes and "region_risk" in nodes, "webserver did not serve the code location"
        assert nodes["region_risk"]["isPartitioned"]
        assert nodes["region_risk"]["partitionKeys"] == list(DEMO.valid_region_ids)
        assert {"region_buildings", "scott_2024", "census_polygons"} <= set(nodes)
    finally:
        stop_group(proc, timeout=30)
