"""The data schema, one home for each of its facts: dataset names, wind directions, the
geography levels, the output variables with their units and ranges, the input value ranges and
the risk-score bins of RPS (docs/data.md describes the layout these name).

Input ranges (``VALUE_RANGES``) are keyed by (catalog dataset name, variable) and inclusive: BP
is a probability, CRPS and RPS are percentages (Wildfire Risk to Communities), wind-direction
shares are fractions whose eight directions sum to 1 (or to 0 where no fire-weather hour
occurred). Risk score 0 is RPS exactly 0; score i ≥ 1 is RPS in (b[i-1], b[i]] over
``RISK_SCORE_BOUNDARIES``, compared in float32 (the reference's DuckDB histogram).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

# Input datasets (catalog names; ocr_core.catalog maps each to its store and checks).
SCOTT_2024 = "scott-et-al-2024-30m-4326"
SCENARIO_YEARS = ("2011", "2047")  # the climate runs: ~2011 (current) and ~2047 (future)
RILEY_270M = {year: f"riley-et-al-2025-{year}-270m-5070" for year in SCENARIO_YEARS}
RILEY_30M = {year: f"riley-et-al-2025-{year}-30m-4326" for year in SCENARIO_YEARS}
WIND_DISTRIBUTION = "conus404-ffwi-p99-wind-direction-distribution-30m-4326"
WIND_VARIABLE = "wind_direction_distribution"
BUILDINGS = "conus-overture-region-id-tagged-buildings"
RASTER_DATASETS = (SCOTT_2024, *RILEY_30M.values(), *RILEY_270M.values(), WIND_DISTRIBUTION)
WIND_DIRECTIONS = ("N", "NE", "E", "SE", "S", "SW", "W", "NW")  # the wind store's order


@dataclass(frozen=True)
class Geography:
    """A census geography level of the statistics, downloads and regional tiles."""

    level: str  # "counties": file names, table names, tile layers
    name_columns: tuple[str, ...]  # the summary table's name columns, in the reference's order
    analysis_folder: str  # region-analysis/{folder}/ (the reference names blocks "block")
    optional: bool = False  # the finest level may be skipped by the statistics step

    @property
    def census_dataset(self) -> str:
        return f"us-census-{self.level}"


GEOGRAPHIES = (  # finest first
    Geography("blocks", (), "block", optional=True),
    Geography("tracts", (), "tracts"),
    Geography("counties", ("NAME",), "counties"),
    Geography("states", ("STUSPS", "NAME"), "states"),
    Geography("nation", ("NAME",), "nation"),
)
GEOGRAPHY = {g.level: g for g in GEOGRAPHIES}
LEVELS = tuple(GEOGRAPHY)
REQUIRED_LEVELS = tuple(g.level for g in GEOGRAPHIES if not g.optional)
CENSUS_DATASETS = tuple(g.census_dataset for g in GEOGRAPHIES)
# The order of the reference's tippecanoe `-L level:file` arguments for the regional tileset.
TILE_LAYER_ORDER = ("counties", "tracts", "blocks", "states", "nation")


@dataclass(frozen=True)
class Variable:
    """A risk variable of the region rasters and the building files."""

    name: str
    units: str
    range: tuple[float, float]  # inclusive; a value outside it blocks publication
    summarized: bool = True  # in the statistics (mean, median) of every geography


PERCENT, PROBABILITY = "percent", "1 (annual probability)"
VARIABLES = (
    Variable("rps_scott", PERCENT, (0.0, 100.0), summarized=False),
    Variable("rps_2011", PERCENT, (0.0, 100.0)),
    Variable("rps_2047", PERCENT, (0.0, 100.0)),
    Variable("bp_2011", PROBABILITY, (0.0, 1.0)),
    Variable("bp_2047", PROBABILITY, (0.0, 1.0)),
    Variable("crps_scott", PERCENT, (0.0, 100.0)),
    Variable("bp_2011_riley", PROBABILITY, (0.0, 1.0)),
    Variable("bp_2047_riley", PROBABILITY, (0.0, 1.0)),
)
VARIABLE = {v.name: v for v in VARIABLES}
OUTPUT_VARIABLES = tuple(VARIABLE)  # the region raster's and the building files' order
SUMMARY_VARIABLES = tuple(v.name for v in VARIABLES if v.summarized)
# Risk-score histograms of the statistics: column → the RPS variable it bins.
HISTOGRAMS = {f"risk_score_{year}_hist": f"rps_{year}" for year in SCENARIO_YEARS}

VALUE_RANGES: dict[tuple[str, str], tuple[float, float]] = {
    (SCOTT_2024, "BP"): (0.0, 1.0),
    (SCOTT_2024, "CRPS"): (0.0, 100.0),
    (SCOTT_2024, "RPS"): (0.0, 100.0),
    **{(name, "BP"): (0.0, 1.0) for name in (*RILEY_270M.values(), *RILEY_30M.values())},
    (WIND_DISTRIBUTION, WIND_VARIABLE): (0.0, 1.0),
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
