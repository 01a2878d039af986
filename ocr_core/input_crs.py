"""Where an input store states its CRS, read in every convention the reference's ingestion
writes (odc-geo, rioxarray, GeoParquet), and checked against the catalog's."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ocr_core.errors import InputDataError

if TYPE_CHECKING:
    from ocr_core.catalog import DatasetSpec

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

    from ocr_core.catalog import DATASETS

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
