"""The demo rasters as xarray datasets carrying each real store's metadata conventions: the
30 m EPSG:4326 stores as odc-geo's reprojection wrote them, the wind store as the reference's
reprojection left it, the 270 m EPSG:5070 stores as the ingestion of the USFS GeoTIFFs wrote
them (docs/data.md describes the real stores)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ocr_core.demo.geo import ALBERS_CRS, ALBERS_RES_M
from ocr_core.demo.hazard import BP_MAX_RILEY, Hazard
from ocr_core.schema import SCOTT_2024, WIND_DIRECTIONS, WIND_VARIABLE

if TYPE_CHECKING:
    import numpy as np
    import xarray as xr

    from ocr_core.demo.scene import Scene

SOURCE = "synthetic demo (ocr-dagster)"
GEOGRAPHIC_DIMS = ("latitude", "longitude")
BP_ATTRS = {"long_name": "annual burn probability", "units": "1"}


def geographic_coords(scene: Scene) -> dict[str, xr.DataArray]:
    """Coordinates of the 30 m stores as odc-geo's xr_reproject writes them: axes with units,
    resolution and crs attrs, and a ``spatial_ref`` scalar whose value is the EPSG code."""
    import xarray as xr

    def axis(name: str, values: np.ndarray, units: str) -> xr.DataArray:
        attrs = {"units": units, "resolution": scene.grid.pixel_size, "crs": "EPSG:4326"}
        return xr.DataArray(values, dims=(name,), attrs=attrs)

    return {
        "latitude": axis("latitude", scene.lat, "degrees_north"),
        "longitude": axis("longitude", scene.lon, "degrees_east"),
        "spatial_ref": _crs_variable(4326, 4326, "int32"),
    }


def scott_dataset(coords: dict[str, xr.DataArray], hz: Hazard, seed: int) -> xr.Dataset:
    """The Scott et al. 2024 stand-in: BP, CRPS and RPS on the 30 m grid."""
    data_vars = {
        "BP": (GEOGRAPHIC_DIMS, hz.scott_bp, BP_ATTRS),
        "CRPS": (
            GEOGRAPHIC_DIMS,
            hz.crps,
            {"long_name": "conditional risk to potential structures", "units": "%"},
        ),
        "RPS": (
            GEOGRAPHIC_DIMS,
            hz.rps,
            {"long_name": "risk to potential structures (BP × CRPS)", "units": "%"},
        ),
    }
    description = (
        "synthetic stand-in for Scott et al. 2024 (Wildfire Risk to Communities) on the 30 m grid"
    )
    return _geographic_dataset(data_vars, coords, _geographic_attrs(SCOTT_2024, description, seed))


def riley_dataset(
    coords: dict[str, xr.DataArray], bp: np.ndarray, name: str, year: str, seed: int
) -> xr.Dataset:
    """A Riley et al. 2025 30 m stand-in (``name``): BP of the ~``year`` climate run."""
    description = (
        f"synthetic stand-in for the Riley et al. 2025 ~{year} climate run on the 30 m grid"
    )
    attrs = _geographic_attrs(name, description, seed) | {"climate_run_year": year}
    return _geographic_dataset({"BP": (GEOGRAPHIC_DIMS, bp, BP_ATTRS)}, coords, attrs)


def _geographic_dataset(data_vars: dict, coords: dict[str, xr.DataArray], attrs: dict):
    import xarray as xr

    ds = xr.Dataset(data_vars, coords=coords)
    ds.attrs = attrs
    return ds


def _geographic_attrs(name: str, description: str, seed: int) -> dict[str, Any]:
    """Root attributes like the real 30 m EPSG:4326 stores' (no root ``crs``)."""
    return {
        "title": name,
        "version": "demo",
        "data_source": SOURCE,
        "description": description,
        "EPSG": "4326",
        "resolution": "30m",
        "seed": int(seed),
    }


def _crs_variable(epsg: int, value: int, dtype: str, **extra: str) -> xr.DataArray:
    """0-d CRS variable as odc-geo and rioxarray write it: CF grid mapping + GDAL spatial_ref."""
    import numpy as np
    import xarray as xr
    from pyproj import CRS

    crs = CRS.from_epsg(epsg)
    attrs = {"spatial_ref": crs.to_wkt(), **crs.to_cf(), **extra}
    return xr.DataArray(np.array(value, dtype=dtype), attrs=attrs)


def wind_dataset(wind: np.ndarray, coords: dict[str, xr.DataArray], seed: int) -> xr.Dataset:
    """The wind store as the reference's reprojection left it: dims (latitude, longitude,
    wind_direction) with no wind_direction coordinate, odc-geo's ``spatial_ref``, CONUS404's
    Lambert ``crs`` variable and the ``quantile`` scalar carried along, root ``reprojected_to``."""
    import numpy as np
    import xarray as xr

    lambert = _conus404_crs_variable()
    ds = xr.Dataset(
        {
            WIND_VARIABLE: (
                (*GEOGRAPHIC_DIMS, "wind_direction"),
                wind,
                {
                    "long_name": "Wind direction distribution during fire-weather hours",
                    "units": "probability",
                    "description": "Fraction of fire-weather hours (FFWI above its 99th "
                    "percentile) with wind from each of 8 directions: "
                    + ", ".join(WIND_DIRECTIONS),
                },
            )
        },
        coords={**coords, "crs": lambert, "quantile": xr.DataArray(np.float64(0.99))},
    )
    ds.attrs = {"reprojected_to": SCOTT_2024, "data_source": SOURCE}
    ds.attrs["seed"] = int(seed)
    return ds


def _conus404_crs_variable() -> xr.DataArray:
    """CONUS404's CF grid mapping (WRF spherical Lambert conformal), value 1 as in the store."""
    import numpy as np
    import xarray as xr
    from pyproj import CRS

    crs = CRS.from_proj4(
        "+proj=lcc +lat_1=30 +lat_2=50 +lat_0=39.100006 +lon_0=-97.9 +R=6370000 +units=m"
    )
    return xr.DataArray(np.int64(1), attrs={**crs.to_cf(), "crs_wkt": crs.to_wkt()})


def albers_dataset(scene: Scene, values: np.ndarray, year: str, seed: int) -> xr.Dataset:
    """A 270 m store as the reference's ingestion wrote it from the USFS GeoTIFFs: rasterio
    coordinates sorted ascending (y south to north), a rioxarray ``spatial_ref`` referenced by
    each band's ``grid_mapping``, BP plus flame-length probabilities FLP1..6, no root CRS."""
    import numpy as np
    import xarray as xr

    bp = values[::-1]  # generated north-up; the ingestion's sortby(['y', 'x']) makes y ascend
    y, x = scene.albers_y[::-1], scene.albers_x
    r = ALBERS_RES_M
    transform = f"{x[0] - r / 2} {r} 0.0 {y[-1] + r / 2} 0.0 {-r}"
    band = {"AREA_OR_POINT": "Area"}
    data = {"BP": (("y", "x"), bp, band)}
    for k, flp in enumerate(_flame_length_probabilities(bp), start=1):
        data[f"FLP{k}"] = (("y", "x"), flp, band)
    ds = xr.Dataset(
        data,
        coords={
            "y": ("y", y, _projected_axis("y")),
            "x": ("x", x, _projected_axis("x")),
            "spatial_ref": _crs_variable(
                int(ALBERS_CRS.split(":")[1]), 0, "int64", GeoTransform=transform
            ),
        },
    )
    for var in ds.data_vars.values():
        var.attrs["grid_mapping"] = "spatial_ref"
    ds.attrs = {
        "description": f"synthetic stand-in for the Riley et al. 2025 ~{year} climate run, "
        "270 m CONUS Albers",
        "data_source": SOURCE,
        "seed": int(seed),
    }
    return ds.assign({str(v): ds[v].astype(np.float32) for v in ds.data_vars})


def _projected_axis(axis: str) -> dict[str, str]:
    return {
        "axis": axis.upper(),
        "long_name": f"{axis} coordinate of projection",
        "standard_name": f"projection_{axis}_coordinate",
        "units": "metre",
    }


def _flame_length_probabilities(bp: np.ndarray) -> list[np.ndarray]:
    """Six flame-length class shares per pixel (sum 1), shifted to longer flames where BP is
    higher; NaN where BP is."""
    import numpy as np

    t = np.clip(np.nan_to_num(bp, nan=0.0) / BP_MAX_RILEY, 0.0, 1.0)
    scale = 0.6 + 1.8 * t
    weights = [np.exp(-k / scale) for k in range(6)]
    total = np.add.reduce(weights)
    return [np.where(np.isnan(bp), np.nan, w / total).astype("float32") for w in weights]
