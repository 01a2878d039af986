"""Blocking data checks (pure: each returns (passed, details)), and ``audit`` that enforces them.

Writers run them on their staged outputs before publishing (``ocr_core.publish``): no building
lost or duplicated between the region files and the consolidated dataset, histograms that add
up, counts that reconcile, values inside the data schema's ranges, no collapse in building
count against the published version. Without explicit paths they read the published outputs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from ocr_core.duck import DuckDBConfig, connect, fetch_one, sql_file, sql_files
from ocr_core.schema import HISTOGRAMS, LEVELS, REQUIRED_LEVELS, RISK_SCORE_BOUNDARIES, VARIABLES
from ocr_core.storage import Storage

if TYPE_CHECKING:
    from ocr_core.analysis_files import AnalysisOutput

Check = tuple[bool, dict[str, Any]]  # what every check returns: (passed, its figures)


class CheckOutcome(TypedDict):
    """One check's verdict as ``audit`` records it; the assets' Dagster check results and the
    AuditError's figures are made from it."""

    passed: bool
    details: dict[str, Any]


Audit = dict[str, CheckOutcome]  # what ``audit`` returns, by check name

SHRINK_LIMIT = 0.5  # a building count falling below half the published one is blocked


class AuditError(ValueError):
    """Blocking checks failed on staged outputs, so nothing was published; ``checks`` holds
    every check's (passed, details)."""

    def __init__(self, message: str, checks: Audit):
        super().__init__(message)
        self.checks = checks

    def __reduce__(self):  # keeps the figures when the error crosses a Dask worker
        return type(self), (str(self), self.checks)


def audit(results: dict[str, Check]) -> Audit:
    """``{check: {"passed", "details"}}``; AuditError naming each failed check with its
    figures if any failed."""
    checks = {name: CheckOutcome(passed=bool(ok), details=d) for name, (ok, d) in results.items()}
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


def shrink_guard(published: int | None, new: int, accept: bool, what: str) -> Check:
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
) -> Check:
    """The consolidated file and the hive dataset hold exactly the region files' buildings."""
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
    with connect(duck, storage) as con:
        details: dict = {"region_rows": _count(con, regions)}
        passed = details["region_rows"] > 0
        for name, src in sources.items():
            missing, extra = _difference(con, regions, src), _difference(con, src, regions)
            details[name] = {
                "rows": _count(con, src),
                "missing": missing,
                "extra_or_duplicated": extra,
            }
            passed &= missing == 0 and extra == 0
    return passed, details


def _count(con, source: str) -> int:
    (rows,) = fetch_one(con, f"SELECT count(*) FROM {source}")
    return rows


def _difference(con, source: str, other: str) -> int:
    """Buildings of ``source`` not in ``other``, as a multiset (duplicates count)."""
    key = "GEOID, ST_AsWKB(geometry) AS wkb, rps_2011, rps_2047"
    return _count(con, f"(SELECT {key} FROM {source} EXCEPT ALL SELECT {key} FROM {other})")


def building_value_ranges(
    storage: Storage, duck: DuckDBConfig | None = None, path: str | list[str] | None = None
) -> Check:
    """Every risk column of building files (default: the consolidated one) lies in its
    schema range, no NaN."""
    paths = [path] if isinstance(path, str) else path or [storage.consolidated_buildings_uri]
    src = f"read_parquet({sql_files(paths)}::VARCHAR[])"
    exprs = ", ".join(
        f"min({v.name}), max({v.name}), count(*) FILTER (WHERE isnan({v.name}) OR {v.name} IS NULL)"
        for v in VARIABLES
    )
    with connect(duck, storage) as con:
        row = fetch_one(con, f"SELECT {exprs} FROM {src}")
    details, passed = {}, True
    for i, var in enumerate(VARIABLES):
        (lo, hi), (vmin, vmax, bad) = var.range, row[3 * i : 3 * i + 3]
        ok = bad == 0 and (vmin is None or (vmin >= lo and vmax <= hi))
        details[var.name] = {
            "min": vmin,
            "max": vmax,
            "nan_or_null": bad,
            "range": [lo, hi],
            "ok": ok,
        }
        passed &= ok
    return passed, details


def published_summary_paths(storage: Storage) -> dict[str, str]:
    """Level -> published summary file, for the levels present."""
    paths = {lvl: storage.published_summary_stats_uri(lvl) for lvl in LEVELS}
    return {lvl: p for lvl, p in paths.items() if storage.exists(p)}


def _aggregation_footer(storage: Storage, path: str) -> dict:
    """The counts the aggregation recorded in a summary file's footer (``ocr:aggregation``)."""
    import pyarrow.parquet as pq

    with _open(storage, path) as f:
        meta = pq.ParquetFile(f).schema_arrow.metadata or {}
    raw = meta.get(b"ocr:aggregation")
    return json.loads(raw) if raw else {}


def _summary_level_sql(source: str) -> str:
    """Rows, buildings, rows whose histograms don't add up, rows with a statistic out of range."""
    bins = len(RISK_SCORE_BOUNDARIES) + 1
    bad_hist = " OR ".join(
        [f"list_sum({h}) != building_count" for h in HISTOGRAMS]
        + [f"len({h}) != {bins}" for h in HISTOGRAMS]
    )
    out_of_range = " OR ".join(
        f"{v.name}_{stat} < {v.range[0]} OR {v.name}_{stat} > {v.range[1]}"
        for v in VARIABLES
        if v.summarized
        for stat in ("mean", "median")
    )
    return f"""SELECT count(*), sum(building_count),
        count(*) FILTER (WHERE {bad_hist}), count(*) FILTER (WHERE {out_of_range})
        FROM {source}"""


def summary_stats_consistent(
    storage: Storage, duck: DuckDBConfig | None = None, paths: dict[str, str] | None = None
) -> Check:
    """Per level: histograms sum to building_count; county and national totals agree with
    the buildings; means and medians inside the schema ranges. ``paths``: level -> file
    (default: the published ones)."""
    paths = published_summary_paths(storage) if paths is None else paths
    levels = [lvl for lvl in LEVELS if lvl in paths]
    details: dict = {"levels": levels}
    passed = set(REQUIRED_LEVELS) <= set(levels)
    with connect(duck, storage) as con:
        for level in levels:
            sql = _summary_level_sql(f"read_parquet({sql_file(paths[level])})")
            rows, total, bad_hist, bad_range = fetch_one(con, sql)
            details[level] = {
                "rows": rows,
                "buildings": int(total or 0),
                "bad_histograms": bad_hist,
                "out_of_range": bad_range,
            }
            passed &= bad_hist == 0 and bad_range == 0
        region_rows = _count(con, _regions_sql(region_files(storage)))
    if "counties" in details and "nation" in details:
        # Buildings whose centroid lies in no county (offshore, a polygon gap) are reported
        # by the aggregation; counted with them, the counties must add up to the nation.
        unassigned = _aggregation_footer(storage, paths["counties"]).get("unassigned_buildings", 0)
        details["counties_unassigned"] = unassigned
        details["counties_sum_equals_nation"] = (
            details["counties"]["buildings"] + unassigned == details["nation"]["buildings"]
        )
        passed &= details["counties_sum_equals_nation"]
    details["region_buildings"] = region_rows
    if "nation" in details:
        details["nation_equals_region_buildings"] = details["nation"]["buildings"] == region_rows
        passed &= details["nation_equals_region_buildings"]
    return bool(passed), details


def analysis_files_complete(written: dict[str, AnalysisOutput]) -> Check:
    """Every analysis file holds exactly one row per row of its summary table."""
    details, passed = {}, True
    for name, out in written.items():
        ok = all(n == out.summary_rows for n in out.rows_per_file.values())
        details[name] = {"summary_rows": out.summary_rows, **out.rows_per_file, "ok": ok}
        passed &= ok
    return passed and bool(details), details


def buildings_reconcile(written: int, dropped: int, in_input: int) -> Check:
    """Rows written + rows dropped for NaN = the input's buildings in the region."""
    details = {"written": written, "dropped_nan": dropped, "in_input": in_input}
    details["ok"] = written + dropped == in_input
    return details["ok"], details


def array_value_ranges(arrays: dict) -> Check:
    """Each risk array's finite values inside the schema range (a region's raster)."""
    import numpy as np

    details, passed = {}, True
    for variable in VARIABLES:
        var, (lo, hi) = variable.name, variable.range
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
