"""The input catalog: the reference's dataset names, stores, variables and CRSs.

A deployment points ``InputCatalog.root`` at the real stores (``s3://carbonplan-ocr``); the demo
points it at the generated ones under the storage root. Opening a dataset checks that it exists
and has the expected variables, CRS (read by ``ocr_core.input_crs``) and grid, so bad inputs
fail before any output is written.
"""

from __future__ import annotations

from dataclasses import dataclass

from ocr_core.errors import InputDataError, TransientInputError, is_transient, summary
from ocr_core.grid import Grid
from ocr_core.input_crs import store_crs
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
