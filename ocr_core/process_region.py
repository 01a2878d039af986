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

from ocr_core.catalog import InputCatalog, InputDataError, grid_offsets, read_error, spec
from ocr_core.geoparquet import write_geoparquet
from ocr_core.grid import Grid, get_grid
from ocr_core.memory import PeakRSS
from ocr_core.risk import OUTPUT_VARIABLES, SCENARIOS, RegionInputs, compute_region_risk
from ocr_core.storage import Storage
from ocr_core.validation import check_buildings, validate_region_inputs

log = logging.getLogger(__name__)

SCOTT = "scott-et-al-2024-30m-4326"
WIND = "conus404-ffwi-p99-wind-direction-distribution-30m-4326"
RILEY_270 = "riley-et-al-2025-{}-270m-5070"
RILEY_30 = "riley-et-al-2025-{}-30m-4326"
BUILDINGS = "conus-overture-region-id-tagged-buildings"
RILEY_270_MARGIN_PX = 3  # 270 m pixels kept around the footprint: gap-fill needs 1, rounding 1


def _window(ds, name: str, grid: Grid, window: tuple[int, int, int, int], clip: bool):
    """Array index window of ``ds`` for a grid pixel window (optionally clipped to ``ds``)."""
    row0, col0 = grid_offsets(spec(name), ds, grid)
    r0, r1, c0, c1 = window
    n_lat, n_lon = ds.sizes["latitude"], ds.sizes["longitude"]
    i0, i1, j0, j1 = r0 - row0, r1 - row0, c0 - col0, c1 - col0
    if clip:
        i0, i1, j0, j1 = max(i0, 0), min(i1, n_lat), max(j0, 0), min(j1, n_lon)
    if i0 < 0 or j0 < 0 or i1 > n_lat or j1 > n_lon or i1 <= i0 or j1 <= j0:
        raise InputDataError(
            f"input dataset {name!r} does not cover the requested window of the {grid.name} grid "
            f"(rows {r0}:{r1}, cols {c0}:{c1}); it covers rows {row0}:{row0 + n_lat}, "
            f"cols {col0}:{col0 + n_lon}"
        )
    return i0, i1, j0, j1


def _projected_window(ds, lat: np.ndarray, lon: np.ndarray, crs: str, name: str):
    """Index window of a projected (y, x) dataset covering a lat/lon box, plus a margin."""
    from pyproj import Transformer

    t = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    edge_lon = np.concatenate([lon, lon, np.full(lat.size, lon[0]), np.full(lat.size, lon[-1])])
    edge_lat = np.concatenate([np.full(lon.size, lat[0]), np.full(lon.size, lat[-1]), lat, lat])
    x, y = t.transform(edge_lon, edge_lat)
    xs, ys = ds["x"].values, ds["y"].values
    dx, dy = xs[1] - xs[0], ys[1] - ys[0]
    cols = (np.array([x.min(), x.max()]) - xs[0]) / dx
    rows = (np.array([y.min(), y.max()]) - ys[0]) / dy
    m = RILEY_270_MARGIN_PX
    j0, j1 = int(np.floor(cols.min())) - m, int(np.ceil(cols.max())) + m + 1
    i0, i1 = int(np.floor(rows.min())) - m, int(np.ceil(rows.max())) + m + 1
    if i1 <= 0 or j1 <= 0 or i0 >= ys.size or j0 >= xs.size:
        raise InputDataError(f"input dataset {name!r} does not cover the region's buffered area")
    return max(i0, 0), min(i1, ys.size), max(j0, 0), min(j1, xs.size)


def load_region_inputs(catalog: InputCatalog, grid: Grid, region_id: str) -> RegionInputs:
    """Cut every input of one region (with the grid's buffer) out of the catalog's stores."""
    grid.validate_region_id(region_id)
    region = grid.pixel_window(region_id)
    wind_ds = catalog.open_zarr(WIND)
    bi0, bi1, bj0, bj1 = _window(wind_ds, WIND, grid, grid.buffered_window(region_id), clip=True)
    wind_var = wind_ds["wind_direction_distribution"]
    if wind_var.dims != ("latitude", "longitude", "wind_direction") or wind_var.shape[-1] != 8:
        raise InputDataError(
            f"{WIND}: wind_direction_distribution must have dims (latitude, longitude, "
            f"wind_direction=8), found {dict(zip(wind_var.dims, wind_var.shape, strict=True))}"
        )
    wind = np.asarray(wind_var[bi0:bi1, bj0:bj1, :].values, dtype=np.float32)
    lat = wind_ds["latitude"].values[bi0:bi1].astype(np.float64)
    lon = wind_ds["longitude"].values[bj0:bj1].astype(np.float64)
    # region position inside the buffered arrays
    row0, col0 = grid_offsets(spec(WIND), wind_ds, grid)
    r0, r1, c0, c1 = region
    inner = (r0 - row0 - bi0, r1 - row0 - bi0, c0 - col0 - bj0, c1 - col0 - bj0)

    def region_arrays(name: str, *variables: str) -> list[np.ndarray]:
        ds = catalog.open_zarr(name)
        i0, i1, j0, j1 = _window(ds, name, grid, region, clip=False)
        return [np.asarray(ds[v][i0:i1, j0:j1].values, dtype=np.float32) for v in variables]

    crps, rps = region_arrays(SCOTT, "CRPS", "RPS")
    riley30 = {s: region_arrays(RILEY_30.format(s), "BP")[0] for s in SCENARIOS}

    bp270 = {}
    crs270 = spec(RILEY_270.format(SCENARIOS[0])).crs
    window270 = x270 = y270 = None
    for scenario in SCENARIOS:
        name = RILEY_270.format(scenario)
        ds = catalog.open_zarr(name)
        if window270 is None:
            window270 = _projected_window(ds, lat, lon, crs270, name)
        i0, i1, j0, j1 = window270
        xs = ds["x"].values[j0:j1].astype(np.float64)
        ys = ds["y"].values[i0:i1].astype(np.float64)
        if x270 is None:
            x270, y270 = xs, ys
        elif not (np.array_equal(xs, x270) and np.array_equal(ys, y270)):
            raise InputDataError(f"{name} is not on the same 270 m grid as the 2011 run")
        bp270[scenario] = np.asarray(ds["BP"][i0:i1, j0:j1].values, dtype=np.float32)
    return RegionInputs(
        lat=lat,
        lon=lon,
        region=inner,
        wind=wind,
        bp270=bp270,
        x270=x270,
        y270=y270,
        crs270=crs270,
        crps=crps,
        rps=rps,
        riley30=riley30,
        pixel_size=grid.pixel_size,
    )


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


def preview_png(values: np.ndarray, max_side: int = 240) -> bytes:
    """A small north-up PNG of a risk layer (NaN transparent), for the Dagster UI."""
    from PIL import Image

    step = max(1, int(np.ceil(max(values.shape) / max_side)))
    a = values[::step, ::step][::-1]  # latitude ascends: flip so north is up
    finite = np.isfinite(a)
    top = float(np.nanpercentile(a, 99)) if finite.any() else 1.0
    t = np.clip(np.where(finite, a, 0) / (top or 1.0), 0, 1)
    anchors = np.array([[255, 255, 204], [254, 178, 76], [240, 59, 32], [128, 0, 38]], float)
    pos = np.linspace(0, 1, len(anchors))
    rgb = np.stack([np.interp(t, pos, anchors[:, k]) for k in range(3)], axis=-1)
    rgba = np.dstack([rgb, np.where(finite, 255, 0)]).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def run_region_risk(
    region_id: str, grid_name: str, catalog: InputCatalog, storage: Storage
) -> dict:
    """Compute one region's risk and commit it to the icechunk repository."""
    from ocr_core import raster_store

    grid = get_grid(grid_name)
    grid.validate_region_id(region_id)
    t0 = time.perf_counter()
    inputs = load_region_inputs(catalog, grid, region_id)
    validate_region_inputs(inputs)
    t1 = time.perf_counter()
    with PeakRSS() as mem:
        arrays = compute_region_risk(inputs)
    t2 = time.perf_counter()
    del inputs
    snapshot = raster_store.write_region(storage, grid, region_id, arrays, logger=log)
    t3 = time.perf_counter()
    return {
        "region_id": region_id,
        "snapshot_id": snapshot,
        "repository": storage.icechunk_uri,
        "shape": list(arrays["rps_2011"].shape),
        "bounds": list(grid.region_bounds(region_id)),
        "value_ranges": value_ranges(arrays),
        "read_seconds": round(t1 - t0, 3),
        "kernel_seconds": round(t2 - t1, 3),
        "write_seconds": round(t3 - t2, 3),
        "kernel_peak_mb": round(mem.peak_bytes / 2**20, 1),
        "kernel_added_mb": round(mem.delta_bytes / 2**20, 1),
        "process_max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "preview_png_b64": base64.b64encode(preview_png(arrays["rps_2011"])).decode(),
    }


def select_region_buildings(catalog: InputCatalog, grid: Grid, region_id: str):
    """The tagged buildings whose bbox lower-left corner lies in the region's pixel area.

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
        table = dataset.to_table(
            columns=["block_geoid", "state_abbrev", "county_name", "geometry"],
            filter=(xmin >= lon_min) & (xmin < lon_max) & (ymin >= lat_min) & (ymin < lat_max),
        )
    except InputDataError:
        raise
    except Exception as exc:
        error = read_error(BUILDINGS, uri, exc)
        if error is None:
            raise
        raise error from exc
    geometry = shapely.from_wkb(table.column("geometry").to_numpy(zero_copy_only=False))
    return gpd.GeoDataFrame(
        {
            "GEOID": table.column("block_geoid").to_pandas(),
            "state": table.column("state_abbrev").to_pandas(),
            "county": table.column("county_name").to_pandas(),
        },
        geometry=geometry,
        crs="EPSG:4326",
    )


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
    region_id: str, grid_name: str, catalog: InputCatalog, storage: Storage
) -> dict:
    """Sample the committed risk raster at the region's buildings and write its GeoParquet."""
    from ocr_core import raster_store

    grid = get_grid(grid_name)
    grid.validate_region_id(region_id)
    arrays = raster_store.read_region(storage, grid, region_id)
    buildings = select_region_buildings(catalog, grid, region_id)
    frame, dropped = sample_region(buildings, arrays, grid, region_id)
    uri = storage.region_geoparquet_uri(region_id)
    size = write_geoparquet(frame, storage, uri)
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
    }
