"""The input catalog: the reference's dataset names, stores, variables and CRSs.

A deployment points ``InputCatalog.root`` at the real stores (``s3://carbonplan-ocr``); the demo
points it at the generated ones under the storage root. Opening a dataset checks that it exists
and has the expected variables, CRS and grid, so bad inputs fail before any output is written.
"""

from __future__ import annotations

from dataclasses import dataclass

from ocr_core.errors import TransientInputError, is_transient, summary
from ocr_core.grid import Grid
from ocr_core.schema import (
    BUILDINGS,
    GEOGRAPHIES,
    RILEY_30M,
    RILEY_270M,
    SCOTT_2024,
    WIND_DIRECTIONS,
    WIND_DISTRIBUTION,
    WIND_VARIABLE,
)
from ocr_core.storage import Storage


class InputDataError(ValueError):
    """An input dataset is missing or malformed; the message names it and the fix."""


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    prefix: str  # relative to the catalog root
    data_format: str  # "zarr" (icechunk repository) or "geoparquet"
    variables: tuple[str, ...]
    crs: str
    description: str
    on_processing_grid: bool = False  # 30 m EPSG:4326 arrays aligned to the region grid


TENSOR = "input/fire-risk/tensor"
VECTOR = "input/fire-risk/vector"

# Each census level's columns, in the files' order.
CENSUS_COLUMNS = {
    "blocks": ("GEOID", "geometry"),
    "tracts": ("GEOID", "geometry"),
    "counties": ("NAME", "GEOID", "geometry"),
    "states": ("GEOID", "STUSPS", "NAME", "geometry"),
    "nation": ("GEOID", "NAME", "geometry"),
}
RILEY = f"{TENSOR}/USFS/riley-et-al-2025"

DATASETS: dict[str, DatasetSpec] = {
    d.name: d
    for d in (
        DatasetSpec(
            SCOTT_2024,
            f"{TENSOR}/USFS/scott-et-al-2024/processed-30m-4326.icechunk",
            "zarr",
            ("BP", "CRPS", "RPS"),
            "EPSG:4326",
            "Scott et al. 2024, Wildfire Risk to Communities: burn probability, conditional "
            "risk to potential structures (%), risk to potential structures (%)",
            on_processing_grid=True,
        ),
        *(
            DatasetSpec(
                name,
                f"{RILEY}/{year}-climate-run-270m-5070.icechunk",
                "zarr",
                ("BP",),
                "EPSG:5070",
                f"Riley et al. 2025 climate run ~{year}: annual burn probability, 270 m CONUS "
                "Albers",
            )
            for year, name in RILEY_270M.items()
        ),
        *(
            DatasetSpec(
                name,
                f"{RILEY}/{year}-climate-run-30m-4326.icechunk",
                "zarr",
                ("BP",),
                "EPSG:4326",
                f"Riley et al. 2025 climate run ~{year} on the 30 m grid (reference variable)",
                on_processing_grid=True,
            )
            for year, name in RILEY_30M.items()
        ),
        DatasetSpec(
            WIND_DISTRIBUTION,
            f"{TENSOR}/conus404-ffwi/"
            "fosberg-fire-weather-index-p99-wind-direction-distribution-30m-4326.icechunk",
            "zarr",
            (WIND_VARIABLE,),
            "EPSG:4326",
            "Share of fire-weather hours (FFWI above its 99th percentile) by wind direction "
            f"({', '.join(WIND_DIRECTIONS)}), from CONUS404",
            on_processing_grid=True,
        ),
        DatasetSpec(
            BUILDINGS,
            f"{VECTOR}/overture-maps/CONUS-overture-region-tagged-buildings-2025-09-24.0.parquet",
            "geoparquet",
            ("block_geoid", "state_abbrev", "county_name", "bbox", "geometry"),
            "EPSG:4326",
            "Overture building footprints tagged with census block GEOID, state and county",
        ),
        *(
            DatasetSpec(
                g.census_dataset,
                f"{VECTOR}/census-tiger/{g.level}/{g.level}.parquet",
                "geoparquet",
                CENSUS_COLUMNS[g.level],
                "EPSG:4269",
                f"Census {g.level} polygons (GeoParquet 1.1, NAD83)",
            )
            for g in GEOGRAPHIES
        ),
    )
}


@dataclass(frozen=True)
class InputCatalog:
    """The catalog rooted at ``storage.root`` (a local folder or s3:// bucket)."""

    storage: Storage

    def uri(self, name: str) -> str:
        return self.storage.join(spec(name).prefix)

    def open_zarr(self, name: str, check: bool = True):
        """Open a zarr dataset lazily (icechunk first, plain zarr as fallback) and check it.

        ``check=False`` returns the store as it is, for reports that list every problem.
        """
        import xarray as xr

        d = spec(name)
        uri = self.uri(name)
        try:
            import icechunk

            repo = icechunk.Repository.open(self.storage.icechunk_storage(uri))
            store = repo.readonly_session("main").store
            ds = xr.open_zarr(store, consolidated=False, chunks=None)  # pyright: ignore[reportArgumentType]
        except Exception as exc:
            if is_transient(exc):
                raise TransientInputError(
                    f"input dataset {name!r} at {uri} could not be opened ({summary(exc)}): "
                    "a timeout, throttling or dropped connection; the step is retried"
                ) from exc
            raise InputDataError(
                f"input dataset {name!r} could not be opened at {uri} "
                f"({summary(exc)}). Fix: generate the demo inputs "
                "(materialize the 'demo_inputs' assets, or run `./dev demo`) or point "
                "OCR_INPUT_ROOT at the real input stores."
            ) from exc
        if check:
            check_dataset(d, ds, uri)
        return ds

    def existing_uri(self, name: str) -> str:
        """URI of a file dataset, checked to exist and to be non-empty."""
        uri = self.uri(name)
        try:
            fs, path = self.storage.filesystem(), self.storage.fs_path(uri)
            exists = fs.exists(path)
            size = fs.size(path) if exists and fs.isfile(path) else None
        except Exception as exc:
            error = read_error(name, uri, exc)
            if error is None:
                raise
            raise error from exc
        if not exists:
            raise InputDataError(
                f"input dataset {name!r} is missing: no file at {uri}. Fix: generate the demo "
                "inputs (`./dev demo`) or point OCR_INPUT_ROOT at the real input stores."
            )
        if size == 0:
            raise InputDataError(
                f"input dataset {name!r} at {uri} is an empty file (0 bytes): the copy was cut "
                "short. Fix: copy the file again from its source or regenerate the demo inputs."
            )
        return uri

    def geoparquet_uri(self, name: str) -> str:
        """URI of a GeoParquet dataset, after checking it exists and carries the expected CRS."""
        uri = self.existing_uri(name)
        store_crs(spec(name), self.parquet_schema(name), uri)
        return uri

    def crs(self, name: str, ds=None) -> tuple[str, str]:
        """(CRS as 'EPSG:nnnn', where it was found) of a dataset; InputDataError unless it is
        the catalog's. ``ds`` is an already opened zarr dataset (else it is opened)."""
        d = spec(name)
        if d.data_format == "geoparquet":
            return store_crs(d, self.parquet_schema(name), self.uri(name))
        return store_crs(d, self.open_zarr(name, check=False) if ds is None else ds, self.uri(name))

    def parquet_schema(self, name: str):
        """The pyarrow schema (with the GeoParquet 'geo' metadata) of a GeoParquet dataset."""
        import pyarrow.parquet as pq

        uri = self.uri(name)
        path = uri[len("s3://") :] if uri.startswith("s3://") else uri
        fs = self.storage.filesystem() if self.storage.is_s3 else None
        try:
            return pq.read_schema(path, filesystem=fs)
        except Exception as exc:
            error = read_error(name, uri, exc)
            if error is None:
                raise
            raise error from exc


def read_error(name: str, uri: str, exc: Exception) -> Exception | None:
    """The error to raise for ``exc`` while reading a file input: ``TransientInputError``
    if a retry can fix it, ``InputDataError`` (naming the file and the fix) if the file is
    unreadable, missing or corrupt, else None (re-raise ``exc``)."""
    if is_transient(exc):
        return TransientInputError(
            f"input dataset {name!r} at {uri}: reading failed ({summary(exc)}): a timeout, "
            "throttling or dropped connection; the step is retried"
        )
    if isinstance(exc, PermissionError):
        return InputDataError(
            f"input dataset {name!r} at {uri} cannot be read: permission denied "
            f"({summary(exc)}). Fix: grant this process read access (file mode, bucket policy "
            "or IAM role)."
        )
    if isinstance(exc, FileNotFoundError):
        return InputDataError(
            f"input dataset {name!r} is missing: {uri} cannot be found ({summary(exc)}). Fix: "
            "generate the demo inputs or point OCR_INPUT_ROOT at the real input stores."
        )
    import pyarrow as pa

    if isinstance(exc, pa.ArrowException | OSError):
        return InputDataError(
            f"input dataset {name!r} at {uri} is not a readable parquet file ({summary(exc)}): "
            "it is corrupt or truncated. Fix: copy it again from its source or regenerate the "
            "demo inputs."
        )
    return None


def spec(name: str) -> DatasetSpec:
    try:
        return DATASETS[name]
    except KeyError:
        raise InputDataError(
            f"unknown dataset {name!r}: the catalog has {', '.join(sorted(DATASETS))}"
        ) from None


def check_dataset(d: DatasetSpec, ds, uri: str) -> None:
    """Variables, CRS and spatial dims as the catalog says, else InputDataError."""
    missing = [v for v in d.variables if v not in ds.data_vars]
    if missing:
        raise InputDataError(
            f"input dataset {d.name!r} at {uri} lacks variable(s) {missing} "
            f"(has {sorted(ds.data_vars)}); expected {list(d.variables)}"
        )
    store_crs(d, ds, uri)
    for dim in ("latitude", "longitude") if d.on_processing_grid else ("y", "x"):
        if dim not in ds.dims:
            raise InputDataError(
                f"input dataset {d.name!r} at {uri} has no {dim!r} dimension (dims {list(ds.dims)})"
            )


# --- CRS: every convention the reference's ingestion (odc-geo, rioxarray, GeoParquet) writes ---
CRS_COORD = "spatial_ref"  # the CRS variable odc-geo and rioxarray write
CRS_FIX = {
    "zarr": "write the CRS the way the reference's ingestion does: a 0-d 'spatial_ref' variable "
    "whose attrs hold 'crs_wkt' (odc.geo assign_crs / xr_reproject, rioxarray write_crs), or a "
    "root attribute EPSG='{code}'",
    "geoparquet": "write it as GeoParquet from a GeoDataFrame whose crs is {crs} "
    "(geopandas to_parquet stores it as PROJJSON in the 'geo' metadata)",
}


def store_crs(d: DatasetSpec, source, uri: str = "") -> tuple[str, str]:
    """The store's CRS as 'EPSG:nnnn' and where it was found; InputDataError unless it is the
    catalog's.

    ``source`` is an xarray Dataset (zarr stores) or a pyarrow schema (GeoParquet). Every place
    a convention puts the CRS is read; they must agree. A stale 0-d CRS variable under another
    name (the wind store keeps CONUS404's Lambert ``crs``) counts only if nothing else is found.
    """
    code = d.crs.split(":")[1]
    fix = CRS_FIX[d.data_format].format(code=code, crs=d.crs)
    if d.data_format == "geoparquet":
        found, looked = _geoparquet_crs_candidates(source)
    else:
        found = _zarr_crs_candidates(source) or _fallback_crs_variables(source)
        looked = (
            "looked for a variable's grid_mapping, a 'spatial_ref' variable (crs_wkt/spatial_ref "
            "attrs), root attributes crs/EPSG/reprojected_to and the coordinates' crs attrs"
        )
    if not found:
        raise InputDataError(
            f"input dataset {d.name!r} at {uri} has no CRS ({looked}; found none). Fix: {fix}"
        )
    named = [(_normalise_crs(value, d.crs), where) for value, where in found]
    crs, where = named[0]
    if any(c != crs for c, _ in named[1:]):
        listing = "; ".join(f"{c} in {w}" for c, w in named)
        raise InputDataError(
            f"input dataset {d.name!r} at {uri} states conflicting CRSs ({listing}). Fix: keep "
            f"only {d.crs}: {fix}"
        )
    if crs != d.crs:
        raise InputDataError(
            f"input dataset {d.name!r} at {uri} has CRS {crs} (found in {where}), but the "
            f"catalog expects {d.crs}. Fix: reproject it to {d.crs} (as the reference's "
            "ingestion does) or correct the catalog entry"
        )
    return crs, where


def _normalise_crs(value, expected: str) -> str:
    """'EPSG:nnnn' for any CRS pyproj reads (WKT, PROJJSON, 'EPSG:n', a bare code), or a
    description of what was found; a CRS equal to ``expected`` up to axis order is ``expected``."""
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    if isinstance(value, str) and value.strip().isdigit():
        value = f"EPSG:{value.strip()}"
    try:
        crs = CRS.from_user_input(value)
    except (CRSError, TypeError, ValueError):
        return f"unreadable CRS {str(value)[:80]!r}"
    epsg = crs.to_epsg()
    if epsg is None and crs.equals(CRS.from_user_input(expected), ignore_axis_order=True):
        return expected
    return f"EPSG:{epsg}" if epsg is not None else f"{crs.name!r} (no EPSG code)"


def _wkt_attr(var) -> tuple[str | None, str | None]:
    for attr in ("crs_wkt", "spatial_ref"):
        if var.attrs.get(attr):
            return var.attrs[attr], attr
    return None, None


def _zarr_crs_candidates(ds) -> list[tuple[object, str]]:
    """Every (CRS, where) a zarr convention states: grid mappings, the CRS variable, root
    attributes, the coordinates' crs attrs, in that order."""
    found = _grid_mapping_crs(ds)
    if CRS_COORD in ds.variables:
        wkt, attr = _wkt_attr(ds[CRS_COORD])
        if wkt:
            found.append((wkt, f"{CRS_COORD!r} variable attr {attr!r}"))
    found += [
        (ds.attrs[attr], f"root attribute {attr}={ds.attrs[attr]!r}")
        for attr in ("crs", "EPSG", "epsg")
        if ds.attrs.get(attr)
    ]
    target = ds.attrs.get("reprojected_to")
    crs = _reprojected_to_crs(str(target)) if target else None
    if crs:
        found.append((crs, f"root attribute reprojected_to={target!r}"))
    found += [
        (ds[dim].attrs["crs"], f"coordinate {dim!r} attr 'crs'")
        for dim in ("latitude", "longitude", "y", "x")
        if dim in ds.coords and ds[dim].attrs.get("crs")
    ]
    return found


def _grid_mapping_crs(ds) -> list[tuple[object, str]]:
    """(WKT, where) of each data variable's grid_mapping variable, in name order."""
    found: list[tuple[object, str]] = []
    for name in sorted(ds.data_vars):  # the store's listing order is not stable
        var = ds[name]
        mapping = var.attrs.get("grid_mapping") or var.encoding.get("grid_mapping")
        if mapping and mapping in ds.variables:
            wkt, attr = _wkt_attr(ds[mapping])
            if wkt:
                found.append((wkt, f"variable {name!r} grid_mapping -> {mapping!r} attr {attr!r}"))
    return found


def _reprojected_to_crs(target: str) -> str | None:
    """CRS of the dataset named by a ``reprojected_to`` attribute (catalog name, or -nnnn tail)."""
    import re

    if target in DATASETS:
        return DATASETS[target].crs
    match = re.search(r"-(\d{4,5})$", target)
    return f"EPSG:{match.group(1)}" if match else None


def _fallback_crs_variables(ds) -> list[tuple[object, str]]:
    out = []
    for name, var in ds.variables.items():
        if var.ndim == 0 and name != CRS_COORD:
            wkt, attr = _wkt_attr(var)
            if wkt:
                out.append((wkt, f"0-d variable {name!r} attr {attr!r}"))
    return out


def _geoparquet_crs_candidates(schema) -> tuple[list[tuple[object, str]], str]:
    """GeoParquet 'geo' metadata: the primary column's PROJJSON; no crs key means OGC:CRS84
    (the spec's default, which geopandas applies); crs null means unknown."""
    import json

    raw = (schema.metadata or {}).get(b"geo")
    if raw is None:
        return [], "the file has no GeoParquet 'geo' metadata"
    geo = json.loads(raw)
    column = geo.get("primary_column", "geometry")
    meta = geo.get("columns", {}).get(column, {})
    where = f"GeoParquet 'geo' metadata of column {column!r}"
    if "crs" not in meta:
        return [("OGC:CRS84", f"{where} (no crs: the OGC:CRS84 default)")], ""
    if meta["crs"] is None:
        return [], f"{where} says crs: null, an unknown CRS"
    return [(meta["crs"], where)], ""


def grid_offsets(d: DatasetSpec, ds, grid: Grid, uri: str = "") -> tuple[int, int]:
    """Grid pixel (row, col) of the dataset's first pixel; error unless aligned to ``grid``."""
    import numpy as np

    lat = np.asarray(ds["latitude"].values, dtype="float64")
    lon = np.asarray(ds["longitude"].values, dtype="float64")
    if lat.size < 2 or lon.size < 2:
        raise InputDataError(f"input dataset {d.name!r} at {uri} is smaller than 2 × 2 pixels")
    res = grid.pixel_size
    if lat[1] <= lat[0]:
        raise InputDataError(
            f"input dataset {d.name!r} at {uri}: latitude must ascend (row 0 = south)"
        )
    for axis, values in (("latitude", lat), ("longitude", lon)):
        step = (values[-1] - values[0]) / (values.size - 1)
        if abs(step - res) > 1e-6 * res:
            raise InputDataError(
                f"input dataset {d.name!r} at {uri} has a {axis} pixel size of {step:.10g}°, "
                f"but the {grid.name} grid's is {res:.10g}°: it is not on the processing grid"
            )
    row = (lat[0] - grid.lat0) / res - 0.5
    col = (lon[0] - grid.lon0) / res - 0.5
    if abs(row - round(row)) > 1e-3 or abs(col - round(col)) > 1e-3:
        raise InputDataError(
            f"input dataset {d.name!r} at {uri} is offset from the {grid.name} grid by a "
            "fraction of a pixel: its pixel centres must sit on the grid's"
        )
    return round(row), round(col)
