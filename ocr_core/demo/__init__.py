"""Seeded synthetic inputs for a small grid (the embedded demo): every catalog dataset, written
where ``InputCatalog.uri`` says and with the real stores' conventions (docs/data.md), so the
pipeline runs end to end without the real stores.

Real parts: state and county polygons and place locations with population (``sources``).
Synthetic parts, all derived from one seed (``scene``):

* Hazard layers are functions of position (``noise``, ``masks``, ``hazard``, ``wind``): the
  same functions are evaluated on the 30 m EPSG:4326 grid and at the 270 m EPSG:5070 pixel
  centres, so both resolutions agree. Written as icechunk repositories (``stores``,
  ``rasters``).
* Census tracts and blocks tile the counties' parts of the raster domain (``census``).
* Buildings are footprints clustered around places plus a few on region seams
  (``footprints``), tagged with their census units (``buildings``).

GeoParquet files are replaced whole through ``Storage.atomic_local_file`` (``tables``). Each
writer returns what it wrote (``written``). Heavy libraries are imported inside functions so
``import ocr_core.demo`` stays light.
"""

from ocr_core.demo.buildings import write_tagged_buildings
from ocr_core.demo.census import write_census_polygons
from ocr_core.demo.rasters import RASTER_CHUNKS, write_hazard_inputs
from ocr_core.demo.scene import (
    DOMAIN_EXTRA_PX,
    Scene,
    build_scene,
    domain_axes,
    domain_bounds,
    domain_pad,
)
from ocr_core.demo.stores import SOURCE
from ocr_core.demo.written import (
    BuildingCounts,
    MaskCounts,
    Written,
    WrittenRaster,
    WrittenTable,
)

__all__ = [
    "DOMAIN_EXTRA_PX",
    "RASTER_CHUNKS",
    "SOURCE",
    "BuildingCounts",
    "MaskCounts",
    "Scene",
    "Written",
    "WrittenRaster",
    "WrittenTable",
    "build_scene",
    "domain_axes",
    "domain_bounds",
    "domain_pad",
    "write_census_polygons",
    "write_hazard_inputs",
    "write_tagged_buildings",
]
