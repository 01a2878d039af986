"""What the demo writers report about each store they wrote (the demo asset's metadata)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MaskCounts:
    """How many blobs each mask of the Scott store has."""

    towns: int  # burn probability 0, CRPS kept
    lakes: int  # burn probability 0
    rock_patches: int  # NaN burn probability on land


@dataclass(frozen=True)
class WrittenRaster:
    """A raster store as read back through the catalog after its commit."""

    uri: str
    crs: str
    crs_found_in: str  # where in the store the catalog found its CRS
    variables: tuple[str, ...]
    dims: dict[str, int]
    seed: int
    grid_offset: tuple[int, int] | None  # grid pixel of the first pixel (30 m stores only)
    nan_fractions: dict[str, float]  # by variable, rounded to 4 decimals
    ranges: dict[str, tuple[float, float]]  # by variable: NaN-ignoring min and max
    bytes: int
    masks: MaskCounts | None = None  # the Scott store only


@dataclass(frozen=True)
class BuildingCounts:
    """How the tagged buildings came out against what was asked."""

    requested: int
    seam_buildings: int  # footprints placed on or next to region seams, kept
    seed: int


@dataclass(frozen=True)
class WrittenTable:
    """A GeoParquet file as written."""

    uri: str
    crs: str
    rows: int
    columns: tuple[str, ...]  # in file order, the covering bbox and geometry last
    bounds: tuple[float, float, float, float]  # rounded to 6 decimals
    bytes: int
    buildings: BuildingCounts | None = None  # the tagged buildings only


Written = WrittenRaster | WrittenTable
