"""Data checks on published outputs (pure: each returns (passed, details)).

They guard what downstream steps would publish: no building lost or duplicated between the
region files and the consolidated dataset, histograms that add up, counts that reconcile,
values inside the data schema's ranges.
"""

from __future__ import annotations

import json

from ocr_core.duck import DuckDBConfig, connect, sql_file, sql_files
from ocr_core.storage import Storage

RANGES = {
    "rps_scott": (0.0, 100.0),
    "rps_2011": (0.0, 100.0),
    "rps_2047": (0.0, 100.0),
    "crps_scott": (0.0, 100.0),
    "bp_2011": (0.0, 1.0),
    "bp_2047": (0.0, 1.0),
    "bp_2011_riley": (0.0, 1.0),
    "bp_2047_riley": (0.0, 1.0),
}
SUMMARY_LEVELS = ("counties", "tracts", "states", "nation", "blocks")


def _region_files(storage: Storage) -> str:
    """The region files as a DuckDB source: listed, never a pattern over the root (typed, so
    that no files reads as DuckDB's 'needs at least one file')."""
    files = storage.list_files(storage.region_geoparquet_dir, ".parquet")
    return f"read_parquet({sql_files(files)}::VARCHAR[])"


def consolidated_matches_regions(storage: Storage, duck: DuckDBConfig | None = None):
    """The consolidated file and the hive dataset hold exactly the region files' buildings."""
    con = connect(duck, storage)
    key = "GEOID, ST_AsWKB(geometry) AS wkb, rps_2011, rps_2047"
    partitioned = storage.list_files(storage.partitioned_buildings_uri, ".parquet", recursive=True)
    sources = {
        "consolidated": f"read_parquet({sql_file(storage.consolidated_buildings_uri)})",
        "partitioned": (
            f"read_parquet({sql_files(partitioned)}::VARCHAR[], hive_partitioning = true)"
        ),
    }
    regions = _region_files(storage)
    details: dict = {"region_rows": con.execute(f"SELECT count(*) FROM {regions}").fetchone()[0]}
    passed = True
    for name, src in sources.items():
        rows = con.execute(f"SELECT count(*) FROM {src}").fetchone()[0]
        missing = con.execute(
            f"SELECT count(*) FROM (SELECT {key} FROM {regions} EXCEPT ALL SELECT {key} FROM {src})"
        ).fetchone()[0]
        extra = con.execute(
            f"SELECT count(*) FROM (SELECT {key} FROM {src} EXCEPT ALL SELECT {key} FROM {regions})"
        ).fetchone()[0]
        details[name] = {"rows": rows, "missing": missing, "extra_or_duplicated": extra}
        passed &= missing == 0 and extra == 0
    if details["region_rows"] == 0:
        passed = False
    return passed, details


def building_value_ranges(storage: Storage, duck: DuckDBConfig | None = None):
    """Every risk column of the consolidated buildings lies in its schema range, no NaN."""
    con = connect(duck, storage)
    src = f"read_parquet({sql_file(storage.consolidated_buildings_uri)})"
    exprs = ", ".join(
        f"min({v}), max({v}), count(*) FILTER (WHERE isnan({v}) OR {v} IS NULL)" for v in RANGES
    )
    row = con.execute(f"SELECT {exprs} FROM {src}").fetchone()
    details, passed = {}, True
    for i, (var, (lo, hi)) in enumerate(RANGES.items()):
        vmin, vmax, bad = row[3 * i : 3 * i + 3]
        ok = bad == 0 and (vmin is None or (vmin >= lo and vmax <= hi))
        details[var] = {"min": vmin, "max": vmax, "nan_or_null": bad, "range": [lo, hi], "ok": ok}
        passed &= ok
    return passed, details


def _present_levels(storage: Storage) -> list[str]:
    return [lvl for lvl in SUMMARY_LEVELS if storage.exists(storage.summary_stats_uri(lvl))]


def _aggregation_footer(storage: Storage, level: str) -> dict:
    """The counts the aggregation recorded in a summary file's footer (``ocr:aggregation``)."""
    import pyarrow.parquet as pq

    uri = storage.summary_stats_uri(level)
    path = uri[len("s3://") :] if uri.startswith("s3://") else uri
    with storage.filesystem().open(path, "rb") as f:
        meta = pq.ParquetFile(f).schema_arrow.metadata or {}
    raw = meta.get(b"ocr:aggregation")
    return json.loads(raw) if raw else {}


def summary_stats_consistent(storage: Storage, duck: DuckDBConfig | None = None):
    """Per level: histograms sum to building_count; county and national totals agree with
    the buildings; means and medians inside the schema ranges."""
    con = connect(duck, storage)
    levels = _present_levels(storage)
    details: dict = {"levels": levels}
    passed = {"counties", "tracts", "states", "nation"} <= set(levels)
    for level in levels:
        src = f"read_parquet({sql_file(storage.summary_stats_uri(level))})"
        range_terms = " OR ".join(
            f"{v}_{stat} < {lo} OR {v}_{stat} > {hi}"
            for v, (lo, hi) in RANGES.items()
            if v != "rps_scott"
            for stat in ("mean", "median")
        )
        rows, total, bad_hist, bad_range = con.execute(
            f"""SELECT count(*), sum(building_count),
                count(*) FILTER (WHERE list_sum(risk_score_2011_hist) != building_count
                                 OR list_sum(risk_score_2047_hist) != building_count
                                 OR len(risk_score_2011_hist) != 11
                                 OR len(risk_score_2047_hist) != 11),
                count(*) FILTER (WHERE {range_terms})
            FROM {src}"""
        ).fetchone()
        details[level] = {
            "rows": rows,
            "buildings": int(total or 0),
            "bad_histograms": bad_hist,
            "out_of_range": bad_range,
        }
        passed &= bad_hist == 0 and bad_range == 0
    if "counties" in details and "nation" in details:
        # Buildings whose centroid lies in no county (offshore, a polygon gap) are reported
        # by the aggregation; counted with them, the counties must add up to the nation.
        unassigned = _aggregation_footer(storage, "counties").get("unassigned_buildings", 0)
        details["counties_unassigned"] = unassigned
        details["counties_sum_equals_nation"] = (
            details["counties"]["buildings"] + unassigned == details["nation"]["buildings"]
        )
        passed &= details["counties_sum_equals_nation"]
    region_rows = con.execute(f"SELECT count(*) FROM {_region_files(storage)}").fetchone()[0]
    details["region_buildings"] = region_rows
    if "nation" in details:
        details["nation_equals_region_buildings"] = details["nation"]["buildings"] == region_rows
        passed &= details["nation_equals_region_buildings"]
    return bool(passed), details
