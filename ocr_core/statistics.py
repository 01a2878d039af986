"""Regional risk statistics: building count, means, medians and risk-score histograms of every
census geography, written as ``{level}_summary_stats.parquet`` (docs/method.md, docs/data.md).

Every building is assigned to one block, tract, county and state by its footprint centroid, in
one DuckDB connection with the configured memory limit and spill directory; nothing holds all
buildings in pandas. The rules (each chosen over the reference's behaviour on purpose):

* Join: a building belongs to a polygon when the polygon intersects (boundary included) the
  footprint centroid; census polygons are brought to WGS 84 and cut into pieces first
  (``ocr_core.census``).
* Tie rule: a centroid on a shared boundary matches several polygons; the building is counted
  once, in the polygon with the **lowest GEOID**. Centroids in no polygon are left out of that
  level and reported as ``unassigned_buildings``.
* Nation: every building counts once in the single nation row, with no spatial test (the
  nation polygon is clipped to a CONUS box and generalised, so a spatial test would drop
  coastal buildings); the nation file must hold exactly one GEOID.
* Histograms: only of rps_2011 / rps_2047. Bin 0 counts values exactly 0, bins 1..10 the
  intervals (b[i-1], b[i]] over ``RISK_SCORE_BOUNDARIES`` (bin 1 starts at −∞, 0 excluded),
  compared as float32 values against float32-cast boundaries, like DuckDB's ``histogram``.
  RPS is a percentage: a value outside [0, 100], NaN or NULL raises ``InputDataError`` instead
  of being dropped; NaN / NULL in any other variable raises too.
* Median: continuous median; for an even count the midpoint of the two middle float32 values,
  computed exactly in float64 and rounded once to float32. It is computed with sorted windows,
  which spill to disk, instead of the in-memory ``median`` aggregate.
* Polygons are written with counter-clockwise exterior rings (RFC 7946 right-hand rule).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ocr_core import census
from ocr_core.catalog import InputCatalog
from ocr_core.checks import Audit
from ocr_core.duck import (
    DuckDBConfig,
    connect,
    fetch_one,
    geometry_crs,
    parquet_columns,
    sql_file,
    sql_files,
)
from ocr_core.errors import InputDataError
from ocr_core.geoparquet import write_query_geoparquet
from ocr_core.schema import (
    GEOGRAPHY,
    HISTOGRAMS,
    LEVELS,
    RISK_SCORE_BOUNDARIES,
    SUMMARY_VARIABLES,
)
from ocr_core.storage import Storage

BIN_COLUMNS = tuple(f"bin_{v}" for v in HISTOGRAMS.values())


@dataclass(frozen=True, kw_only=True)
class LevelCounts:
    """How one level's buildings were assigned; also the file's ``ocr:aggregation`` footer."""

    building_count: int
    total_buildings: int
    unassigned_buildings: int
    boundary_ties: int
    join: str
    input: str
    crs_transform: str
    polygons: int
    duplicate_geoid_rows: int
    subdivided_polygons: int | None = None  # None: not cut (the nation has no spatial join)
    pieces: int | None = None

    def figures(self) -> dict[str, int | str]:
        """The counts by name, in the footer's order (uncut levels without the piece counts)."""
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True, kw_only=True)
class LevelSummary:
    """One level's summary table as published."""

    path: str
    rows: int
    counts: LevelCounts
    risk_score_histograms: dict[str, list[int]] | None  # the nation's, as written
    seconds: float


@dataclass(frozen=True)
class SummaryStats:
    """The summary tables written, the levels skipped (level → why) and the checks' figures."""

    folder: str  # the published folder of the tables
    total_buildings: int
    levels: dict[str, LevelSummary]
    skipped: dict[str, str]
    checks: Audit


def stat_columns(level: str) -> list[str]:
    """Summary-table columns in the reference's order (geometry last)."""
    return [
        "GEOID",
        *GEOGRAPHY[level].name_columns,
        "building_count",
        *(f"{v}_mean" for v in SUMMARY_VARIABLES),
        *(f"{v}_median" for v in SUMMARY_VARIABLES),
        *HISTOGRAMS,
        "geometry",
    ]


def _float32_literal(value: float) -> str:
    """SQL literal of ``value`` rounded to float32 exactly as numpy does it.

    Goes through a DOUBLE parsed from text: DuckDB's DECIMAL → FLOAT cast of a long decimal
    literal can land one float32 step off.
    """
    import numpy as np

    return f"CAST(CAST('{float(np.float32(value))!r}' AS DOUBLE) AS FLOAT)"


def _bin_expression(column: str) -> str:
    """Risk-score bin 0..10 of a FLOAT column; NULL for values above the last boundary."""
    whens = " ".join(
        f"WHEN {column} <= {_float32_literal(b)} THEN {i}"
        for i, b in enumerate(RISK_SCORE_BOUNDARIES, start=1)
    )
    return f"CASE WHEN {column} = 0 THEN 0 {whens} END::TINYINT"


# --- buildings -------------------------------------------------------------------------------
def _region_files(storage: Storage) -> list[str]:
    files = storage.list_files(storage.region_geoparquet_dir, ".parquet")
    if not files:
        raise InputDataError(
            f"no region building files under {storage.region_geoparquet_dir}: materialize the "
            "region_buildings partitions first"
        )
    return files


def _load_buildings(con, files: list[str]) -> int:
    """Table ``bld``: id, centroid x/y, the summary values and the two risk-score bins."""
    is_geometry, crs = geometry_crs(parquet_columns(con, sql_file(files[0])))
    if not is_geometry or (crs is not None and crs not in census.WGS84):
        found = f"geometry CRS {crs!r}" if is_geometry else "no GeoParquet geometry column"
        raise InputDataError(
            f"region building file {files[0]} has {found}; expected EPSG:4326 footprints"
        )
    values = ", ".join(SUMMARY_VARIABLES)
    bins = ", ".join(f"{_bin_expression(v)} AS bin_{v}" for v in HISTOGRAMS.values())
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE bld AS
        SELECT row_number() OVER () AS bid, ST_X(c) AS x, ST_Y(c) AS y, {values}, {bins}
        FROM (
            SELECT {values}, ST_Centroid(geometry) AS c
            FROM read_parquet({sql_files(files)})
        )
        """
    )
    return _validate_buildings(con)


def _validate_buildings(con) -> int:
    """The row count of ``bld``; InputDataError for NaN / NULL values or RPS outside [0, 100]."""
    checks = ", ".join(
        f"count(*) FILTER (WHERE {v} IS NULL OR isnan({v}) OR isinf({v}))"
        for v in SUMMARY_VARIABLES
    )
    rps = ", ".join(
        f"count(*) FILTER (WHERE {v} < 0 OR {v} > 100), max({v})" for v in HISTOGRAMS.values()
    )
    row = fetch_one(con, f"SELECT count(*), {checks}, {rps} FROM bld")
    n = len(SUMMARY_VARIABLES)
    total, bad, out_of_range = row[0], row[1 : 1 + n], row[1 + n :]
    invalid = {v: count for v, count in zip(SUMMARY_VARIABLES, bad, strict=True) if count}
    if invalid:
        raise InputDataError(
            f"region building files hold NaN, infinite or NULL risk values {invalid}: "
            "the region step must drop or fix them"
        )
    for i, var in enumerate(HISTOGRAMS.values()):
        count, maximum = out_of_range[2 * i], out_of_range[2 * i + 1]
        if count:
            raise InputDataError(
                f"region building files hold {count} {var} value(s) outside [0, 100] (max "
                f"{maximum}); RPS is a percentage, so these are invalid and are not binned"
            )
    return int(total)


# --- statistics ------------------------------------------------------------------------------
def _assign(con) -> tuple[int, int]:
    """Table ``j``: gid and values of every building whose centroid is in a polygon.

    Returns (assigned buildings, buildings on a boundary between different GEOIDs).
    """
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE asg AS
        SELECT b.bid, min(p.gid) AS gid, max(p.gid) <> min(p.gid) AS tie
        FROM bld AS b JOIN pieces AS p ON ST_Intersects(p.geom, ST_Point(b.x, b.y))
        GROUP BY b.bid
        """
    )
    columns = ", ".join(f"b.{c}" for c in (*SUMMARY_VARIABLES, *BIN_COLUMNS))
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE j AS SELECT a.gid, {columns} "
        "FROM asg AS a JOIN bld AS b USING (bid)"
    )
    assigned, ties = fetch_one(con, "SELECT count(*), count(*) FILTER (WHERE tie) FROM asg")
    con.execute("DROP TABLE asg")
    return int(assigned), int(ties)


def _median_sql(v: str) -> str:
    """Per gid of ``j``: the continuous median of ``v`` from a sorted window (it spills)."""
    return f"""(
            SELECT gid, CAST((min({v})::DOUBLE + max({v})::DOUBLE) / 2 AS FLOAT) AS {v}_median
            FROM (
                SELECT gid, {v},
                    row_number() OVER w AS rn,
                    count(*) OVER (w ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
                        AS n
                FROM j WINDOW w AS (PARTITION BY gid ORDER BY {v})
            )
            WHERE rn BETWEEN (n + 1) // 2 AND n // 2 + 1
            GROUP BY gid
            )"""


def _aggregate(con) -> None:
    """Tables ``counts`` (count, means, the two histograms) and ``medians``, per gid of ``j``."""
    means = ", ".join(f"avg({v})::DOUBLE AS {v}_mean" for v in SUMMARY_VARIABLES)
    hists = ", ".join(
        "list_value("
        + ", ".join(f"count(*) FILTER (WHERE bin_{v} = {k})" for k in range(11))
        + f")::DOUBLE[] AS {name}"
        for name, v in HISTOGRAMS.items()
    )
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE counts AS
        SELECT gid, count(*)::BIGINT AS building_count, {means}, {hists}
        FROM j GROUP BY gid
        """
    )
    medians = [_median_sql(v) for v in SUMMARY_VARIABLES]
    joined = " JOIN ".join(
        f"{m} AS m{i}" + (" USING (gid)" if i else "") for i, m in enumerate(medians)
    )
    cols = ", ".join(f"{v}_median" for v in SUMMARY_VARIABLES)
    con.execute(f"CREATE OR REPLACE TEMP TABLE medians AS SELECT gid, {cols} FROM {joined}")


def _final_sql(level: str, duplicates: bool) -> str:
    names = "".join(f", s.{c}" for c in GEOGRAPHY[level].name_columns)
    means = ", ".join(f"c.{v}_mean" for v in SUMMARY_VARIABLES)
    medians = ", ".join(f"m.{v}_median" for v in SUMMARY_VARIABLES)
    hists = ", ".join(f"c.{h}" for h in HISTOGRAMS)
    return f"""
        SELECT s.GEOID{names}, c.building_count, {means}, {medians}, {hists},
            ST_AsWKB(s.geom) AS geometry
        FROM counts AS c JOIN medians AS m USING (gid)
        JOIN ({census.shapes_sql(level, duplicates)}) AS s USING (gid)
        ORDER BY s.GEOID
    """


# --- public API ------------------------------------------------------------------------------
def write_summary_stats(
    storage: Storage, catalog: InputCatalog, duck: DuckDBConfig | None = None
) -> SummaryStats:
    """Write, check and publish ``{level}_summary_stats.parquet`` for every level as one folder.

    Inputs (census files, region files, risk values) are all checked before anything is
    written; the staged tables must reconcile (``checks.summary_stats_consistent``) before the
    folder replaces the published one. Absent block polygons skip the blocks level (a stale
    blocks table of an earlier run goes with the old folder); the other four census datasets
    are required.
    """
    from ocr_core import checks
    from ocr_core.publish import stage

    with connect(duck, storage) as con:
        sources = census.census_sources(con, catalog)
        total = _load_buildings(con, _region_files(storage))
        levels: dict[str, LevelSummary] = {}
        skipped: dict[str, str] = {}
        staged: dict[str, str] = {}
        with stage(storage) as st:
            folder = st.folder(storage.summary_stats_dir)
            for level in LEVELS:
                source = sources[level]
                if source is None:
                    name = GEOGRAPHY[level].census_dataset
                    skipped[level] = f"no {name} dataset at {catalog.uri(name)}: level skipped"
                    continue
                path = folder / _file_name(storage.summary_stats_uri(level))
                levels[level] = _summarize_level(con, storage, level, source, total, path)
                staged[level] = str(path)
            audited = checks.audit(
                {
                    "region_files_value_ranges": checks.building_value_ranges(
                        storage, duck, _region_files(storage)
                    ),
                    "summary_stats_consistent": checks.summary_stats_consistent(
                        storage, duck, staged
                    ),
                }
            )
            st.publish()
    return SummaryStats(storage.summary_stats_dir, total, levels, skipped, audited)


def _file_name(uri: str) -> str:
    return uri.rsplit("/", 1)[-1]


def _summarize_level(
    con, storage: Storage, level: str, source: str, total: int, path: Path
) -> LevelSummary:
    """Write one level's summary table to the staged ``path``."""
    t0 = time.perf_counter()
    counts = _join_level(con, level, source, total)
    _aggregate(con)
    footer = {"ocr:aggregation": json.dumps(counts.figures())}
    sql = _final_sql(level, counts.duplicate_geoid_rows > 0)
    rows = write_query_geoparquet(con, sql, path, footer)
    spatial = counts.pieces is not None
    histograms = None if spatial else _nation_histograms(con, path)
    con.execute("DROP TABLE j" if spatial else "DROP VIEW j")
    for table in ("counts", "medians", "poly", "pieces"):
        con.execute(f"DROP TABLE IF EXISTS {table}")
    return LevelSummary(
        path=storage.summary_stats_uri(level),
        rows=rows,
        counts=counts,
        risk_score_histograms=histograms,
        seconds=round(time.perf_counter() - t0, 3),
    )


def _join_level(con, level: str, source: str, total: int) -> LevelCounts:
    """Load the level's polygons and make ``j``: each assigned building with its gid.

    The nation takes every building, with no spatial test; the other levels join centroids
    to polygon pieces."""
    polygons = asdict(census.load_polygons(con, level, source))
    if level == "nation":
        columns = ", ".join((*SUMMARY_VARIABLES, *BIN_COLUMNS))
        con.execute(f"CREATE OR REPLACE TEMP VIEW j AS SELECT 1::BIGINT AS gid, {columns} FROM bld")
        return LevelCounts(
            building_count=total,
            total_buildings=total,
            unassigned_buildings=0,
            boundary_ties=0,
            join="every building",
            **polygons,
        )
    pieces = census.build_pieces(con)
    assigned, ties = _assign(con)
    return LevelCounts(
        building_count=assigned,
        total_buildings=total,
        unassigned_buildings=total - assigned,
        boundary_ties=ties,
        join="centroid in polygon, ties to lowest GEOID",
        **polygons,
        **asdict(pieces),
    )


def _nation_histograms(con, path: Path) -> dict[str, list[int]] | None:
    """The nation's risk-score histograms as written (for the asset's metadata)."""
    columns = ", ".join(HISTOGRAMS)
    row = con.execute(f"SELECT {columns} FROM read_parquet({sql_file(str(path))})").fetchone()
    if row is None:
        return None
    return {
        var: [int(c) for c in values] for var, values in zip(HISTOGRAMS.values(), row, strict=True)
    }
