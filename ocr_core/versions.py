"""Code versions of the pipeline's computations, one entry per materialized asset.

Dagster compares an asset's code version with the one its last materialization recorded and
marks outputs computed by older code as changed, so the UI tells which regions and products
need a rerun. Bump an entry in the commit that changes what its code computes (numbers,
schema, files) — not for refactors that change nothing in the outputs.
"""

from __future__ import annotations

CODE_VERSIONS: dict[str, str] = {
    # generated demo inputs in the real stores' conventions
    "demo_inputs": "2026.12.1",
    # the risk method; the 270 m cells GDAL's warp picks, the reference's windows
    "region_risk": "2026.12.1",
    # sampling at footprint centroids, NaN rows dropped
    "region_buildings": "2026.11.1",
    "buildings_geoparquet": "2026.11.1",
    "region_summary_stats": "2026.11.1",
    "region_analysis_files": "2026.11.1",
    "regional_pmtiles": "2026.11.1",
    "building_tile_features": "2026.11.1",
    "building_pmtiles": "2026.11.1",
    "building_centroid_pmtiles": "2026.11.1",
    "risk_pyramid": "2026.11.1",
}
