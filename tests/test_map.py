"""The local map of issue 12: ``ocr-dagster map`` serves what a demo published, and headless
Chromium draws it.

Two demo regions and the fan-ins the map shows (statistics, the three PMTiles, the pyramid) are
materialized in process once for the module. The server runs as its own process on a free
loopback port, the way ``./dev map`` starts it. In the browser: the building layer at the
building zoom holds the region GeoParquet's buildings with their values, the county layer the
summary statistics' counties, the popup decodes the numeric keys, and the page logs no error.
An ``s3://`` root (the loopback moto server) is served alike: range requests on the PMTiles,
the pyramid behind its ``CURRENT`` pointer, and the same page.

Screenshots go to ``$OCR_TEST_ARTIFACTS/map`` (default ``tests/artifacts/map``, git-ignored).
"""

from __future__ import annotations

import io
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import cast

import numpy as np
import pytest
from cli_process import one_error_line, run_cli
from processes import free_port, stop_group

from ocr_core.map_raster import colour_table
from ocr_core.map_server import map_url
from ocr_core.schema import RISK_SCORE_BOUNDARIES, risk_scores
from ocr_core.storage import Storage
from ocr_core.tiles import BUILDING_PROPERTIES, TILESETS, property_names

PROJECT = Path(__file__).resolve().parents[1]
LOOPBACK = "127.0.0.1"
REGIONS = ("y2_x1", "y2_x2")
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [  # as tests/test_ui.py drives it
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
]
VIEWPORT = {"width": 1280, "height": 800}
BUILDING_ZOOM = 12  # web/map.js: buildings from this zoom on
START_TIMEOUT_S = 60
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))

IDLE = """() => new Promise((resolve) => {
  const map = window.ocrMap;
  if (map.loaded() && map.areTilesLoaded()) resolve(); else map.once("idle", () => resolve());
})"""
RENDERED = """(layer) => window.ocrMap.queryRenderedFeatures({layers: [layer]}).map((f) => ({
  id: f.id, properties: window.ocrDecode(layer, f.properties), geometry: f.geometry}))"""


# --- the published demo -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def published(demo_inputs_root, tmp_path_factory) -> Storage:
    """Two demo regions and every output the map reads, published into a fresh local root."""
    import dagster as dg

    from ocr_assets import phase01_regions, phase02_aggregation, phase03_tiles
    from ocr_resources import (
        ComputeResource,
        DuckDBResource,
        InputCatalogResource,
        StorageResource,
        TippecanoeResource,
    )

    root = tmp_path_factory.mktemp("map-root")
    resources = {
        "storage": StorageResource(root=str(root)),
        "catalog": InputCatalogResource(root=str(demo_inputs_root)),
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
        for region in REGIONS:
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


@pytest.fixture(scope="module")
def artifacts() -> Path:
    base = Path(os.environ.get("OCR_TEST_ARTIFACTS") or PROJECT / "tests" / "artifacts")
    folder = base / "map"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


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


@pytest.fixture(scope="module")
def local_map(published) -> Iterator[str]:
    with map_server(published.root) as url:
        yield url


# --- the browser --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: ./dev setup installs Debian's chromium"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


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
@pytest.fixture(scope="module")
def buildings(published):
    import geopandas as gpd
    import pandas as pd

    files = published.list_files(published.region_geoparquet_dir, ".parquet")
    return pd.concat([gpd.read_parquet(f) for f in files], ignore_index=True)


def _match_buildings(features: list[dict], buildings) -> dict[int, int]:
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


# --- tests ----------------------------------------------------------------------------------------
def test_server_answers_with_the_outputs_and_their_names(local_map, published):
    status, _, body = get(f"{local_map}/config.json")
    config = json.loads(body)
    assert status == 200
    assert config["tilesets"] == {n: f"/pmtiles/{n}.pmtiles" for n in TILESETS}
    assert config["properties"] == property_names()
    assert config["properties"]["buildings"]["0"] == "rps_2011"
    assert config["risk_score_boundaries"] == list(RISK_SCORE_BOUNDARIES)
    assert len(config["risk_score_labels"]) == len(config["risk_colours"]) == 11

    data = Path(published.pmtiles_uri("buildings")).read_bytes()
    status, headers, body = get(f"{local_map}/pmtiles/buildings.pmtiles", {"Range": "bytes=0-126"})
    assert (status, body) == (206, data[:127])
    assert headers["Content-Range"] == f"bytes 0-126/{len(data)}"
    status, _, body = get(f"{local_map}/pmtiles/buildings.pmtiles", {"Range": "bytes=1000-"})
    assert (status, body) == (206, data[1000:])
    status, headers, _ = get(
        f"{local_map}/pmtiles/buildings.pmtiles", {"Range": f"bytes={len(data)}-"}
    )
    assert status == 416 and headers["Content-Range"] == f"bytes */{len(data)}"
    assert get(f"{local_map}/pmtiles/nope.pmtiles")[0] == 404

    # the PMTiles reader sends the ETag back: a tileset replaced meanwhile answers 412 (it then
    # rereads the header), the same one its range
    path = published.pmtiles_uri("regions")
    first = get(f"{local_map}/pmtiles/regions.pmtiles", {"Range": "bytes=0-126"})[1]["ETag"]
    again = {"Range": "bytes=0-126", "If-Match": first}
    assert get(f"{local_map}/pmtiles/regions.pmtiles", again)[0] == 206
    stamp = os.stat(path).st_mtime + 10
    os.utime(path, (stamp, stamp))  # as a publication's rename replaces it
    status, headers, _ = get(f"{local_map}/pmtiles/regions.pmtiles", again)
    assert status == 412 and headers["ETag"] != first
    assert get(f"{local_map}/lib/maplibre-gl.js")[0] == 200  # from web/node_modules
    assert get(f"{local_map}/lib/pmtiles.js")[0] == 200


def test_a_taken_port_or_a_bad_one_is_one_line(published, tmp_path):
    with socket.socket() as taken:
        taken.bind((LOOPBACK, 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        line = one_error_line(
            run_cli(tmp_path, "map", "--port", port, OCR_STORAGE_ROOT=published.root)
        )
    assert f"cannot listen on {LOOPBACK}:{port}" in line and "--port" in line
    bad = run_cli(tmp_path, "map", "--port", "70000", OCR_STORAGE_ROOT=published.root)
    assert bad.returncode == 2 and "is not a TCP port" in bad.stderr


def _tile_pixel(z: int, lon: float, lat: float) -> tuple[int, int, int, int]:
    """Web Mercator tile x, y and the pixel column, row of a point at zoom z."""
    n = 2**z
    fx = (lon + 180.0) / 360.0 * n
    fy = (1.0 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2.0 * n
    return int(fx), int(fy), int((fx % 1) * 256), int((fy % 1) * 256)


def test_raster_tiles_show_the_pyramid_where_it_is(local_map, published):
    """Each pixel of a raster tile has the colour of the risk score of the pyramid cell at its
    centre (EPSG:4326 grid, read here with xarray's nearest selection)."""
    import xarray as xr
    import zarr
    from PIL import Image

    info = json.loads(get(f"{local_map}/pyramid.json")[2])
    assert info["crs"] == "EPSG:4326" and info["variables"] == ["rps_2011", "rps_2047"]
    level0 = xr.open_zarr(published.pyramid_uri, group="0", consolidated=False)
    group = zarr.open_group(published.pyramid_uri, mode="r")
    layout = cast(dict, group.attrs["multiscales"])["layout"]
    shapes = [list(zarr.open_array(published.pyramid_uri, path=f"{k}/rps_2011", mode="r").shape)
              for k in range(len(layout))]  # fmt: skip
    assert [lv["shape"] for lv in info["levels"]] == shapes
    z, colours = 13, colour_table()
    rng = np.random.default_rng(3)
    values = level0["rps_2047"].values
    ii, jj = np.nonzero(np.isfinite(values) & (values > 0))
    for k in rng.choice(ii.size, 20, replace=False):
        lat, lon = float(level0.latitude[ii[k]]), float(level0.longitude[jj[k]])
        x, y, col, row = _tile_pixel(z, lon, lat)
        status, headers, body = get(f"{local_map}/pyramid/rps_2047/{z}/{x}/{y}.png")
        assert status == 200 and headers["Content-Type"] == "image/png"
        pixel = np.asarray(Image.open(io.BytesIO(body)).convert("RGBA"))[row, col]
        # the pixel's centre, back to degrees, picks the cell
        clat = math.degrees(
            math.atan(math.sinh(math.pi * (1 - 2 * (y + (row + 0.5) / 256) / 2**z)))
        )
        clon = (x + (col + 0.5) / 256) / 2**z * 360 - 180
        cell = level0["rps_2047"].sel(latitude=clat, longitude=clon, method="nearest")
        assert list(pixel) == list(colours[risk_scores([float(cell)])[0]]), (lon, lat)
    far = get(f"{local_map}/pyramid/rps_2047/{z}/0/0.png")  # far from the data: transparent
    assert (np.asarray(Image.open(io.BytesIO(far[2])).convert("RGBA"))[..., 3] == 0).all()
    assert get(f"{local_map}/pyramid/nope/1/0/0.png")[0] == 404


def test_browser_draws_the_buildings_of_the_geoparquet(local_map, buildings, browser, artifacts):
    """The Dagster link of the building tiles opens the map at a building zoom where buildings
    are densest; every building drawn is a building of the region files, with its
    values; one feature id per building. Just below that zoom: the centroids, with RPS."""
    import shapely

    assert map_url("buildings").endswith("/#layer=buildings")
    with map_page(browser, f"{local_map}/#layer=buildings", artifacts / "centroids.png") as page:
        page.screenshot(path=artifacts / "buildings.png")
        assert page.evaluate("() => window.ocrMap.getZoom()") >= BUILDING_ZOOM
        features = page.evaluate(RENDERED, "buildings")
        assert len(features) >= 10, "too few buildings drawn at the building zoom"
        assert page.evaluate(RENDERED, "centroids") == []  # centroids only below
        rows = _match_buildings(features, buildings)
        for f in features:
            row = buildings.iloc[rows[f["id"]]]
            for name in BUILDING_PROPERTIES:
                assert np.float32(f["properties"][name]) == row[name], (f["id"], name)

        center = page.evaluate("() => window.ocrMap.getCenter().toArray()")
        jump(page, BUILDING_ZOOM - 0.5, *center)
        centroids = page.evaluate(RENDERED, "centroids")
        assert len(centroids) >= len(features) and page.evaluate(RENDERED, "buildings") == []
        # centroid tiles end at zoom 8: a drawn centroid is within 4e-4° of its building
        tree = shapely.STRtree(buildings.geometry.values)
        rps = buildings[["rps_2011", "rps_2047"]].to_numpy(dtype=float)
        for c in centroids:
            near = tree.query(shapely.geometry.shape(c["geometry"]), "dwithin", 4e-4)
            drawn = np.array([c["properties"]["rps_2011"], c["properties"]["rps_2047"]])
            assert (np.abs(rps[near] - drawn) <= 5e-4 + 1e-9).all(axis=1).any(), c


def test_browser_draws_the_counties_of_the_summary_statistics(
    local_map, published, browser, artifacts
):
    """At a county zoom the county layer holds exactly the counties of the summary statistics,
    with their figures under their real names; a click opens the popup with the histogram; the
    2047 switch and the raster layer work."""
    import geopandas as gpd

    counties = gpd.read_parquet(published.published_summary_stats_uri("counties"))
    counties = counties.set_index("GEOID")
    with map_page(browser, f"{local_map}/", artifacts / "county-popup.png") as page:
        west, south, east, north = counties.total_bounds
        jump(page, 7, (west + east) / 2, (south + north) / 2)
        drawn = {}
        for f in page.evaluate(RENDERED, "counties"):
            drawn.setdefault(f["properties"]["GEOID"], f["properties"])
        assert sorted(drawn) == sorted(counties.index)
        for geoid, props in drawn.items():
            row = counties.loc[geoid]
            assert props["NAME"] == row["NAME"]
            assert props["building_count"] == row["building_count"]
            for name in ("rps_2011_mean", "rps_2047_mean", "rps_2011_median", "rps_2047_median"):
                assert props[name] == pytest.approx(float(row[name]), rel=1e-6), name
            for name in ("risk_score_2011_hist", "risk_score_2047_hist"):
                assert props[name] == list(row[name]), name
            assert props["bbox"] == pytest.approx(list(row.geometry.bounds), abs=1e-9)

        busiest = counties["building_count"].idxmax()
        point = counties.loc[busiest].geometry.representative_point()
        xy = page.evaluate(f"() => window.ocrMap.project([{point.x}, {point.y}])")
        page.mouse.click(xy["x"], xy["y"])
        popup = page.locator(".maplibregl-popup")
        popup.wait_for()
        text = popup.inner_text()
        assert counties.loc[busiest, "NAME"] in text and busiest in text
        assert "building_count" in text and "risk_score_2011_hist" in text
        assert popup.locator(".hist .bar").count() == 22  # 11 bins, 2011 and 2047
        heights = (
            popup.locator(".hist")
            .first.locator(".bar")
            .evaluate_all("(bars) => bars.map((b) => parseFloat(b.style.height))")
        )
        hist = np.asarray(counties.loc[busiest, "risk_score_2011_hist"], dtype=float)
        np.testing.assert_allclose(heights, 100 * hist / hist.max(), rtol=1e-4)  # CSS rounds

        page.get_by_label("2047").check()
        paint = page.evaluate(
            "() => JSON.stringify(ocrMap.getPaintProperty('counties', 'fill-color'))"
        )
        assert '["get","2"]' in paint  # rps_2047_mean
        page.locator("#show-raster").check()
        assert page.evaluate("() => ocrMap.getLayoutProperty('raster', 'visibility')") == "visible"
        page.evaluate(IDLE)


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


def test_s3_root_is_served_alike(s3_server, s3_bucket, published, local_map, browser, artifacts):
    s3 = Storage(s3_bucket, s3_endpoint_url=s3_server, s3_region="us-east-1")
    version = publish_to_s3(published, s3)
    assert s3.current_dir(s3.pyramid_uri) == version != s3.pyramid_uri
    env = {"OCR_S3_ENDPOINT_URL": s3_server, "OCR_S3_REGION": "us-east-1"}
    with map_server(s3_bucket, **env) as url:
        config = json.loads(get(f"{url}/config.json")[2])
        assert config["root"] == s3_bucket
        assert config["tilesets"] == {n: f"/pmtiles/{n}.pmtiles" for n in TILESETS}
        assert config["pyramid"]["location"] == version  # CURRENT followed
        for name in TILESETS:
            data = Path(published.pmtiles_uri(name)).read_bytes()
            status, headers, body = get(f"{url}/pmtiles/{name}.pmtiles", {"Range": "bytes=0-126"})
            assert (status, body) == (206, data[:127])
            assert headers["Content-Range"] == f"bytes 0-126/{len(data)}"
            middle = {"Range": f"bytes={len(data) // 2}-{len(data) // 2 + 999}"}
            assert get(f"{url}/pmtiles/{name}.pmtiles", middle)[2] == data[len(data) // 2 :][:1000]
        info = json.loads(get(f"{url}/pyramid.json")[2])
        local_info = json.loads(get(f"{local_map}/pyramid.json")[2])
        assert {**info, "location": None} == {**local_info, "location": None}
        west, south, east, north = info["bounds"]
        x, y, _, _ = _tile_pixel(12, (west + east) / 2, (south + north) / 2)
        tile = f"/pyramid/rps_2011/12/{x}/{y}.png"
        assert get(url + tile)[2] == get(local_map + tile)[2]  # the same picture
        with map_page(browser, f"{url}/#layer=buildings", artifacts / "s3-buildings.png") as page:
            assert len(page.evaluate(RENDERED, "buildings")) >= 10
