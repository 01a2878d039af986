"""Check every input of a grid: store, CRS and where it is stated, alignment, variables, dtypes,
chunking and value ranges on a small sample window.

Pure (no Dagster): ``ocr-dagster check-inputs`` prints the reports and the input assets' checks
attach them as metadata. The sample is at most 512 × 512 pixels at the centre of the grid's first
valid region, which lies inside one 6000 × 4500 chunk of the CONUS stores, so a check reads one
chunk per variable even on the real 30 m stores.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ocr_core.catalog import DATASETS, InputCatalog, grid_offsets, spec
from ocr_core.errors import InputDataError
from ocr_core.grid import Grid
from ocr_core.input_crs import store_crs
from ocr_core.schema import (
    BUILDINGS,
    MIN_BUILDING_ROWS,
    SCOTT_2024,
    VALUE_RANGES,
    WIND_SUM_TOLERANCE,
    WIND_VARIABLE,
)
from ocr_core.validation import range_violation, wind_layout_error, wind_sums

SAMPLE_HALF_PX = 256
ALBERS_PIXEL_M = 270.0
GRID_FIX = (
    f"reproject it onto the geobox of {SCOTT_2024} and adopt that dataset's "
    "latitude/longitude (as the reference's ingestion does)"
)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one dataset, and how to fix it."""

    dataset: str
    what: str
    fix: str

    def line(self) -> str:
        return f"{self.dataset}: {self.what}. Fix: {self.fix}"


@dataclass
class DatasetReport:
    """What one input store holds, as checked; ``problems`` is empty when it is usable."""

    name: str
    uri: str
    crs: str | None = None
    crs_found_in: str | None = None
    alignment: str = ""
    grid_offset_px: tuple[int, int] | None = None
    pixel_size: tuple[float, float] | None = None
    variables: list[str] = field(default_factory=list)
    dtypes: dict[str, str] = field(default_factory=dict)
    chunks: dict[str, list[int]] = field(default_factory=dict)
    sample: str = ""
    ranges: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    rows: int | None = None
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def problem(self, what: str, fix: str) -> None:
        self.problems.append(Problem(self.name, what, fix))

    def error(self, exc: InputDataError, fix: str) -> None:
        """Record a catalog error; its own 'Fix: ...' (if any) wins over ``fix``."""
        what, _, own_fix = str(exc).partition(" Fix: ")
        self.problem(what.rstrip(". "), own_fix.rstrip(". ") or fix)

    def figures(self) -> dict[str, object]:
        """The report's figures as flat JSON-able values (for metadata and tests)."""
        out: dict[str, object] = {
            "uri": self.uri,
            "crs": self.crs,
            "crs_found_in": self.crs_found_in,
            "alignment": self.alignment,
            "variables": self.variables,
            "dtypes": self.dtypes,
            "chunks": self.chunks,
        }
        if self.grid_offset_px is not None:
            out["grid_offset_px"] = list(self.grid_offset_px)
        if self.pixel_size is not None:
            out["pixel_size"] = list(self.pixel_size)
        if self.rows is not None:
            out["rows"] = self.rows
        if self.sample:
            out["sample_window"] = self.sample
        for var, (lo, hi) in self.ranges.items():
            out[f"{var}_range"] = [lo, hi]
        out["problems"] = [p.line() for p in self.problems]
        return out


def check_inputs(
    catalog: InputCatalog, grid: Grid, names: tuple[str, ...] | None = None
) -> list[DatasetReport]:
    """One report per catalog dataset (or per ``names``), in catalog order."""
    return [check_input(catalog, grid, name) for name in (names or tuple(DATASETS))]


def check_input(catalog: InputCatalog, grid: Grid, name: str) -> DatasetReport:
    d = spec(name)
    report = DatasetReport(name=name, uri=catalog.uri(name))
    try:
        if d.data_format == "geoparquet":
            _check_geoparquet(catalog, report)
        else:
            _check_zarr(catalog, grid, report)
    except InputDataError as exc:
        report.error(exc, "point OCR_INPUT_ROOT at the real input stores or regenerate the demo")
    return report


# --- zarr --------------------------------------------------------------------------------------
def _check_zarr(catalog: InputCatalog, grid: Grid, report: DatasetReport) -> None:
    d = spec(report.name)
    ds = catalog.open_zarr(report.name, check=False)
    try:
        report.crs, report.crs_found_in = store_crs(d, ds, report.uri)
    except InputDataError as exc:
        report.error(exc, "state the CRS in the store")
    report.variables = sorted(str(v) for v in ds.data_vars if ds[v].ndim >= 2)
    for var in d.variables:
        if var not in ds.data_vars:
            report.problem(
                f"lacks variable {var!r} (has {sorted(map(str, ds.data_vars))})",
                f"write {var!r} into the store (the catalog expects {list(d.variables)})",
            )
            continue
        report.dtypes[var] = str(ds[var].dtype)
        chunks = ds[var].encoding.get("chunks") or ds[var].encoding.get("preferred_chunks")
        report.chunks[var] = [int(c) for c in chunks] if chunks else list(ds[var].shape)
    present = [v for v in d.variables if v in ds.data_vars]
    window = (
        _geographic_window(ds, grid, report)
        if d.on_processing_grid
        else _albers_window(ds, grid, report)
    )
    if window is not None and present:
        _sample_ranges(ds, present, window, report)


def _sample_centre(grid: Grid) -> tuple[int, int, int, int]:
    """Grid pixel window ≤ 512 × 512 at the centre of the first valid region (inside it)."""
    r0, r1, c0, c1 = grid.pixel_window(grid.valid_region_ids[0])
    rc, cc = (r0 + r1) // 2, (c0 + c1) // 2
    h = SAMPLE_HALF_PX
    return max(r0, rc - h), min(r1, rc + h), max(c0, cc - h), min(c1, cc + h)


def _geographic_window(ds, grid: Grid, report: DatasetReport):
    """Array window of the sample on a 30 m lat/lon store, after checking it sits on the grid."""
    d = spec(report.name)
    for dim in ("latitude", "longitude"):
        if dim not in ds.dims:
            report.problem(f"has no {dim!r} dimension (dims {list(ds.dims)})", GRID_FIX)
            return None
    lat, lon = ds["latitude"].values, ds["longitude"].values
    if lat.size >= 2 and lon.size >= 2:
        report.pixel_size = (float(lat[1] - lat[0]), float(lon[1] - lon[0]))
    try:
        row0, col0 = grid_offsets(d, ds, grid, report.uri)
    except InputDataError as exc:
        report.alignment = "not on the grid"
        report.error(exc, GRID_FIX)
        return None
    report.grid_offset_px = (row0, col0)
    report.alignment = (
        f"on the {grid.name} grid: first pixel at grid row {row0}, col {col0}; "
        f"pixel size {grid.pixel_size:.10g}° matches"
    )
    r0, r1, c0, c1 = _sample_centre(grid)
    i0, i1, j0, j1 = r0 - row0, r1 - row0, c0 - col0, c1 - col0
    if i0 < 0 or j0 < 0 or i1 > lat.size or j1 > lon.size:
        report.problem(
            f"does not cover the sample window (grid rows {r0}:{r1}, cols {c0}:{c1}) of region "
            f"{grid.valid_region_ids[0]}",
            "regenerate it over the whole grid (every valid region plus the buffer)",
        )
        return None
    report.sample = f"grid rows {r0}:{r1}, cols {c0}:{c1} ({grid.valid_region_ids[0]})"
    return {"latitude": slice(i0, i1), "longitude": slice(j0, j1)}


def _albers_window(ds, grid: Grid, report: DatasetReport):
    """Array window of the sample's footprint on a 270 m projected store, after checking the
    pixel size (either y order is read: the ingestion's sortby makes y ascend)."""
    import numpy as np
    from pyproj import Transformer

    for dim in ("y", "x"):
        if dim not in ds.dims:
            report.problem(
                f"has no {dim!r} dimension (dims {list(ds.dims)})",
                "store the 270 m raster with dims (y, x) as rasterio opens the GeoTIFF",
            )
            return None
    xs, ys = ds["x"].values, ds["y"].values
    if xs.size < 2 or ys.size < 2:
        report.problem("is smaller than 2 × 2 pixels", "write the whole 270 m raster")
        return None
    dx, dy = float(xs[1] - xs[0]), float(ys[1] - ys[0])
    report.pixel_size = (dy, dx)
    order = "y ascending" if dy > 0 else "y descending"
    if not all(math.isclose(abs(s), ALBERS_PIXEL_M, rel_tol=1e-6) for s in (dx, dy)):
        report.alignment = f"pixel size {abs(dx):g} × {abs(dy):g} m"
        report.problem(
            f"has pixels of {abs(dx):g} × {abs(dy):g} m, not {ALBERS_PIXEL_M:g} m",
            "use the Riley et al. 2025 270 m GeoTIFFs as published (do not resample them)",
        )
        return None
    report.alignment = f"{report.crs or 'unknown CRS'}, {ALBERS_PIXEL_M:g} m pixels, {order}"
    r0, r1, c0, c1 = _sample_centre(grid)
    lon = np.array([grid.lon_edge(c0), grid.lon_edge(c1)] * 2)
    lat = np.array([grid.lat_edge(r0)] * 2 + [grid.lat_edge(r1)] * 2)
    x, y = Transformer.from_crs("EPSG:4326", spec(report.name).crs, always_xy=True).transform(
        lon, lat
    )
    cols = (np.array([x.min(), x.max()]) - xs[0]) / dx
    rows = (np.array([y.min(), y.max()]) - ys[0]) / dy
    j0, j1 = max(0, math.floor(cols.min())), min(xs.size, math.ceil(cols.max()) + 1)
    i0, i1 = max(0, math.floor(rows.min())), min(ys.size, math.ceil(rows.max()) + 1)
    if i1 <= i0 or j1 <= j0:
        report.problem(
            f"does not cover region {grid.valid_region_ids[0]}",
            "use the CONUS-wide 270 m raster",
        )
        return None
    report.sample = f"y[{i0}:{i1}], x[{j0}:{j1}] (footprint of {grid.valid_region_ids[0]}'s centre)"
    return {"y": slice(i0, i1), "x": slice(j0, j1)}


def _sample_ranges(ds, variables: list[str], window: dict, report: DatasetReport) -> None:
    import numpy as np

    for var in variables:
        a = np.asarray(ds[var].isel(window).values, dtype="float64")
        finite = a[np.isfinite(a)]
        report.ranges[var] = (
            (float(finite.min()), float(finite.max())) if finite.size else (None, None)
        )
        bounds = VALUE_RANGES.get((report.name, var))
        if bounds and (v := range_violation(a, *bounds)) is not None:
            report.problem(
                f"{var} spans [{v.vmin:.6g}, {v.vmax:.6g}] on the sample window, outside the "
                f"schema's [{bounds[0]:g}, {bounds[1]:g}]",
                "check the source's units and nodata value, and rewrite the store",
            )
        if var == WIND_VARIABLE:
            _check_wind_sums(ds[var], a, report)


def _check_wind_sums(var, fractions, report: DatasetReport) -> None:
    """Every pixel's eight shares sum to 0 or 1 (± WIND_SUM_TOLERANCE); NaN pixels are skipped."""
    import numpy as np

    layout = wind_layout_error(var)
    if layout is not None:
        report.problem(
            layout, "store the 8 direction shares along a last 'wind_direction' dimension"
        )
        return
    sum_blocks, off_blocks = [np.empty(0)], [np.empty(0)]
    for _, _, total, dev in wind_sums(fractions, np.float64):
        known = np.isfinite(total)
        sum_blocks.append(total[known])
        off_blocks.append(dev[known])
    sums, off = np.concatenate(sum_blocks), np.concatenate(off_blocks)
    if not sums.size:
        return
    report.ranges["wind_direction_sum"] = (float(sums.min()), float(sums.max()))
    if off.max() > WIND_SUM_TOLERANCE:
        bad = int((off > WIND_SUM_TOLERANCE).sum())
        report.problem(
            f"{bad} pixel(s) of the sample window have wind-direction shares summing to neither "
            f"0 nor 1 (± {WIND_SUM_TOLERANCE:g}); worst off by {off.max():.3g}",
            "renormalise the distribution so each pixel's 8 shares sum to 1 (0 without fire "
            "weather)",
        )


# --- GeoParquet --------------------------------------------------------------------------------
def _check_geoparquet(catalog: InputCatalog, report: DatasetReport) -> None:
    import pyarrow.parquet as pq

    d = spec(report.name)
    catalog.existing_uri(report.name)
    schema = catalog.parquet_schema(report.name)
    try:
        report.crs, report.crs_found_in = store_crs(d, schema, report.uri)
    except InputDataError as exc:
        report.error(exc, "write it as GeoParquet with its CRS")
    report.variables = list(schema.names)
    report.alignment = "vector (joined by geometry)"
    missing = [c for c in d.variables if c not in schema.names]
    if missing:
        report.problem(
            f"lacks column(s) {missing} (has {schema.names})",
            f"write the columns the catalog expects: {list(d.variables)}",
        )
    for col in d.variables:
        if col in schema.names:
            report.dtypes[col] = str(schema.field(col).type)
    path = report.uri[len("s3://") :] if report.uri.startswith("s3://") else report.uri
    fs = catalog.storage.filesystem() if catalog.storage.is_s3 else None
    meta = pq.ParquetFile(path, filesystem=fs).metadata
    report.rows = int(meta.num_rows)
    report.chunks = {"row_groups": [int(meta.num_row_groups)]}
    if report.name == BUILDINGS and report.rows < MIN_BUILDING_ROWS:
        report.problem(
            f"holds {report.rows} buildings",
            "rebuild the tagged buildings (Overture footprints joined to census blocks)",
        )
