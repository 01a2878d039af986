"""Figures as Dagster metadata entries, one entry per figure so the UI can show and plot them."""

from __future__ import annotations

import dagster as dg


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


def check_results(checks: dict[str, dict]) -> list[dg.AssetCheckResult]:
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


def audited(context, compute, fn, *args):
    """Run a write–audit–publish function on the asset's cluster (a generator: use with
    ``yield from``). Its checks passed: return its summary. A check failed, so nothing was
    published: yield the failing check results and fail the step, not retried."""
    from ocr_core.checks import AuditError

    try:
        return compute.run_for(context, fn, *args)
    except AuditError as exc:
        yield from check_results(exc.checks)
        raise dg.Failure(description=str(exc), allow_retries=False) from exc
