"""What the data schema promises: value ranges of the input datasets' variables (one table,
read by every input check) and the risk-score bins of RPS.

Keys of ``VALUE_RANGES`` are (catalog dataset name, variable); values are inclusive (lo, hi). BP
is a probability, CRPS and RPS are percentages (Wildfire Risk to Communities), wind-direction
shares are fractions whose eight directions sum to 1 (or to 0 where no fire-weather hour
occurred). Risk score 0 is RPS exactly 0; score i ≥ 1 is RPS in (b[i-1], b[i]] over
``RISK_SCORE_BOUNDARIES``, compared in float32 (the reference's DuckDB histogram).
"""

from __future__ import annotations

import itertools

VALUE_RANGES: dict[tuple[str, str], tuple[float, float]] = {
    ("scott-et-al-2024-30m-4326", "BP"): (0.0, 1.0),
    ("scott-et-al-2024-30m-4326", "CRPS"): (0.0, 100.0),
    ("scott-et-al-2024-30m-4326", "RPS"): (0.0, 100.0),
    ("riley-et-al-2025-2011-270m-5070", "BP"): (0.0, 1.0),
    ("riley-et-al-2025-2047-270m-5070", "BP"): (0.0, 1.0),
    ("riley-et-al-2025-2011-30m-4326", "BP"): (0.0, 1.0),
    ("riley-et-al-2025-2047-30m-4326", "BP"): (0.0, 1.0),
    ("conus404-ffwi-p99-wind-direction-distribution-30m-4326", "wind_direction_distribution"): (
        0.0,
        1.0,
    ),
}
WIND_SUM_TOLERANCE = 1e-5  # per pixel, the eight shares sum to 0 or 1 within this
MIN_BUILDING_ROWS = 1
RISK_SCORE_BOUNDARIES = (0.01, 0.02, 0.035, 0.06, 0.1, 0.2, 0.5, 1, 3, 100)


def risk_score_labels() -> list[str]:
    """The 11 risk scores as RPS (%) intervals: "0", then "(a, b]" (tables, the map's legend)."""
    edges = (0.0, *RISK_SCORE_BOUNDARIES)
    return ["0"] + [f"({a:g}, {b:g}]" for a, b in itertools.pairwise(edges)]


def risk_scores(rps):
    """The risk score (0..10) of each RPS value; -1 for NaN and values above 100."""
    import numpy as np

    values = np.asarray(rps, dtype=np.float32)
    bounds = np.asarray(RISK_SCORE_BOUNDARIES, dtype=np.float32)
    with np.errstate(invalid="ignore"):
        scores = np.searchsorted(bounds, values, side="left") + 1  # first b >= value
        scores[values == 0] = 0
        scores[~np.isfinite(values) | (scores > bounds.size)] = -1
    return scores


def risk_score_histogram(rps) -> list[int]:
    """Counts of the 11 risk scores of RPS values (NaN and values above 100 not counted)."""
    import numpy as np

    scores = risk_scores(rps)
    counts = np.bincount(scores[scores >= 0], minlength=len(RISK_SCORE_BOUNDARIES) + 1)
    return [int(c) for c in counts]
