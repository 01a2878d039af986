"""The local map's test support: the demo published for it, ``ocr-dagster map`` in its own
process, GETs to it, a page of the map in headless Chromium, and an ``s3://`` publication."""

from __future__ import annotations

import io
import math
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from processes import LOOPBACK, PROJECT, free_port, stop_group

from ocr_core.map_server import map_url
from ocr_core.storage import Storage
from ocr_core.tiles import TILESETS

VIEWPORT = {"width": 1280, "height": 800}
START_TIMEOUT_S = 60
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))

IDLE = """() => new Promise((resolve) => {
  const map = window.ocrMap;
  if (map.loaded() && map.areTilesLoaded()) resolve(); else map.once("idle", () => resolve());
})"""
RENDERED = """(layer) => window.ocrMap.queryRenderedFeatures({layers: [layer]}).map((f) => ({
  id: f.id, properties: window.ocrDecode(layer, f.properties), geometry: f.geometry}))"""


# --- the published demo -------------------------------------------------------------------------
def publish_demo(root: Path, inputs_root: Path, regions: tuple[str, ...]) -> Storage:
    """``regions`` of the demo and every output the map reads, published into ``root``."""
    import dagster as dg

    from ocr_assets import phase01_regions, phase02_aggregation, phase03_tiles
    from ocr_resources import (
        ComputeResource,
        DuckDBResource,
        InputCatalogResource,
        StorageResource,
        TippecanoeResource,
    )

    resources = {
        "storage": StorageResource(root=str(root)),
        "catalog": InputCatalogResource(root=str(inputs_root)),
        "compute": ComputeResource(),
        "duckdb": DuckDBResource(memory_limit="1GB"),
        "tippecanoe": TippecanoeResource(),
    }
    fan_ins = [
        phase02_aggregation.region_summary_stats,
        phase03_tiles.building_tile_features,
        phase03_tiles.building_pmtiles,
        phase03_tiles.building_centroid_pmtiles,
        phase03_tiles.regional_pmtiles,
        phase03_tiles.risk_pyramid,
    ]
    with dg.instance_for_test() as instance:
        for region in regions:
            result = dg.materialize(
                [phase01_regions.process_region],
                partition_key=region,
                instance=instance,
                resources=resources,
            )
            assert result.success
        result = dg.materialize(fan_ins, instance=instance, resources=resources)
        assert result.success
        materializations = [
            e.step_materialization_data.materialization
            for e in result.all_events
            if e.is_step_materialization
        ]
        links = {m.asset_key.to_user_string(): m.metadata for m in materializations}
    for asset, layer in [
        ("building_pmtiles", "buildings"),
        ("building_centroid_pmtiles", "centroids"),
        ("regional_pmtiles", "regions"),
        ("risk_pyramid", "raster"),
    ]:
        assert links[asset]["map"].value == map_url(layer), asset  # the link in Dagster
    return Storage(str(root))


# --- the server ---------------------------------------------------------------------------------
def get(url: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
    """Status, headers and body of a GET (an error status is returned, not raised)."""
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with OPENER.open(req, timeout=30) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


@contextmanager
def map_server(root: str, **env: str) -> Iterator[str]:
    """``ocr-dagster map`` on a free loopback port in its own process group, serving ``root``;
    yields its URL, then stops the group by its id."""
    port = free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith("OCR_")}
    base |= {"PYTHONPATH": str(PROJECT), "PYTHONDONTWRITEBYTECODE": "1", "OCR_STORAGE_ROOT": root}
    log = io.BytesIO()
    proc = subprocess.Popen(
        [sys.executable, "-m", "ocr_assets.cli", "map", "--port", str(port)],
        cwd=PROJECT,
        env=base | env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://{LOOPBACK}:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                log.write(proc.stdout.read() if proc.stdout else b"")
                raise AssertionError(f"ocr-dagster map exited {proc.returncode}: {log.getvalue()}")
            try:
                if get(f"{url}/config.json")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"ocr-dagster map did not answer in {START_TIMEOUT_S} s")
            time.sleep(0.2)
        yield url
    finally:
        stop_group(proc, timeout=10)
        if proc.stdout:
            proc.stdout.close()


# --- the browser --------------------------------------------------------------------------------
@contextmanager
def map_page(browser, url: str, shot: Path | None = None):
    """A page of the map at ``url``, ready and idle; after the block, no console error or
    thrown exception may have been logged (a screenshot is kept in ``shot`` either way)."""
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(60_000)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(url)
        page.wait_for_function("window.ocrReady === true")
        page.evaluate(IDLE)
        yield page
        page.evaluate(IDLE)
    finally:
        if shot is not None:
            page.screenshot(path=shot)
            print(f"screenshot: {shot}")
        context.close()
    assert not errors, f"the page logged errors: {errors}"


def jump(page, zoom: float, lon: float, lat: float) -> None:
    page.evaluate(f"() => window.ocrMap.jumpTo({{zoom: {zoom}, center: [{lon}, {lat}]}})")
    page.evaluate(IDLE)


# --- the region GeoParquet and the statistics ---------------------------------------------------
def match_buildings(features: list[dict], buildings) -> dict[int, int]:
    """Feature id → row of the building each rendered feature draws (the footprint nearest to
    a point inside the drawn, possibly tile-clipped, polygon)."""
    import shapely

    tree = shapely.STRtree(buildings.geometry.values)
    rows: dict[int, set[int]] = {}
    for f in features:
        point = shapely.geometry.shape(f["geometry"]).representative_point()
        row, distance = tree.query_nearest(point, return_distance=True, all_matches=False)
        assert distance[0] < 2e-5, f"feature {f['id']} draws no building ({distance[0]}°)"
        rows.setdefault(f["id"], set()).add(int(row[0]))
    assert all(len(r) == 1 for r in rows.values()), "a feature id names two buildings"
    found = {fid: r.pop() for fid, r in rows.items()}
    assert len(set(found.values())) == len(found), "a building has two feature ids"
    return found


def tile_pixel(z: int, lon: float, lat: float) -> tuple[int, int, int, int]:
    """Web Mercator tile x, y and the pixel column, row of a point at zoom z."""
    n = 2**z
    fx = (lon + 180.0) / 360.0 * n
    fy = (1.0 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2.0 * n
    return int(fx), int(fy), int((fx % 1) * 256), int((fy % 1) * 256)


# --- an s3:// root -------------------------------------------------------------------------------
def publish_to_s3(local: Storage, s3: Storage) -> str:
    """The local tiles and pyramid published to ``s3`` as the pipeline publishes there (files in
    one PUT each, the pyramid as a version behind ``CURRENT``); the pyramid's version folder."""
    from ocr_core.publish import stage

    with stage(s3) as st:
        for name in TILESETS:
            shutil.copyfile(local.pmtiles_uri(name), st.file(s3.pmtiles_uri(name)))
        version = st.folder_uri(s3.pyramid_uri)
        s3.filesystem().put(f"{local.pyramid_uri}/", s3.fs_path(version), recursive=True)
        st.publish()
    return version
