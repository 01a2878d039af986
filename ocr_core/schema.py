"""Value ranges of the input datasets' variables: one table, read by every input check.

Keys are (catalog dataset name, variable); values are inclusive (lo, hi). BP is a probability,
CRPS and RPS are percentages (Wildfire Risk to Communities), wind-direction shares are fractions
whose eight directions sum to 1 (or to 0 where no fire-weather hour occurred).
"""

from __future__ import annotations

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
