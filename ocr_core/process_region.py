"""Phase 01 work for one region: read inputs, compute risk, commit it, sample it at buildings.

``run_region_risk`` and ``run_region_buildings`` are the task functions the region assets
submit to Dask (locally or on Coiled): plain arguments in, small frozen records out
(``ocr_core.region_results``), outputs written by the task itself.
"""

from __future__ import annotations

import logging
import resource
import time

import numpy as np

from ocr_core import faults
from ocr_core.catalog import InputCatalog, grid_offsets, read_error, spec
from ocr_core.errors import InputDataError
from ocr_core.geoparquet import to_geoparquet
from ocr_core.grid import Grid, get_grid
from ocr_core.memory import PeakRSS
from ocr_core.region_results import (
    RegionBuildings,
    RegionRisk,
    column_ranges,
    preview_png,
    raster_ranges,
)
from ocr_core.risk import RegionInputs, region_outputs, region_wind_bp
from ocr_core.schema import (
    BUILDINGS,
    HISTOGRAMS,
    OUTPUT_VARIABLES,
    RILEY_30M,
    RILEY_270M,
    SCENARIO_YEARS,
    SCOTT_2024,
    WIND_DISTRIBUTION,
    WIND_VARIABLE,
    risk_score_histogram,
)
from ocr_core.storage import Storage
from ocr_core.validation import (
    check_buildings,
    validate_hazard_inputs,
    validate_pass_through,
    wind_layout_error,
)

log = logging.getLogger(__name__)


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
    for scenario in SCENARIO_YEARS:
        name = RILEY_270M[scenario]
        ds = catalog.open_zarr(name)
        xs, ys = ds["x"].values.astype(np.float64), ds["y"].values.astype(np.float64)
        crs = spec(name).crs
        where = ds["spatial_ref"].attrs.get("crs_wkt") if "spatial_ref" in ds.coords else None
        i0, i1, j0, j1 = source_window(xs, ys, where or crs, bbox)
        if i1 - i0 < 1 or j1 - j0 < 1:
            raise InputDataError(
                f"input dataset {name!r} does not cover the region's buffered area"
            )
        grid270 = (xs[j0:j1], ys[i0:i1], _store_chunks(ds["BP"], (i0, i1, j0, j1)), crs)
        if first is None:
            first = grid270
        elif not all(np.array_equal(a, b) for a, b in zip(first[:2], grid270[:2], strict=True)):
            raise InputDataError(f"{name} is not on the same 270 m grid as the 2011 run")
        bp[scenario] = np.asarray(ds["BP"][i0:i1, j0:j1].values, dtype=np.float32)
    assert first is not None
    return bp, first[0], first[1], first[3], first[2]


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
    wind_ds = catalog.open_zarr(WIND_DISTRIBUTION)
    grid_offsets(
        spec(WIND_DISTRIBUTION), wind_ds, grid
    )  # on the grid's pixels, else InputDataError
    bi0, bi1, bj0, bj1 = _label_window(
        wind_ds, WIND_DISTRIBUTION, (lat_min - buf, lon_min - buf), (lat_max + buf, lon_max + buf)
    )
    ri0, ri1, rj0, rj1 = _label_window(
        wind_ds, WIND_DISTRIBUTION, (lat_min, lon_min), (lat_max, lon_max)
    )
    inner = (ri0 - bi0, ri1 - bi0, rj0 - bj0, rj1 - bj0)
    wind_var = wind_ds[WIND_VARIABLE]
    if (layout := wind_layout_error(wind_var)) is not None:
        raise InputDataError(f"{WIND_DISTRIBUTION}: {layout}")
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

    crps, rps = region_arrays(SCOTT_2024, "CRPS", "RPS")
    riley30 = {s: region_arrays(RILEY_30M[s], "BP")[0] for s in SCENARIO_YEARS}
    return {"crps": crps, "rps": rps, "riley30": riley30}


def run_region_risk(
    region_id: str, grid_name: str, catalog: InputCatalog, storage: Storage
) -> RegionRisk:
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
    rows, cols = arrays["rps_2011"].shape
    return RegionRisk(
        region_id=region_id,
        snapshot_id=snapshot,
        repository=storage.icechunk_uri,
        shape=(rows, cols),
        bounds=grid.region_bounds(region_id),
        value_ranges=raster_ranges(arrays),
        read_seconds=round(t1 - t0 + t3 - t2, 3),
        kernel_seconds=round(t2 - t1, 3),
        write_seconds=round(t4 - t3, 3),
        kernel_peak_mb=round(mem.peak_bytes / 2**20, 1),
        kernel_added_mb=round(mem.delta_bytes / 2**20, 1),
        process_max_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        preview_png=png,
        preview_scale_top=top,
        checks=audited,
    )


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
) -> RegionBuildings:
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
        assert written is not None  # the staged file was just written
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
    return RegionBuildings(
        region_id=region_id,
        path=uri,
        buildings_in_region=len(buildings),
        building_count=len(frame),
        dropped_nan_count=dropped,
        bytes=size,
        value_ranges=column_ranges(frame, OUTPUT_VARIABLES),
        risk_score_histograms={
            v: risk_score_histogram(frame[v].to_numpy()) for v in HISTOGRAMS.values()
        },
        checks=audited,
    )
