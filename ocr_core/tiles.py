"""Vector tiles of the risk data: building polygons, building centroids and regional summaries.

Pure module (no Dagster). ``export_building_features`` scans the region GeoParquet files once
and streams both feature files (polygons, and centroids of the buildings with both RPS > 0)
into ``storage.tile_features_dir``; the two tile builders then each take one file, so they can
run in parallel and no building is exported twice (the reference exported every building once
per building tile step, as a CONUS-wide NDJSON on a 250 GB disk).

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
leaves the previous tiles in place. docs/architecture.md places this step in the pipeline.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from ocr_core.checks import Audit, audit
from ocr_core.duck import DuckDBConfig, connect, sql_file, sql_files, sql_literal
from ocr_core.publish import Stage, stage
from ocr_core.schema import GEOGRAPHIES, GEOGRAPHY, SUMMARY_VARIABLES, TILE_LAYER_ORDER
from ocr_core.storage import Storage
from ocr_core.tileset_info import PMTilesInfo, pmtiles_complete, pmtiles_info
from ocr_core.tippecanoe import Tippecanoe

if TYPE_CHECKING:
    import pyarrow as pa

logger = logging.getLogger(__name__)

BUILDING_PROPERTIES = SUMMARY_VARIABLES  # keys "0".."6" in this order (the web client's contract)
CENTROID_PROPERTIES = ("rps_2011", "rps_2047")
CENTROID_DECIMALS = 3

FEATURE_FILES = {"buildings": "buildings.ndjson", "building_centroids": "building_centroids.ndjson"}

# The reference's tippecanoe flags of each tileset; "-Z6" is one proper argv element.
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

# Regional property keys are the positions in this tuple ("0" building_count … "10" STUSPS).
REGION_PROPERTIES = (
    "building_count", "rps_2011_mean", "rps_2047_mean", "rps_2011_median", "rps_2047_median",
    "risk_score_2011_hist", "risk_score_2047_hist", "GEOID", "bbox", "NAME", "STUSPS",
)  # fmt: skip
# Name columns of each level in property-key order ("9" NAME before "10" STUSPS).
REGION_NAME_COLUMNS = {
    g.level: tuple(sorted(g.name_columns, key=REGION_PROPERTIES.index)) for g in GEOGRAPHIES
}
TILESETS = ("regions", "buildings", "building_centroids")

EXPORT_BATCH_ROWS = 100_000


class TileBuildError(RuntimeError):
    """A tile step's input is missing or unusable; the message says which step makes it."""


@dataclass(frozen=True)
class FeatureFile:
    """One exported feature file: where, how many features, how many bytes."""

    path: str
    features: int
    bytes: int


@dataclass(frozen=True)
class FeatureExport:
    """What ``export_building_features`` wrote (``files`` keyed as ``FEATURE_FILES``)."""

    region_files: int
    seconds: float
    files: dict[str, FeatureFile]
    checks: Audit

    def summary(self) -> dict:
        """Everything but the checks, as JSON-able values."""
        files = {name: asdict(f) for name, f in self.files.items()}
        return {"region_files": self.region_files, "seconds": self.seconds, **files}


@dataclass(frozen=True)
class TilesetResult:
    """A published tileset: its URI, header figures, checks and build time (regions: also the
    bytes of each level's feature file)."""

    path: str
    info: PMTilesInfo
    checks: Audit
    seconds: float
    feature_file_bytes: dict[str, int] | None = None

    def summary(self) -> dict:
        """Everything but the checks, as JSON-able values."""
        levels = (
            {}
            if self.feature_file_bytes is None
            else {"feature_file_bytes": self.feature_file_bytes}
        )
        return {"path": self.path, **self.info, **levels, "seconds": self.seconds}


def property_names() -> dict[str, dict[str, str]]:
    """The numeric property keys of each tileset and the column each one holds (for readers
    such as the map, which shows the real names)."""
    names = {
        "regions": REGION_PROPERTIES,
        "buildings": BUILDING_PROPERTIES,
        "building_centroids": CENTROID_PROPERTIES,
    }
    return {tileset: {str(i): c for i, c in enumerate(cols)} for tileset, cols in names.items()}


# --- running tippecanoe into the stage -------------------------------------------------------
def _build_pmtiles(
    st: Stage,
    tippecanoe: Tippecanoe,
    name: str,
    args: Sequence[str],
    log: logging.Logger | None,
    layers: Sequence[str],
    bytes_in: int,
) -> tuple[PMTilesInfo, Audit]:
    """Run tippecanoe into the stage, check the tileset (``pmtiles_complete``) and publish it
    whole to ``pmtiles_uri(name)``; its figures and checks. It runs in the stage folder with
    names relative to it, so the command line it records in the tileset's metadata is the same
    on every run."""
    out = st.file(st.storage.pmtiles_uri(name), suffix=".pmtiles")
    tippecanoe.run(["-o", out.name, *args], log=log, cwd=st.dir)
    info = pmtiles_info(out)
    checks = audit({"pmtiles_complete": pmtiles_complete(info, layers, bytes_in)})
    st.publish()
    return info, checks


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


def _write_lines(column: pa.Array | pa.ChunkedArray, fh: BinaryIO) -> int:
    """Append the non-null strings of an Arrow column (each ending in a newline) to ``fh``
    straight from the Arrow value buffer; returns how many were written."""
    import numpy as np
    import pyarrow as pa

    arr = column.drop_null()
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


def _write_feature_files(
    storage: Storage, duck: DuckDBConfig | None, region_files: list[str], batch_rows: int
) -> dict[str, FeatureFile]:
    """Stream the feature lines of ``region_files`` into both feature files, published
    atomically; each Arrow batch goes to the polygon file and (its non-null centroid lines)
    to the centroid file, so memory stays at one batch."""
    counts = dict.fromkeys(FEATURE_FILES, 0)
    with ExitStack() as stack:
        paths = {
            name: stack.enter_context(
                storage.atomic_local_file(feature_file_uri(storage, name), suffix=".ndjson")
            )
            for name in FEATURE_FILES
        }
        con = stack.enter_context(connect(duck, storage))
        with open(paths["buildings"], "wb") as fb, open(paths["building_centroids"], "wb") as fc:
            reader = con.execute(building_features_sql(region_files)).to_arrow_reader(batch_rows)
            for batch in reader:
                counts["buildings"] += _write_lines(batch.column(0), fb)
                counts["building_centroids"] += _write_lines(batch.column(1), fc)
        sizes = {name: os.path.getsize(path) for name, path in paths.items()}
    return {
        name: FeatureFile(feature_file_uri(storage, name), counts[name], sizes[name])
        for name in FEATURE_FILES
    }


def export_building_features(
    storage: Storage,
    duck: DuckDBConfig | None = None,
    log: logging.Logger | None = None,
    batch_rows: int = EXPORT_BATCH_ROWS,
) -> FeatureExport:
    """Scan the region GeoParquet files once and write both tile feature files.

    The region files' risk values are checked first (a bad value never reaches a tileset).
    Both files are published atomically under ``storage.tile_features_dir``.
    """
    from ocr_core.checks import building_value_ranges

    started = time.monotonic()
    region_files = storage.list_files(storage.region_geoparquet_dir, ".parquet")
    if not region_files:
        raise TileBuildError(
            f"no region GeoParquet files in {storage.region_geoparquet_dir}: materialize "
            "region_buildings first"
        )
    checks = audit(
        {"region_files_value_ranges": building_value_ranges(storage, duck, region_files)}
    )
    files = _write_feature_files(storage, duck, region_files, batch_rows)
    seconds = round(time.monotonic() - started, 3)
    (log or logger).info(
        "exported %d building and %d centroid features from %d region files in %.1f s",
        files["buildings"].features,
        files["building_centroids"].features,
        len(region_files),
        seconds,
    )
    return FeatureExport(len(region_files), seconds, files, checks)


def _build_from_features(
    storage: Storage,
    tippecanoe: Tippecanoe,
    name: str,
    flags: Sequence[str],
    log: logging.Logger | None,
) -> TilesetResult:
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
        info, checks = _build_pmtiles(st, tippecanoe, name, [*flags, path], log, [layer], size)
    seconds = round(time.monotonic() - started, 3)
    return TilesetResult(storage.pmtiles_uri(name), info, checks, seconds)


def build_building_pmtiles(
    storage: Storage, tippecanoe: Tippecanoe, log: logging.Logger | None = None
) -> TilesetResult:
    """buildings.pmtiles: every building polygon, layer "risk", zooms 6..auto, generated ids."""
    return _build_from_features(storage, tippecanoe, "buildings", BUILDING_FLAGS, log)


def build_centroid_pmtiles(
    storage: Storage, tippecanoe: Tippecanoe, log: logging.Logger | None = None
) -> TilesetResult:
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
    """The published summary statistics of each level, in the reference's layer order; an
    optional level (blocks) may be missing, any other is an error."""
    sources = {}
    for level in TILE_LAYER_ORDER:
        uri = storage.published_summary_stats_uri(level)
        if storage.exists(uri):
            sources[level] = uri
        elif GEOGRAPHY[level].optional:
            log.info("no %s summary statistics at %s: the %s layer is left out", level, uri, level)
        else:
            raise TileBuildError(
                f"summary statistics for {level} are missing ({uri}): materialize the region "
                "summary statistics first"
            )
    return sources


def _export_regions(con, sources: dict[str, str], folder: Path) -> dict[str, int]:
    """Write each level's feature file ``{level}.ndjson`` into ``folder``; their sizes."""
    exported = {}
    for level, uri in sources.items():
        described = con.execute(f"DESCRIBE FROM read_parquet({sql_file(uri)})").fetchall()
        columns = {r[0] for r in described}
        missing = [c for c in REGION_NAME_COLUMNS[level] if c not in columns]
        if missing:
            raise TileBuildError(f"{uri} lacks column(s) {', '.join(missing)}")
        path = os.path.join(folder, f"{level}.ndjson")
        con.execute(
            f"COPY ({regional_features_sql(level, uri)}) TO {sql_literal(path)} (FORMAT json)"
        )
        exported[level] = os.path.getsize(path)
    return exported


def build_regional_pmtiles(
    storage: Storage,
    tippecanoe: Tippecanoe,
    duck: DuckDBConfig | None = None,
    log: logging.Logger | None = None,
) -> TilesetResult:
    """regions.pmtiles: one layer per summary level (blocks only when present)."""
    started = time.monotonic()
    sources = _region_sources(storage, log or logger)
    with stage(storage) as st:
        with connect(duck, storage) as con:
            exported = _export_regions(con, sources, st.dir)
        layer_args: list[str] = []
        for level in sources:
            layer_args += ["-L", f"{level}:{level}.ndjson"]  # relative to the stage folder
        args = [*layer_args, *REGIONAL_FLAGS]
        total = sum(exported.values())
        info, checks = _build_pmtiles(st, tippecanoe, "regions", args, log, list(sources), total)
    seconds = round(time.monotonic() - started, 3)
    return TilesetResult(storage.pmtiles_uri("regions"), info, checks, seconds, exported)
