"""A local web map of one namespace's published outputs (``ocr-dagster map``, ``./dev map``).

Pure module (no Dagster), standard library HTTP server. Everything it reads goes through
``Storage``, so a local root and an ``s3://`` root are served alike:

    /                          the page (web/index.html, web/map.js, web/map.css)
    /lib/…                     MapLibre GL JS and the PMTiles decoder from web/node_modules
    /config.json               what is published, the tiles' property names, the risk bins
    /pmtiles/{name}.pmtiles    the three tilesets, with HTTP range requests (the PMTiles reader
                               asks for byte ranges)
    /pyramid.json              the pyramid's levels, bounds and zooms
    /pyramid/{var}/{z}/{x}/{y}.png   the pyramid as Web Mercator tiles, coloured by risk score

The raster tiles are drawn by ``ocr_core.map_raster``. On S3 the pyramid is a versioned
folder: the server follows its ``CURRENT`` pointer, checked again every few seconds.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from ocr_core.map_raster import RISK_COLOURS, MapError, Pyramid, open_pyramid
from ocr_core.storage import Storage

log = logging.getLogger(__name__)

MAP_PORT = 3100  # ocr-dagster map's default port, and the port of the links in Dagster
LOOPBACK = "127.0.0.1"
POINTER_TTL_S = 5.0  # how long the pyramid's resolved version is trusted before a new look

# Files of the page, and of the libraries npm installed (web/package-lock.json).
PAGE_FILES = {
    "/": "index.html",
    "/map.js": "map.js",
    "/map.css": "map.css",
    "/lib/maplibre-gl.js": "node_modules/maplibre-gl/dist/maplibre-gl.js",
    "/lib/maplibre-gl.css": "node_modules/maplibre-gl/dist/maplibre-gl.css",
    "/lib/pmtiles.js": "node_modules/pmtiles/dist/pmtiles.js",
}
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}
_PMTILES_PATH = re.compile(r"^/pmtiles/([a-z_]+)\.pmtiles$")
_RASTER_PATH = re.compile(r"^/pyramid/([a-z0-9_]+)/(\d+)/(\d+)/(\d+)\.png$")


def map_url(layer: str | None = None, port: int = MAP_PORT) -> str:
    """The map, or its view of one layer (``regions``, ``buildings``, ``centroids``,
    ``raster``)."""
    return f"http://{LOOPBACK}:{port}/" + (f"#layer={layer}" if layer else "")


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(start, end exclusive) of a single ``Range: bytes=…`` header; None without one;
    ValueError if it cannot be satisfied or is not a single byte range."""
    if not header:
        return None
    m = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", header)
    if not m or not (m.group(1) or m.group(2)):
        raise ValueError(f"unsupported range {header!r}")
    first, last = m.groups()
    if not first:  # the last n bytes
        start, end = max(0, size - int(last)), size
    else:
        start, end = int(first), min(size, int(last) + 1) if last else size
    if start >= size or start >= end:
        raise ValueError(f"range {header!r} outside a file of {size} bytes")
    return start, end


# --- the raster pyramid as map tiles -----------------------------------------------------------
class MapApp:
    """What the server answers, for one storage namespace and one folder of web files."""

    def __init__(self, storage: Storage, web_dir: Path):
        self.storage = storage
        self.web_dir = Path(web_dir)
        missing = [p for p in PAGE_FILES.values() if not (self.web_dir / p).is_file()]
        if missing:
            raise MapError(
                f"the map's files are missing in {self.web_dir}: {', '.join(missing)}; run "
                "./dev setup (it runs npm ci in web/)"
            )
        self._lock = threading.Lock()
        self._pyramid: tuple[float, str | None, Pyramid | None] | None = None

    def pyramid(self) -> Pyramid | None:
        """The published pyramid, reopened when it changed: a new version on S3, a new folder
        swapped in locally (checked every few seconds)."""
        with self._lock:
            now = time.monotonic()
            if self._pyramid and now - self._pyramid[0] < POINTER_TTL_S:
                return self._pyramid[2]
            location = self.storage.current_dir(self.storage.pyramid_uri)
            try:
                marker = f"{location} {self.storage.file_version(f'{location}/zarr.json')[1]}"
            except FileNotFoundError:
                marker = None
            if self._pyramid and self._pyramid[1] == marker:
                pyramid = self._pyramid[2]
            else:
                pyramid = open_pyramid(self.storage) if marker else None
            self._pyramid = (now, marker, pyramid)
            return pyramid

    def tilesets(self) -> dict[str, str]:
        """The published tilesets and their URLs on this server."""
        from ocr_core.tiles import TILESETS

        return {
            name: f"/pmtiles/{name}.pmtiles"
            for name in TILESETS
            if self.storage.exists(self.storage.pmtiles_uri(name))
        }

    def config(self) -> dict:
        from ocr_core.schema import RISK_SCORE_BOUNDARIES, TILE_LAYER_ORDER, risk_score_labels
        from ocr_core.tiles import property_names

        pyramid = self.pyramid()
        return {
            "root": self.storage.root,
            "namespace": self.storage.namespace,
            "risk_score_boundaries": list(RISK_SCORE_BOUNDARIES),
            "risk_score_labels": risk_score_labels(),
            "risk_colours": list(RISK_COLOURS),
            "properties": property_names(),
            "region_levels": list(TILE_LAYER_ORDER),
            "tilesets": self.tilesets(),
            "pyramid": pyramid.info() if pyramid else None,
        }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the tiles come as many small range requests
    server: _Server  # pyright: ignore[reportIncompatibleVariableOverride]  (narrows the base's)

    def log_message(self, format, *args):
        log.debug("%s %s", self.address_string(), format % args)

    def do_HEAD(self):
        self._answer(head=True)

    def do_GET(self):
        self._answer(head=False)

    def _answer(self, head: bool) -> None:
        app = self.server.app
        path = self.path.split("?", 1)[0]
        try:
            if path in PAGE_FILES:
                file = app.web_dir / PAGE_FILES[path]
                self._send(200, file.read_bytes(), CONTENT_TYPES[file.suffix], head)
            elif path == "/config.json":
                self._json(app.config(), head)
            elif path == "/pyramid.json":
                pyramid = app.pyramid()
                if pyramid is None:
                    self._send(404, b"no pyramid is published", "text/plain", head)
                else:
                    self._json(pyramid.info(), head)
            elif m := _PMTILES_PATH.match(path):
                self._pmtiles(m.group(1), head)
            elif m := _RASTER_PATH.match(path):
                self._raster(m.group(1), *map(int, m.groups()[1:]), head=head)
            else:
                self._send(404, b"not found", "text/plain", head)
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as exc:  # the page shows what failed, the server goes on
            log.exception("%s failed", path)
            self._send(500, f"{type(exc).__name__}: {exc}".encode(), "text/plain", head)

    def _pmtiles(self, name: str, head: bool) -> None:
        from ocr_core.tiles import TILESETS

        storage = self.server.app.storage
        uri = storage.pmtiles_uri(name)
        version = None
        if name in TILESETS:
            with contextlib.suppress(FileNotFoundError):
                version = storage.file_version(uri)
        if version is None:
            self._send(404, f"{name}.pmtiles is not published".encode(), "text/plain", head)
            return
        size, etag = version[0], f'"{version[1]}"'
        if self.headers.get("If-Match") not in (None, "*", etag):  # republished meanwhile:
            self._send(412, b"the tileset changed", "text/plain", head, {"ETag": etag})
            return  # the PMTiles reader then starts again from the new header
        try:
            span = byte_range(self.headers.get("Range"), size)
        except ValueError as exc:
            extra = {"Content-Range": f"bytes */{size}", "ETag": etag}
            self._send(416, str(exc).encode(), "text/plain", head, extra)
            return
        start, end = span or (0, size)
        body = b"" if head else storage.read_range(uri, start, end)
        extra = {"Accept-Ranges": "bytes", "ETag": etag}
        if span:
            extra["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        self._send(206 if span else 200, body, "application/octet-stream", head, extra, end - start)

    def _raster(self, variable: str, z: int, x: int, y: int, head: bool) -> None:
        pyramid = self.server.app.pyramid()
        inside = z <= 30 and 0 <= x < 2**z and 0 <= y < 2**z
        if pyramid is None or variable not in pyramid.variables or not inside:
            self._send(404, b"no such pyramid tile", "text/plain", head)
            return
        self._send(200, pyramid.render(variable, z, x, y), "image/png", head)

    def _json(self, doc: dict, head: bool) -> None:
        self._send(200, json.dumps(doc).encode(), "application/json", head)

    def _send(self, status, body, ctype, head, extra=None, length=None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.send_header("Cache-Control", "no-cache")
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    app: MapApp


def make_server(
    storage: Storage, web_dir: Path, port: int = MAP_PORT, host: str = LOOPBACK
) -> ThreadingHTTPServer:
    """A server of the map on ``host:port`` (not started: call ``serve_forever``)."""
    app = MapApp(storage, web_dir)
    try:
        server = _Server((host, port), _Handler)
    except OSError as exc:
        raise MapError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}): choose another --port"
        ) from exc
    server.app = app
    return server


def describe(server: ThreadingHTTPServer) -> str:
    """One line: where the map is and what it shows."""
    app: MapApp = server.app  # type: ignore[attr-defined]
    host, port = server.server_address[:2]
    tilesets = ", ".join(app.tilesets()) or "no tiles (run ./dev demo first)"
    pyramid = "the pyramid" if app.pyramid() else "no pyramid"
    return (
        f"Map of {app.storage.root} ({app.storage.namespace}) on http://{host}:{port}/ — "
        f"{tilesets}; {pyramid}. Ctrl-C stops it."
    )
