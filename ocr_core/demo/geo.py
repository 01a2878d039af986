"""Geographic constants of the demo: metres per degree, the 270 m grid's CRS and resolution."""

from __future__ import annotations

LonLatBox = tuple[float, float, float, float]  # west, south, east, north (degrees)

M_PER_DEG_LAT = 110_574.0
M_PER_DEG_LON_EQUATOR = 111_320.0  # times cos(latitude) elsewhere
ALBERS_CRS = "EPSG:5070"  # the Riley 270 m stores' CRS (CONUS Albers)
ALBERS_RES_M = 270.0
