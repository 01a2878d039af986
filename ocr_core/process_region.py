"""Phase 01 work for one region: read inputs, compute risk, commit it, sample it at buildings.

``run_region_risk`` and ``run_region_buildings`` are the task functions the region assets
submit to Dask (locally or on Coiled): plain arguments in, small JSON-able summaries out,
outputs written by the task itself.
"""

from __future__ import annotations

import base64
import io
import logging
import resource
import time

import numpy as np

from ocr_core import faults
from ocr_core.catalog import InputCatalog, InputDataError, grid_offsets, read_error, spec
from ocr_core.geoparquet import to_geoparquet
from ocr_core.grid import Grid, get_grid
from ocr_core.memory import PeakRSS
from ocr_core.risk import RegionInputs, region_outputs, region_wind_bp
from ocr_core.schema import OUTPUT_VARIABLES, risk_score_histogram
from ocr_core.schema import SCENARIO_YEARS as SCENARIOS
from ocr_core.storage import Storage
from ocr_core.validation import check_buildings, validate_hazard_inputs, validate_pass_through

log = logging.getLogger(__name__)

SCOTT = "scott-et-al-2024-30m-4326"
WIND = "conus404-ffwi-p99-wind-direction-distribution-30m-4326"
RILEY_270 = "riley-et-al-2025-{}-270m-5070"
RILEY_30 = "riley-et-al-2025-{}-30m-4326"
BUILDINGS = "conus-overture-region-id-tagged-buildings"


def _window(ds, name: str, grid: Grid, window: tuple[int, int, int, int]):
    """Array index window of ``ds`` for a grid pixel window; error unless ``ds`` covers it."""
    row0, col0 = grid_offsets(spec(name), ds, grid)
    r0, r1, c0, c1 = window
    n_lat, n_lon = ds.sizes["latitude"], ds.sizes["longitude"]
    i0, i1, j0, j1 = r0 - row0, r1 - row0, c0 - col0, c1 - col0
    if i0 < 0 or j0 < 0 or i1 > n_lat or j1 > n_lon or i1 <= i0 or j1 <= j0:
        raise InputDataError(
            f"input dataset {name!r} does not cover the requested window of the {grid.name} grid "
            f"(rows {r0}:{r1}, cols {c0}:{c1}); it covers rows {row0}:{row0 + n_lat}, "
            f"cols {col0}:{col0 + n_lon}"
        )
    return i0, i1, j0, j1


def _label_window(ds, name: str, lo: tuple[float, float], hi: tuple[float, float]):
    """(i0, i1, j0, j1) of the pixel centres within [lo, hi] (lat, lon), as ``.sel`` selects."""
    from ocr_core.reproject import label_window

    i0, i1 = label_window(ds["latitude"].values, lo[0], hi[0])
    j0, j1 = label_window(ds["longitude"].values, lo[1], hi[1])
    if i1 <= i0 or j1 <= j0:
        raise InputDataError(
            f"input dataset {name!r} has no pixel in latitude [{lo[0]:.6f}, {hi[0]:.6f}], "
            f"longitude [{lo[1]:.6f}, {hi[1]:.6f}]: it does not cover the region"
        )
    return i0, i1, j0, j1


def _store_chunks(var, window: tuple[int, int, int, int]):
    """Dask chunks of ``var[window]`` when the store is opened with its own chunking."""
    from ocr_core.reproject import window_chunks

    i0, i1, j0, j1 = window
    chunk = var.encoding.get("chunks") or var.shape
    return window_chunks(i0, i1, chunk[0]), window_chunks(j0, j1, chunk[1])


def _riley_270(catalog: InputCatalog, bbox: tuple[float, float, float, float]):
    """Both scenarios' 270 m BP windows as the reference selects them, their coordinates,
    CRS and dask chunks (the two runs must share one grid)."""
    from ocr_core.reproject import source_window

    bp, first = {}, None
    for scenario in SCENARIOS:
        name = RILEY_270.format(scenario)
        ds = catalog.open_zarr(name)
        xs, ys = ds["x"].values.astype(np.float64), ds["y"].values.astype(np.float64)
        crs = spec(name).crs
        where = ds["spatial_ref"].attrs.get("crs_wkt") if "spatial_ref" in ds.coords else None
        i0, i1, j0, j1 = source_window(xs, ys, where or crs, bbox)
        if i1 - i0 < 1 or j1 - j0 < 1:
            raise InputDataError(
                f"input dataset {name!r} does not cover the region's buffered area"
            )
        grid270 = (xs[j0:j1], ys[i0:i1], _store_chunks(ds["BP"], (i0, i1, j0, j1)))
        if first is None:
            first = grid270
        elif not all(np.array_equal(a, b) for a, b in zip(first[:2], grid270[:2], strict=True)):
            raise InputDataError(f"{name} is not on the same 270 m grid as the 2011 run")
        bp[scenario] = np.asarray(ds["BP"][i0:i1, j0:j1].values, dtype=np.float32)
    assert first is not None
    return bp, first[0], first[1], crs, first[2]


def load_region_inputs(
    catalog: InputCatalog, grid: Grid, region_id: str, pass_through: bool = True
) -> RegionInputs:
    """Cut the inputs of one region out of the catalog's stores, windows as the reference's.

    The buffered 30 m window holds the pixel centres within the region's edges ± the buffer
    (label selection, as the reference: 487 px on the CONUS grid); wind fractions are read for
    the region grown by the smoothing radius only, all the fast path uses of them. With
    ``pass_through=False`` the region's CRPS, RPS and 30 m Riley BP are left out (see
    ``load_pass_through``).
    """
    from ocr_core.risk import smoothing_window

    grid.validate_region_id(region_id)
    lon_min, lat_min, lon_max, lat_max = grid.region_bounds(region_id)
    buf = grid.buffer_deg
    wind_ds = catalog.open_zarr(WIND)
    grid_offsets(spec(WIND), wind_ds, grid)  # on the grid's pixels, else InputDataError
    bi0, bi1, bj0, bj1 = _label_window(
        wind_ds, WIND, (lat_min - buf, lon_min - buf), (lat_max + buf, lon_max + buf)
    )
    ri0, ri1, rj0, rj1 = _label_window(wind_ds, WIND, (lat_min, lon_min), (lat_max, lon_max))
    inner = (ri0 - bi0, ri1 - bi0, rj0 - bj0, rj1 - bj0)
    wind_var = wind_ds["wind_direction_distribution"]
    if wind_var.dims != ("latitude", "longitude", "wind_direction") or wind_var.shape[-1] != 8:
        raise InputDataError(
            f"{WIND}: wind_direction_distribution must have dims (latitude, longitude, "
            f"wind_direction=8), found {dict(zip(wind_var.dims, wind_var.shape, strict=True))}"
        )
    lat = wind_ds["latitude"].values[bi0:bi1].astype(np.float64)
    lon = wind_ds["longitude"].values[bj0:bj1].astype(np.float64)
    wind_window = smoothing_window(inner, (lat.size, lon.size), grid.pixel_size)
    w0, w1, wc0, wc1 = wind_window
    wind = np.asarray(
        wind_var[bi0 + w0 : bi0 + w1, bj0 + wc0 : bj0 + wc1, :].values, dtype=np.float32
    )
    bbox = (lon_min - buf, lat_min - buf, lon_max + buf, lat_max + buf)
    bp270, x270, y270, crs270, chunks270 = _riley_270(catalog, bbox)
    return RegionInputs(
        lat=lat,
        lon=lon,
        region=inner,
        wind=wind,
        bp270=bp270,
        x270=x270,
        y270=y270,
        crs270=crs270,
        pixel_size=grid.pixel_size,
        chunks270=chunks270,
        wind_window=wind_window,
        **(load_pass_through(catalog, grid, region_id) if pass_through else {}),
    )


def load_pass_through(catalog: InputCatalog, grid: Grid, region_id: str) -> dict:
    """The region's pass-through variables: Scott CRPS and RPS, the 30 m Riley BP."""
    region = grid.pixel_window(region_id)

    def region_arrays(name: str, *variables: str) -> list[np.ndarray]:
        ds = catalog.open_zarr(name)
        i0, i1, j0, j1 = _window(ds, name, grid, region)
        return [np.asarray(ds[v][i0:i1, j0:j1].values, dtype=np.float32) for v in variables]

    crps, rps = region_arrays(SCOTT, "CRPS", "RPS")
    riley30 = {s: region_arrays(RILEY_30.format(s), "BP")[0] for s in SCENARIOS}
    return {"crps": crps, "rps": rps, "riley30": riley30}


def value_ranges(arrays: dict[str, np.ndarray]) -> dict[str, dict]:
    out = {}
    for name, a in arrays.items():
        finite = a[np.isfinite(a)]
        out[name] = {
            "min": float(finite.min()) if finite.size else None,
            "max": float(finite.max()) if finite.size else None,
            "nan_fraction": round(float(1 - finite.size / a.size), 6) if a.size else 0.0,
        }
    return out


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


def run_region_risk(
    region_id: str, grid_name: str, catalog: InputCatalog, storage: Storage
) -> dict:
    """Compute one region's risk and commit it to the icechunk repository."""
    from ocr_core import raster_store

    grid = get_grid(grid_name)
    grid.validate_region_id(region_id)
    t0 = time.perf_counter()
    inputs = load_region_inputs(catalog, grid, region_id, pass_through=False)
    validate_hazard_inputs(inputs)
    t1 = time.perf_counter()
    with PeakRSS() as mem:
        bp = region_wind_bp(inputs)
        del inputs  # the hazard inputs never share memory with the pass-through variables
        t2 = time.perf_counter()
        layers = load_pass_through(catalog, grid, region_id)
        r0, r1, c0, c1 = grid.pixel_window(region_id)
        validate_pass_through(layers, grid.lat_centers(r0, r1), grid.lon_centers(c0, c1))
        arrays = region_outputs(bp, **layers)
    faults.corrupt_outputs(region_id, arrays)
    t3 = time.perf_counter()
    snapshot, audited = raster_store.write_region(storage, grid, region_id, arrays, logger=log)
    t4 = time.perf_counter()
    png, top = preview_png(arrays["rps_2011"])
    return {
        "region_id": region_id,
        "snapshot_id": snapshot,
        "repository": storage.icechunk_uri,
        "shape": list(arrays["rps_2011"].shape),
        "bounds": list(grid.region_bounds(region_id)),
        "value_ranges": value_ranges(arrays),
        "read_seconds": round(t1 - t0 + t3 - t2, 3),
        "kernel_seconds": round(t2 - t1, 3),
        "write_seconds": round(t4 - t3, 3),
        "kernel_peak_mb": round(mem.peak_bytes / 2**20, 1),
        "kernel_added_mb": round(mem.delta_bytes / 2**20, 1),
        "process_max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "preview_png_b64": base64.b64encode(png).decode(),
        "preview_scale_top": top,
        "checks": audited,
    }


def select_region_buildings(catalog: InputCatalog, grid: Grid, region_id: str):
    """The tagged buildings whose bbox lower-left corner lies in the region's pixel area, and
    how many rows the input holds there (counted apart, for the write's reconciliation).

    West/south edges are inclusive and east/north edges exclusive, with edges computed from
    integer pixel indices, so neighbouring regions share exact edge values: every building
    lands in exactly one region and no seam strip is lost.
    """
    import geopandas as gpd
    import pyarrow.compute as pc
    import pyarrow.dataset as pads
    import shapely

    uri = catalog.geoparquet_uri(BUILDINGS)
    lon_min, lat_min, lon_max, lat_max = grid.region_bounds(region_id)
    fs = catalog.storage.filesystem()
    path = uri[len("s3://") :] if uri.startswith("s3://") else uri
    try:
        dataset = pads.dataset(path, filesystem=fs, format="parquet")
        check_buildings(BUILDINGS, dataset.schema, dataset.count_rows(), uri)
        xmin, ymin = pc.field("bbox", "xmin"), pc.field("bbox", "ymin")
        in_region = (xmin >= lon_min) & (xmin < lon_max) & (ymin >= lat_min) & (ymin < lat_max)
        table = dataset.to_table(
            columns=["block_geoid", "state_abbrev", "county_name", "geometry"], filter=in_region
        )
        counted = dataset.count_rows(filter=in_region)
    except InputDataError:
        raise
    except Exception as exc:
        error = read_error(BUILDINGS, uri, exc)
        if error is None:
            raise
        raise error from exc
    geometry = shapely.from_wkb(table.column("geometry").to_numpy(zero_copy_only=False))
    frame = gpd.GeoDataFrame(
        {
            "GEOID": table.column("block_geoid").to_pandas(),
            "state": table.column("state_abbrev").to_pandas(),
            "county": table.column("county_name").to_pandas(),
        },
        geometry=geometry,
        crs="EPSG:4326",
    )
    return frame, counted


def sample_region(buildings, arrays: dict[str, np.ndarray], grid: Grid, region_id: str):
    """Value of the nearest region pixel to each footprint centroid; rows with NaN dropped.

    Returns (GeoDataFrame in the reference's column order, number of rows dropped).
    """
    import geopandas as gpd
    import shapely

    r0, r1, c0, c1 = grid.pixel_window(region_id)
    lon_min, lat_min, _, _ = grid.region_bounds(region_id)
    cx, cy = shapely.get_coordinates(shapely.centroid(buildings.geometry.values)).T
    col = np.clip(np.floor((cx - lon_min) / grid.pixel_size).astype(np.int64), 0, c1 - c0 - 1)
    row = np.clip(np.floor((cy - lat_min) / grid.pixel_size).astype(np.int64), 0, r1 - r0 - 1)
    columns = {var: arrays[var][row, col].astype(np.float32) for var in OUTPUT_VARIABLES}
    frame = gpd.GeoDataFrame(
        {
            **columns,
            "GEOID": buildings["GEOID"].values,
            "state": buildings["state"].values,
            "county": buildings["county"].values,
        },
        geometry=buildings.geometry.values,
        crs="EPSG:4326",
    )
    keep = np.ones(len(frame), dtype=bool)
    for var in OUTPUT_VARIABLES:
        keep &= np.isfinite(columns[var])
    return frame.loc[keep].reset_index(drop=True), int((~keep).sum())


def run_region_buildings(
    region_id: str,
    grid_name: str,
    catalog: InputCatalog,
    storage: Storage,
    accept_shrink: bool = False,
) -> dict:
    """Sample the committed risk raster at the region's buildings; write the region's
    GeoParquet, check it and only then publish it (``checks.AuditError`` otherwise).

    Checks: values in the schema ranges; rows written + rows dropped for NaN = the input's
    buildings in the region; no fall below half the published file's count unless
    ``accept_shrink``.
    """
    from ocr_core import checks, raster_store
    from ocr_core.publish import stage

    grid = get_grid(grid_name)
    grid.validate_region_id(region_id)
    arrays = raster_store.read_region(storage, grid, region_id)
    buildings, in_input = select_region_buildings(catalog, grid, region_id)
    frame, dropped = sample_region(buildings, arrays, grid, region_id)
    uri = storage.region_geoparquet_uri(region_id)
    with stage(storage) as st:
        path = st.file(uri, suffix=".parquet")
        to_geoparquet(frame, path)
        size = path.stat().st_size
        written = checks.parquet_rows(storage, str(path))
        audited = checks.audit(
            {
                "region_value_ranges": checks.building_value_ranges(storage, path=str(path)),
                "region_buildings_reconcile": checks.buildings_reconcile(
                    written, dropped, in_input
                ),
                "region_not_collapsed": checks.shrink_guard(
                    checks.parquet_rows(storage, uri),
                    written,
                    accept_shrink,
                    f"region {region_id}",
                ),
            }
        )
        st.publish()
    return {
        "region_id": region_id,
        "path": uri,
        "buildings_in_region": len(buildings),
        "building_count": len(frame),
        "dropped_nan_count": dropped,
        "bytes": size,
        "value_ranges": {
            v: {"min": float(frame[v].min()), "max": float(frame[v].max())} if len(frame) else {}
            for v in OUTPUT_VARIABLES
        },
        "risk_score_histograms": {
            v: risk_score_histogram(frame[v].to_numpy()) for v in ("rps_2011", "rps_2047")
        },
        "checks": audited,
    }
