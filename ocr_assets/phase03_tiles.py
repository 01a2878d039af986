"""Phase 03 — tiles: regional, building and building-centroid PMTiles, and the raster pyramid.

The building and centroid tile assets both read one shared export of the building features,
so the buildings are scanned once and the two tile builds can run in parallel.
"""

from typing import TYPE_CHECKING

import dagster as dg

from ocr_assets import OWNERS
from ocr_assets.metadata import audited, blocking_checks, check_results
from ocr_assets.phase01_regions import REGION_BUILDINGS, REGION_RISK
from ocr_assets.phase02_aggregation import region_summary_stats
from ocr_core.versions import CODE_VERSIONS
from ocr_resources.compute import ComputeResource
from ocr_resources.duckdb import DuckDBResource
from ocr_resources.storage import StorageResource
from ocr_resources.tippecanoe import TippecanoeResource

if TYPE_CHECKING:
    from ocr_core.tiles import TilesetResult

GROUP = "phase03_tiles"
# The two building tile builds start before other ready steps, so they run side by side.
TILE_PRIORITY = {"dagster/priority": "1"}


def _pmtiles_checks(asset: str) -> list[dg.AssetCheckSpec]:
    return blocking_checks(
        asset,
        pmtiles_complete="A readable tileset with its layers, tiles and features, checked "
        "before publication.",
    )


def _map_link(layer: str) -> dg.MetadataValue:
    """The local map's view of what the asset published (``ocr-dagster map`` serves it)."""
    from ocr_core.map_server import map_url

    return dg.MetadataValue.url(map_url(layer))


def _tiles_result(
    result: "TilesetResult", compute: ComputeResource, context, layer: str, db=None
) -> dg.MaterializeResult:
    info = result.info
    return dg.MaterializeResult(
        check_results=check_results(result.checks),
        metadata={
            "dagster/uri": dg.MetadataValue.path(result.path),
            "map": _map_link(layer),
            "bytes": info["bytes"],
            "features": info["features"],
            "zooms": dg.MetadataValue.json([info["min_zoom"], info["max_zoom"]]),
            "layers": dg.MetadataValue.json(info["layers"]),
            "summary": dg.MetadataValue.json(result.summary()),
            "compute": compute.metadata_for(context, db),
        },
    )


@dg.asset(
    owners=OWNERS,
    code_version=CODE_VERSIONS["regional_pmtiles"],
    deps=[region_summary_stats],
    group_name=GROUP,
    kinds={"duckdb", "pmtiles"},
    tags={"ocr/phase": "03"},
    check_specs=_pmtiles_checks("regional_pmtiles"),
    description="One multi-layer PMTiles of the regional statistics (counties, tracts, "
    "states, nation, blocks), numeric property keys as the web client expects.",
)
def regional_pmtiles(
    context: dg.AssetExecutionContext,
    storage: StorageResource,
    duckdb: DuckDBResource,
    tippecanoe: TippecanoeResource,
    compute: ComputeResource,
):
    from ocr_core.tiles import build_regional_pmtiles

    db = duckdb.config(compute.vm_for(context))
    result = yield from audited(
        context, compute, build_regional_pmtiles, storage.storage(), tippecanoe.runner(), db
    )
    yield _tiles_result(result, compute, context, "regions", db)


@dg.asset(
    owners=OWNERS,
    code_version=CODE_VERSIONS["building_tile_features"],
    deps=[REGION_BUILDINGS],
    group_name=GROUP,
    kinds={"duckdb", "geojson"},
    tags={"ocr/phase": "03"},
    description="One scan of the region files into the feature files of the two building "
    "tile layers (polygons; centroids of buildings with both RPS values > 0).",
    check_specs=blocking_checks(
        "building_tile_features",
        region_files_value_ranges="The region files' risk values inside the schema ranges, "
        "no NaN, before export.",
    ),
)
def building_tile_features(
    context: dg.AssetExecutionContext,
    storage: StorageResource,
    duckdb: DuckDBResource,
    compute: ComputeResource,
):
    from ocr_core.tiles import export_building_features

    db = duckdb.config(compute.vm_for(context))
    result = yield from audited(context, compute, export_building_features, storage.storage(), db)
    yield dg.MaterializeResult(
        check_results=check_results(result.checks),
        metadata={
            "dagster/uri": dg.MetadataValue.path(storage.storage().tile_features_dir),
            "summary": dg.MetadataValue.json(result.summary()),
            "compute": compute.metadata_for(context, db),
        },
    )


def _building_tiles_asset(name: str, builder: str, layer: str, description: str):
    """A tile asset built by ``ocr_core.tiles.<builder>`` from one building feature file (the
    building and centroid tilesets differ only in that file and tippecanoe's flags)."""

    @dg.asset(
        name=name,
        owners=OWNERS,
        code_version=CODE_VERSIONS[name],
        deps=[building_tile_features],
        op_tags=TILE_PRIORITY,
        group_name=GROUP,
        kinds={"pmtiles"},
        tags={"ocr/phase": "03"},
        check_specs=_pmtiles_checks(name),
        description=description,
    )
    def _asset(
        context: dg.AssetExecutionContext,
        storage: StorageResource,
        tippecanoe: TippecanoeResource,
        compute: ComputeResource,
    ):
        from ocr_core import tiles

        build = getattr(tiles, builder)
        result = yield from audited(context, compute, build, storage.storage(), tippecanoe.runner())
        yield _tiles_result(result, compute, context, layer)

    return _asset


building_pmtiles = _building_tiles_asset(
    "building_pmtiles",
    "build_building_pmtiles",
    "buildings",
    "Building footprints with their 7 risk values (layer 'risk', zoom ≥ 6).",
)
building_centroid_pmtiles = _building_tiles_asset(
    "building_centroid_pmtiles",
    "build_centroid_pmtiles",
    "centroids",
    "Building centroids with RPS 2011/2047 rounded to 3 decimals, for buildings whose two RPS "
    "values are > 0.",
)


@dg.asset(
    owners=OWNERS,
    code_version=CODE_VERSIONS["risk_pyramid"],
    deps=[REGION_RISK],
    group_name=GROUP,
    kinds={"zarr"},
    tags={"ocr/phase": "03", "ocr/optional": "create-pyramid"},
    description="Multiscale Zarr v3 pyramid of rps_2011 and rps_2047 (2 × 2 mean per level), "
    "optional like the CLI's --create-pyramid.",
    check_specs=blocking_checks(
        "risk_pyramid",
        pyramid_complete="Every level with its shape; the coarsest levels' values in "
        "[0, 100], not all NaN.",
    ),
)
def risk_pyramid(
    context: dg.AssetExecutionContext, storage: StorageResource, compute: ComputeResource
):
    from ocr_core.pyramid import write_pyramid

    result = yield from audited(context, compute, write_pyramid, storage.storage())
    yield dg.MaterializeResult(
        check_results=check_results(result.checks),
        metadata={
            "dagster/uri": dg.MetadataValue.path(storage.storage().pyramid_uri),
            "map": _map_link("raster"),
            "levels": result.levels,
            "summary": dg.MetadataValue.json(result.summary()),
            "compute": compute.metadata_for(context),
        },
    )
