"""Phase 03 — tiles: regional, building and building-centroid PMTiles, and the raster pyramid.

The building and centroid tile assets both read one shared export of the building features,
so the buildings are scanned once and the two tile builds can run in parallel.
"""

import dagster as dg

from ocr_assets import OWNERS
from ocr_assets.phase01_regions import REGION_BUILDINGS, REGION_RISK
from ocr_assets.phase02_aggregation import region_summary_stats
from ocr_core.versions import CODE_VERSIONS
from ocr_resources.compute import ComputeResource
from ocr_resources.duckdb import DuckDBResource
from ocr_resources.storage import StorageResource
from ocr_resources.tippecanoe import TippecanoeResource

GROUP = "phase03_tiles"
# The two building tile builds start before other ready steps, so they run side by side.
TILE_PRIORITY = {"dagster/priority": "1"}


def _tiles_metadata(s: dict, compute: ComputeResource, context) -> dict:
    return {
        "dagster/uri": dg.MetadataValue.path(s["path"]),
        "bytes": s["bytes"],
        "features": s.get("features", 0),
        "zooms": dg.MetadataValue.json([s.get("min_zoom"), s.get("max_zoom")]),
        "layers": dg.MetadataValue.json(s.get("layers", [])),
        "summary": dg.MetadataValue.json(s),
        "compute": compute.metadata_for(context),
    }


@dg.asset(
    owners=OWNERS,
    code_version=CODE_VERSIONS["regional_pmtiles"],
    deps=[region_summary_stats],
    group_name=GROUP,
    kinds={"duckdb", "pmtiles"},
    tags={"ocr/phase": "03"},
    description="One multi-layer PMTiles of the regional statistics (counties, tracts, "
    "states, nation, blocks), numeric property keys as the web client expects.",
)
def regional_pmtiles(
    context: dg.AssetExecutionContext,
    storage: StorageResource,
    duckdb: DuckDBResource,
    tippecanoe: TippecanoeResource,
    compute: ComputeResource,
) -> dg.MaterializeResult:
    from ocr_core.tiles import build_regional_pmtiles

    s = compute.run_for(
        context, build_regional_pmtiles, storage.storage(), tippecanoe.runner(), duckdb.config()
    )
    return dg.MaterializeResult(metadata=_tiles_metadata(s, compute, context))


@dg.asset(
    owners=OWNERS,
    code_version=CODE_VERSIONS["building_tile_features"],
    deps=[REGION_BUILDINGS],
    group_name=GROUP,
    kinds={"duckdb", "geojson"},
    tags={"ocr/phase": "03"},
    description="One scan of the region files into the feature files of the two building "
    "tile layers (polygons; centroids of buildings with both RPS values > 0).",
)
def building_tile_features(
    context: dg.AssetExecutionContext,
    storage: StorageResource,
    duckdb: DuckDBResource,
    compute: ComputeResource,
) -> dg.MaterializeResult:
    from ocr_core.tiles import export_building_features

    s = compute.run_for(context, export_building_features, storage.storage(), duckdb.config())
    return dg.MaterializeResult(
        metadata={
            "dagster/uri": dg.MetadataValue.path(storage.storage().tile_features_dir),
            "summary": dg.MetadataValue.json(s),
        }
    )


@dg.asset(
    owners=OWNERS,
    code_version=CODE_VERSIONS["building_pmtiles"],
    deps=[building_tile_features],
    op_tags=TILE_PRIORITY,
    group_name=GROUP,
    kinds={"pmtiles"},
    tags={"ocr/phase": "03"},
    description="Building footprints with their 7 risk values (layer 'risk', zoom ≥ 6).",
)
def building_pmtiles(
    context: dg.AssetExecutionContext,
    storage: StorageResource,
    tippecanoe: TippecanoeResource,
    compute: ComputeResource,
) -> dg.MaterializeResult:
    from ocr_core.tiles import build_building_pmtiles

    s = compute.run_for(context, build_building_pmtiles, storage.storage(), tippecanoe.runner())
    return dg.MaterializeResult(metadata=_tiles_metadata(s, compute, context))


@dg.asset(
    owners=OWNERS,
    code_version=CODE_VERSIONS["building_centroid_pmtiles"],
    deps=[building_tile_features],
    op_tags=TILE_PRIORITY,
    group_name=GROUP,
    kinds={"pmtiles"},
    tags={"ocr/phase": "03"},
    description="Building centroids with RPS 2011/2047 rounded to 3 decimals, for buildings "
    "whose two RPS values are > 0.",
)
def building_centroid_pmtiles(
    context: dg.AssetExecutionContext,
    storage: StorageResource,
    tippecanoe: TippecanoeResource,
    compute: ComputeResource,
) -> dg.MaterializeResult:
    from ocr_core.tiles import build_centroid_pmtiles

    s = compute.run_for(context, build_centroid_pmtiles, storage.storage(), tippecanoe.runner())
    return dg.MaterializeResult(metadata=_tiles_metadata(s, compute, context))


@dg.asset(
    owners=OWNERS,
    code_version=CODE_VERSIONS["risk_pyramid"],
    deps=[REGION_RISK],
    group_name=GROUP,
    kinds={"zarr"},
    tags={"ocr/phase": "03", "ocr/optional": "create-pyramid"},
    description="Multiscale Zarr v3 pyramid of rps_2011 and rps_2047 (2 × 2 mean per level), "
    "optional like the seed's --create-pyramid.",
)
def risk_pyramid(
    context: dg.AssetExecutionContext, storage: StorageResource, compute: ComputeResource
) -> dg.MaterializeResult:
    from ocr_core.pyramid import write_pyramid

    s = compute.run_for(context, write_pyramid, storage.storage())
    return dg.MaterializeResult(
        metadata={
            "dagster/uri": dg.MetadataValue.path(storage.storage().pyramid_uri),
            "levels": s.get("levels"),
            "summary": dg.MetadataValue.json(s),
            "compute": compute.metadata_for(context),
        }
    )
