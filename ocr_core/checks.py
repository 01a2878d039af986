"""Blocking data checks (pure: each returns (passed, details)), and ``audit`` that enforces them.

Writers run them on their staged outputs before publishing (``ocr_core.publish``): no building
lost or duplicated between the region files and the consolidated dataset, histograms that add
up, counts that reconcile, values inside the data schema's ranges, no collapse in building
count against the published version. Without explicit paths they read the published outputs.
"""

from __future__ import annotations

import json
from pathlib import Path

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


SHRINK_LIMIT = 0.5  # a building count falling below half the published one is blocked


class AuditError(ValueError):
    """Blocking checks failed on staged outputs, so nothing was published; ``checks`` holds
    every check's (passed, details)."""

    def __init__(self, message: str, checks: dict[str, dict]):
        super().__init__(message)
        self.checks = checks

    def __reduce__(self):  # keeps the figures when the error crosses a Dask worker
        return type(self), (str(self), self.checks)


def audit(results: dict[str, tuple[bool, dict]]) -> dict[str, dict]:
    """``{check: {"passed", "details"}}``; AuditError naming each failed check with its
    figures if any failed."""
    checks = {name: {"passed": bool(ok), "details": d} for name, (ok, d) in results.items()}
    failed = {name: c["details"] for name, c in checks.items() if not c["passed"]}
    if failed:
        figures = "; ".join(f"{name}: {_figures(d)}" for name, d in failed.items())
        raise AuditError(f"blocking check failed, nothing published — {figures}", checks)
    return checks


def _figures(details: dict, limit: int = 400) -> str:
    """The failing entries of a check's details first, as compact text."""
    bad = {k: v for k, v in details.items() if isinstance(v, dict) and v.get("ok") is False}
    text = json.dumps(bad or details, default=str, separators=(",", ":"))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def shrink_guard(published: int | None, new: int, accept: bool, what: str):
    """Block a building count below ``SHRINK_LIMIT`` × the published one, unless accepted."""
    details = {"published": published, "new": new, "limit": SHRINK_LIMIT, "accepted": accept}
    fell = published is not None and published > 0 and new < SHRINK_LIMIT * published
    details["ok"] = not fell or accept
    if fell and not accept:
        details["fix"] = (
            f"{what} fell from {published} to {new} buildings; if the input really shrank, "
            "rerun with the run tag ocr/accept-shrink=true (CLI: --accept-shrink)"
        )
    return details["ok"], details


def parquet_rows(storage: Storage, uri: str) -> int | None:
    """Rows of a parquet file (published, or a staged local one) from its footer; None if
    there is none."""
    import pyarrow.parquet as pq

    exists = storage.exists(uri) if uri.startswith("s3://") else Path(uri).exists()
    if not exists:
        return None
    with _open(storage, uri) as f:
        return pq.ParquetFile(f).metadata.num_rows


def _open(storage: Storage, path: str):
    """Open a published S3 object or a local (published or staged) file for reading."""
    if path.startswith("s3://"):
        return storage.filesystem().open(storage.fs_path(path), "rb")
    return open(path, "rb")


def region_files(storage: Storage) -> list[str]:
    return storage.list_files(storage.region_geoparquet_dir, ".parquet")


def _files_below(storage: Storage, folder: str) -> list[str]:
    """The parquet files below a folder: a staged local one, or a published one."""
    local = Path(folder)
    if not storage.is_s3 or local.is_dir():
        return sorted(str(p) for p in local.rglob("*.parquet") if not p.name.startswith("."))
    return storage.list_files(folder, ".parquet", recursive=True)


def _regions_sql(files: list[str]) -> str:
    """The region files as a DuckDB source (typed, so that no files reads as no rows)."""
    return f"read_parquet({sql_files(files)}::VARCHAR[])"


def consolidated_matches_regions(
    storage: Storage,
    duck: DuckDBConfig | None = None,
    consolidated: str | None = None,
    partitioned: str | None = None,
):
    """The consolidated file and the hive dataset hold exactly the region files' buildings."""
    con = connect(duck, storage)
    key = "GEOID, ST_AsWKB(geometry) AS wkb, rps_2011, rps_2047"
    hive = _files_below(
        storage, partitioned or storage.current_dir(storage.partitioned_buildings_uri)
    )
    sources = {
        "consolidated": (
            f"read_parquet({sql_file(consolidated or storage.consolidated_buildings_uri)})"
        ),
        "partitioned": f"read_parquet({sql_files(hive)}::VARCHAR[], hive_partitioning = true)",
    }
    regions = _regions_sql(region_files(storage))
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


def building_value_ranges(
    storage: Storage, duck: DuckDBConfig | None = None, path: str | list[str] | None = None
):
    """Every risk column of building files (default: the consolidated one) lies in its
    schema range, no NaN."""
    con = connect(duck, storage)
    paths = [path] if isinstance(path, str) else path or [storage.consolidated_buildings_uri]
    src = f"read_parquet({sql_files(paths)}::VARCHAR[])"
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


def published_summary_paths(storage: Storage) -> dict[str, str]:
    """Level -> published summary file, for the levels present."""
    paths = {lvl: storage.published_summary_stats_uri(lvl) for lvl in SUMMARY_LEVELS}
    return {lvl: p for lvl, p in paths.items() if storage.exists(p)}


def _aggregation_footer(storage: Storage, path: str) -> dict:
    """The counts the aggregation recorded in a summary file's footer (``ocr:aggregation``)."""
    import pyarrow.parquet as pq

    with _open(storage, path) as f:
        meta = pq.ParquetFile(f).schema_arrow.metadata or {}
    raw = meta.get(b"ocr:aggregation")
    return json.loads(raw) if raw else {}


def summary_stats_consistent(
    storage: Storage, duck: DuckDBConfig | None = None, paths: dict[str, str] | None = None
):
    """Per level: histograms sum to building_count; county and national totals agree with
    the buildings; means and medians inside the schema ranges. ``paths``: level -> file
    (default: the published ones)."""
    con = connect(duck, storage)
    paths = published_summary_paths(storage) if paths is None else paths
    levels = [lvl for lvl in SUMMARY_LEVELS if lvl in paths]
    details: dict = {"levels": levels}
    passed = {"counties", "tracts", "states", "nation"} <= set(levels)
    for level in levels:
        src = f"read_parquet({sql_file(paths[level])})"
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
        unassigned = _aggregation_footer(storage, paths["counties"]).get("unassigned_buildings", 0)
        details["counties_unassigned"] = unassigned
        details["counties_sum_equals_nation"] = (
            details["counties"]["buildings"] + unassigned == details["nation"]["buildings"]
        )
        passed &= details["counties_sum_equals_nation"]
    region_rows = con.execute(
        f"SELECT count(*) FROM {_regions_sql(region_files(storage))}"
    ).fetchone()[0]
    details["region_buildings"] = region_rows
    if "nation" in details:
        details["nation_equals_region_buildings"] = details["nation"]["buildings"] == region_rows
        passed &= details["nation_equals_region_buildings"]
    return bool(passed), details


def analysis_files_complete(written: dict[str, dict]):
    """Every analysis file holds exactly one row per row of its summary table."""
    details, passed = {}, True
    for name, out in written.items():
        if not out.get("present"):
            continue
        ok = all(n == out["summary_rows"] for n in out["rows_per_file"].values())
        details[name] = {"summary_rows": out["summary_rows"], **out["rows_per_file"], "ok": ok}
        passed &= ok
    return passed and bool(details), details


def buildings_reconcile(written: int, dropped: int, in_input: int):
    """Rows written + rows dropped for NaN = the input's buildings in the region."""
    details = {"written": written, "dropped_nan": dropped, "in_input": in_input}
    details["ok"] = written + dropped == in_input
    return details["ok"], details


def array_value_ranges(arrays: dict):
    """Each risk array's finite values inside the schema range (a region's raster)."""
    import numpy as np

    details, passed = {}, True
    for var, (lo, hi) in RANGES.items():
        if var not in arrays:
            continue
        a = np.asarray(arrays[var])
        finite = a[np.isfinite(a)]
        vmin = float(finite.min()) if finite.size else None
        vmax = float(finite.max()) if finite.size else None
        bad = int(np.count_nonzero((finite < lo) | (finite > hi)))
        ok = bad == 0
        details[var] = {"min": vmin, "max": vmax, "outside": bad, "range": [lo, hi], "ok": ok}
        passed &= ok
    return passed, details
