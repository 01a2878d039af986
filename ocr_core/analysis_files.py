"""The public analysis files: ``region-analysis/{folder}/stats.{csv,geojson,parquet}`` per
geography, from the published summary tables (docs/data.md describes their columns).

Each file holds the summary columns plus the polygon centroid's longitude and latitude, rows in
GEOID order, and the vector metadata (CSV ``# key: value`` header lines, a GeoJSON
``metadata`` member, GeoParquet footer keys). Streamed from DuckDB in batches.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ocr_core.checks import Audit
from ocr_core.duck import (
    DuckDBConfig,
    connect,
    fetch_one,
    parquet_columns,
    record_batches,
    sql_file,
    sql_literal,
)
from ocr_core.errors import InputDataError
from ocr_core.geoparquet import write_query_geoparquet
from ocr_core.metadata import vector_metadata
from ocr_core.schema import GEOGRAPHIES, HISTOGRAMS
from ocr_core.statistics import stat_columns
from ocr_core.storage import Storage

ANALYSIS_EXTENSIONS = ("csv", "geojson", "parquet")


@dataclass(frozen=True)
class AnalysisOutput:
    """One geography's three files: rows of its summary table and of each file."""

    rows: int
    summary_rows: int
    paths: dict[str, str]  # extension → published URI
    rows_per_file: dict[str, int]


@dataclass(frozen=True)
class AnalysisFiles:
    """The files written per output folder, the folders skipped and the checks' figures."""

    folder: str  # the published folder of every output folder
    outputs: dict[str, AnalysisOutput]
    skipped: tuple[str, ...]
    checks: Audit


def _property_columns(level: str) -> list[str]:
    base = [c for c in stat_columns(level) if c != "geometry"]
    return [*base, "longitude", "latitude"]


def _analysis_source(con, level: str, uri: str) -> int:
    """Table ``a``: the summary columns plus polygon-centroid longitude/latitude; its rows."""
    expected = [c for c in stat_columns(level) if c != "geometry"]
    have = parquet_columns(con, sql_file(uri))
    missing = [c for c in [*expected, "geometry"] if c not in have]
    if missing:
        raise InputDataError(f"summary table {uri} lacks column(s) {missing}: rerun the summary")
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE a AS
        SELECT {", ".join(expected)}, ST_X(c) AS longitude, ST_Y(c) AS latitude, geometry
        FROM (
            SELECT * REPLACE (geometry::GEOMETRY AS geometry), ST_Centroid(geometry::GEOMETRY) AS c
            FROM read_parquet({sql_file(uri)})
        )
        """
    )
    (rows,) = fetch_one(con, "SELECT count(*) FROM a")
    return int(rows)


def _write_csv(con, level: str, path: Path, metadata: dict[str, str]) -> int:
    """``# key: value`` lines, then a header row and the rows, streamed in batches."""
    import pyarrow.csv as pacsv

    cols = [
        f"CAST(to_json({c}) AS VARCHAR) AS {c}" if c in HISTOGRAMS else c
        for c in _property_columns(level)
    ]
    reader = record_batches(con, f"SELECT {', '.join(cols)} FROM a ORDER BY GEOID")
    rows = 0
    with open(path, "wb") as f:
        f.write("".join(f"# {k}: {v}\n" for k, v in metadata.items()).encode())
        with pacsv.CSVWriter(f, reader.schema) as writer:
            for batch in reader:
                writer.write_batch(batch)
                rows += batch.num_rows
    return rows


def _geojson_property(column: str) -> str:
    """The ``json_object`` key/value pair of one property column."""
    if column.endswith("_median"):  # float32: shortest text that reads back to the same value
        return f"{sql_literal(column)}, CAST(CAST({column} AS VARCHAR) AS JSON)"
    return f"{sql_literal(column)}, {column}"


def _write_geojson(con, level: str, path: Path, metadata: dict[str, str]) -> int:
    """RFC 7946 FeatureCollection (plus a ``metadata`` member), one feature per line."""
    props = ", ".join(_geojson_property(c) for c in _property_columns(level))
    sql = f"""
        SELECT CAST(json_object('type', 'Feature', 'properties', json_object({props}),
            'geometry', ST_AsGeoJSON(geometry)) AS VARCHAR) AS feature
        FROM a ORDER BY GEOID
    """
    rows = 0
    head = '{"type":"FeatureCollection","metadata":' + json.dumps(metadata) + ',"features":['
    with open(path, "w", encoding="utf-8") as f:
        f.write(head)
        for batch in record_batches(con, sql):
            features = batch.column(0).to_pylist()
            if not features:
                continue
            f.write(("\n" if rows == 0 else ",\n") + ",\n".join(features))
            rows += len(features)
        f.write("\n]}\n")
    return rows


def _write_level(con, level: str, folder: Path, metadata: dict[str, str]) -> dict[str, int]:
    """The three files of table ``a`` in ``folder``; rows per extension."""
    folder.mkdir()
    path = {ext: folder / f"stats.{ext}" for ext in ANALYSIS_EXTENSIONS}
    columns = ", ".join(_property_columns(level))
    sql = f"SELECT {columns}, ST_AsWKB(geometry) AS geometry FROM a ORDER BY GEOID"
    return {
        "csv": _write_csv(con, level, path["csv"], metadata),
        "geojson": _write_geojson(con, level, path["geojson"], metadata),
        "parquet": write_query_geoparquet(con, sql, path["parquet"], metadata),
    }


def _summary_sources(storage: Storage) -> dict[str, str]:
    """Published summary table per level; InputDataError when a required one is missing."""
    sources = {}
    for geography in GEOGRAPHIES:
        uri = storage.published_summary_stats_uri(geography.level)
        if storage.exists(uri):
            sources[geography.level] = uri
        elif not geography.optional:
            raise InputDataError(
                f"summary table {uri} is missing: materialize region_summary_stats first"
            )
    return sources


def write_analysis_files(storage: Storage, duck: DuckDBConfig | None = None) -> AnalysisFiles:
    """Write, check and publish ``region-analysis/{name}/stats.{csv,geojson,parquet}`` from
    the summary tables, as one folder.

    Every file must hold one row per summary row (``checks.analysis_files_complete``) before
    the folder replaces the published one. A missing blocks summary skips ``block`` (stale
    files go with the old folder); any other missing summary is an InputDataError.
    """
    from ocr_core import checks
    from ocr_core.publish import stage

    metadata = vector_metadata(storage.version)
    with connect(duck, storage) as con:
        sources = _summary_sources(storage)
        outputs: dict[str, AnalysisOutput] = {}
        with stage(storage) as st:
            folder = st.folder(storage.region_analysis_dir)
            for geography in GEOGRAPHIES:
                level, name = geography.level, geography.analysis_folder
                if level not in sources:
                    continue
                summary_rows = _analysis_source(con, level, sources[level])
                counts = _write_level(con, level, folder / name, metadata)
                con.execute("DROP TABLE a")
                outputs[name] = AnalysisOutput(
                    rows=counts["csv"],
                    summary_rows=summary_rows,
                    paths={e: storage.region_analysis_uri(name, e) for e in ANALYSIS_EXTENSIONS},
                    rows_per_file=counts,
                )
            audited = checks.audit(
                {"analysis_files_complete": checks.analysis_files_complete(outputs)}
            )
            st.publish()
    skipped = tuple(g.analysis_folder for g in GEOGRAPHIES if g.analysis_folder not in outputs)
    return AnalysisFiles(storage.region_analysis_dir, outputs, skipped, audited)
