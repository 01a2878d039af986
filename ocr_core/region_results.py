"""What a region task hands back to its asset: small frozen records, picklable across Dask.

``run_region_risk`` returns a ``RegionRisk`` and ``run_region_buildings`` a
``RegionBuildings`` (``ocr_core.process_region``); the region asset turns them into Dagster
metadata. ``preview_png`` draws the risk preview the UI shows.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ocr_core.checks import Audit


@dataclass(frozen=True)
class ValueRange:
    """Finite minimum and maximum of one variable (None when it has no finite value) and,
    for a raster, the share of its pixels that are NaN (None for building columns)."""

    min: float | None
    max: float | None
    nan_fraction: float | None = None


@dataclass(frozen=True)
class RegionRisk:
    """One region's committed risk raster: where it went, what it holds, what it cost."""

    region_id: str
    snapshot_id: str  # the icechunk commit of this region
    repository: str  # the icechunk repository's URI
    shape: tuple[int, int]  # (rows, cols) of the region's pixels
    bounds: tuple[float, float, float, float]  # lon_min, lat_min, lon_max, lat_max
    value_ranges: dict[str, ValueRange]  # per output variable
    read_seconds: float
    kernel_seconds: float
    write_seconds: float
    kernel_peak_mb: float
    kernel_added_mb: float
    process_max_rss_mb: float
    preview_png: bytes  # ``preview_png`` of rps_2011
    preview_scale_top: float  # the value at the top of the preview's colour bar
    checks: Audit  # ``checks.audit`` of the staged arrays


@dataclass(frozen=True)
class RegionBuildings:
    """One region's published building file and the figures of its checks."""

    region_id: str
    path: str  # the published GeoParquet's URI
    buildings_in_region: int  # buildings of the input in the region
    building_count: int  # rows written
    dropped_nan_count: int  # buildings dropped for a NaN risk value
    bytes: int
    value_ranges: dict[str, ValueRange]  # per output variable; empty ranges for no rows
    risk_score_histograms: dict[str, list[int]]  # RPS variable -> the 11 risk-score counts
    checks: Audit  # ``checks.audit`` of the staged file


def raster_ranges(arrays: dict[str, np.ndarray]) -> dict[str, ValueRange]:
    """Finite min/max and NaN fraction (6 decimals) of each array."""
    out = {}
    for name, a in arrays.items():
        finite = a[np.isfinite(a)]
        out[name] = ValueRange(
            min=float(finite.min()) if finite.size else None,
            max=float(finite.max()) if finite.size else None,
            nan_fraction=round(float(1 - finite.size / a.size), 6) if a.size else 0.0,
        )
    return out


def column_ranges(frame, columns: tuple[str, ...]) -> dict[str, ValueRange]:
    """Min and max of each of ``columns`` of a table without NaN (None for no rows)."""
    if not len(frame):
        return {c: ValueRange(None, None) for c in columns}
    return {c: ValueRange(float(frame[c].min()), float(frame[c].max())) for c in columns}


PREVIEW_RAMP = np.array([[255, 255, 204], [254, 178, 76], [240, 59, 32], [128, 0, 38]], float)


def preview_png(values: np.ndarray, max_side: int = 240) -> tuple[bytes, float]:
    """A small north-up PNG of a risk layer (NaN transparent) with its colour bar along the
    bottom, for the Dagster UI; returns it and the value at the top of the scale (the 99th
    percentile)."""
    from PIL import Image

    step = max(1, int(np.ceil(max(values.shape) / max_side)))
    a = values[::step, ::step][::-1]  # latitude ascends: flip so north is up
    finite = np.isfinite(a)
    top = float(np.nanpercentile(a, 99)) if finite.any() else 1.0
    t = np.clip(np.where(finite, a, 0) / (top or 1.0), 0, 1)
    bar = np.broadcast_to(np.linspace(0, 1, a.shape[1]), (max(6, a.shape[0] // 16), a.shape[1]))
    t = np.vstack([t, np.zeros((2, a.shape[1])), bar])
    alpha = np.vstack(
        [np.where(finite, 255, 0), np.zeros((2, a.shape[1])), np.full(bar.shape, 255)]
    )
    pos = np.linspace(0, 1, len(PREVIEW_RAMP))
    rgb = np.stack([np.interp(t, pos, PREVIEW_RAMP[:, k]) for k in range(3)], axis=-1)
    rgba = np.dstack([rgb, alpha]).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, format="PNG", optimize=True)
    return buf.getvalue(), top
