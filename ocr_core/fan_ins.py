"""The fan-in assets by name: the unpartitioned phase 02/03 products built from every region.

Plain names, so the run coordinator (loaded by the daemon and the webserver) reads them without
importing the asset modules; the definitions build their keys from the same set.
"""

from __future__ import annotations

FAN_INS = frozenset(
    {
        "buildings_geoparquet",
        "region_summary_stats",
        "region_analysis_files",
        "regional_pmtiles",
        "building_tile_features",
        "building_pmtiles",
        "building_centroid_pmtiles",
        "risk_pyramid",
    }
)
