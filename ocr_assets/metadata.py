"""Figures as Dagster metadata entries, one entry per figure so the UI can show and plot them;
the region records (``ocr_core.region_results``) as their materializations' metadata."""

from __future__ import annotations

import base64
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any, TypeVar

import dagster as dg

from ocr_core.region_results import RegionBuildings, RegionRisk, ValueRange

if TYPE_CHECKING:
    from ocr_core.checks import Audit
    from ocr_resources.compute import ComputeResource

T = TypeVar("T")


def metadata_value(value) -> dg.MetadataValue:
    """One figure: numbers as numbers, lists and dicts as JSON, anything else as text."""
    if isinstance(value, bool):
        return dg.MetadataValue.bool(value)
    if isinstance(value, int):
        return dg.MetadataValue.int(value)
    if isinstance(value, float):
        return dg.MetadataValue.float(value)
    if isinstance(value, dict | list | tuple):
        return dg.MetadataValue.json(value)
    return dg.MetadataValue.text(str(value))


def flat_metadata(figures: dict, prefix: str = "") -> dict[str, dg.MetadataValue]:
    """Nested figures as flat entries named by their path ("counties rows")."""
    out: dict[str, dg.MetadataValue] = {}
    for key, value in figures.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out |= flat_metadata(value, prefix=f"{name} ")
        elif value is not None:
            out[name] = metadata_value(value)
    return out


def histogram_table(histograms: dict[str, list[int]]) -> dg.MetadataValue:
    """The 11 risk-score bins of each scenario as a table with bars, for people."""
    from ocr_core.schema import risk_score_labels

    labels = risk_score_labels()
    names = list(histograms)
    top = max((max(h) for h in histograms.values()), default=0) or 1
    rows = [
        "| score | RPS (%) | " + " | ".join(names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    for score, label in enumerate(labels):
        cells = [f"{h[score]:,} {'█' * round(20 * h[score] / top)}" for h in histograms.values()]
        rows.append(f"| {score} | {label} | " + " | ".join(cells) + " |")
    return dg.MetadataValue.md("\n".join(rows))


def blocking_checks(asset: str, **descriptions: str) -> list[dg.AssetCheckSpec]:
    """The blocking checks a writer runs on its staged outputs (name=description), as the
    asset's check specs."""
    return [
        dg.AssetCheckSpec(name, asset=asset, blocking=True, description=description)
        for name, description in descriptions.items()
    ]


def check_results(checks: Audit) -> list[dg.AssetCheckResult]:
    """The ``{check: {passed, details}}`` a writer's audit returns, as Dagster check results."""
    return [
        dg.AssetCheckResult(
            check_name=name,
            passed=c["passed"],
            severity=dg.AssetCheckSeverity.ERROR,
            metadata=flat_metadata(c["details"]),
        )
        for name, c in checks.items()
    ]


def audited(
    context: dg.AssetExecutionContext, compute: ComputeResource, fn: Callable[..., T], *args: Any
) -> Generator[dg.AssetCheckResult, None, T]:
    """Run a write–audit–publish function on the asset's cluster (a generator: use with
    ``yield from``). Its checks passed: return its summary. A check failed, so nothing was
    published: yield the failing check results and fail the step, not retried."""
    from ocr_core.checks import AuditError

    try:
        return compute.run_for(context, fn, *args)
    except AuditError as exc:
        yield from check_results(exc.checks)
        raise dg.Failure(description=str(exc), allow_retries=False) from exc


def _fmt(v: float | None) -> str:
    return "—" if v is None else f"{v:.6g}"


def _ranges_table(ranges: dict[str, ValueRange]) -> dg.MetadataValue:
    """Each variable's min, max and (rasters) NaN fraction as a table."""
    rows = ["| variable | min | max | NaN fraction |", "|---|---|---|---|"]
    rows += [
        f"| {var} | {_fmt(r.min)} | {_fmt(r.max)} | "
        f"{'' if r.nan_fraction is None else r.nan_fraction} |"
        for var, r in ranges.items()
    ]
    return dg.MetadataValue.md("\n".join(rows))


def region_risk_metadata(s: RegionRisk, compute: dict) -> dict[str, object]:
    """The metadata of one ``region_risk`` partition; ``compute``: where it ran."""
    rps = s.value_ranges["rps_2011"]
    png = base64.b64encode(s.preview_png).decode()
    return {
        "dagster/uri": dg.MetadataValue.path(s.repository),
        "snapshot_id": s.snapshot_id,
        "region_bounds": dg.MetadataValue.json(list(s.bounds)),
        "shape": dg.MetadataValue.json(list(s.shape)),
        "value_ranges": _ranges_table(s.value_ranges),
        "kernel_seconds": s.kernel_seconds,
        "kernel_peak_mb": s.kernel_peak_mb,
        "kernel_added_mb": s.kernel_added_mb,
        "read_seconds": s.read_seconds,
        "write_seconds": s.write_seconds,
        "process_max_rss_mb": s.process_max_rss_mb,
        "checks": dg.MetadataValue.json(s.checks),
        "compute": dg.MetadataValue.json(compute),
        "preview_rps_2011": dg.MetadataValue.md(
            f"![rps_2011 preview](data:image/png;base64,{png})\n\n"
            f"Colour bar (bottom strip): 0 % (pale yellow) to {s.preview_scale_top:.3g} % "
            "(dark red, the 99th percentile; above it dark red too). rps_2011 ranges over "
            f"{_fmt(rps.min)}–{_fmt(rps.max)} %."
        ),
    }


def region_buildings_metadata(s: RegionBuildings, compute: dict) -> dict[str, object]:
    """The metadata of one ``region_buildings`` partition; ``compute``: where it ran."""
    return {
        "dagster/uri": dg.MetadataValue.path(s.path),
        "dagster/row_count": s.building_count,
        "building_count": s.building_count,
        "buildings_in_region": s.buildings_in_region,
        "dropped_nan_count": s.dropped_nan_count,
        "bytes": s.bytes,
        "value_ranges": _ranges_table(s.value_ranges),
        "risk_score_histogram": histogram_table(s.risk_score_histograms),
        "checks": dg.MetadataValue.json(s.checks),
        "compute": dg.MetadataValue.json(compute),
    }
