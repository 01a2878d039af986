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
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import numpy as np
import pytest
from chromium import chromium
from cli_process import one_error_line, run_cli
from map_support import (
    IDLE,
    PROJECT,
    RENDERED,
    get,
    jump,
    map_page,
    map_server,
    match_buildings,
    publish_demo,
    publish_to_s3,
    tile_pixel,
)
from processes import LOOPBACK

from ocr_core.map_raster import colour_table
from ocr_core.map_server import map_url
from ocr_core.schema import RISK_SCORE_BOUNDARIES, risk_scores
from ocr_core.storage import Storage
from ocr_core.tiles import BUILDING_PROPERTIES, TILESETS, property_names

REGIONS = ("y2_x1", "y2_x2")
BUILDING_ZOOM = 12  # web/map.js: buildings from this zoom on


# --- fixtures -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def published(demo_inputs_root, tmp_path_factory) -> Storage:
    """Two demo regions and every output the map reads, published into a fresh local root."""
    return publish_demo(tmp_path_factory.mktemp("map-root"), demo_inputs_root, REGIONS)


@pytest.fixture(scope="module")
def artifacts() -> Path:
    base = Path(os.environ.get("OCR_TEST_ARTIFACTS") or PROJECT / "tests" / "artifacts")
    folder = base / "map"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def local_map(published) -> Iterator[str]:
    with map_server(published.root) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with chromium() as browser:
        yield browser


@pytest.fixture(scope="module")
def buildings(published):
    import geopandas as gpd
    import pandas as pd

    files = published.list_files(published.region_geoparquet_dir, ".parquet")
    return pd.concat([gpd.read_parquet(f) for f in files], ignore_index=True)


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
        x, y, col, row = tile_pixel(z, lon, lat)
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
        rows = match_buildings(features, buildings)
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
        x, y, _, _ = tile_pixel(12, (west + east) / 2, (south + north) / 2)
        tile = f"/pyramid/rps_2011/12/{x}/{y}.png"
        assert get(url + tile)[2] == get(local_map + tile)[2]  # the same picture
        with map_page(browser, f"{url}/#layer=buildings", artifacts / "s3-buildings.png") as page:
            assert len(page.evaluate(RENDERED, "buildings")) >= 10
