"""Input datasets as assets, so the UI shows lineage from inputs to every output.

On the demo grid they are generated (deterministically from a seed) under the storage root;
on the CONUS grid they are external assets describing the real stores of the catalog.
"""

from typing import TYPE_CHECKING, Any

import dagster as dg

from ocr_assets import OWNERS
from ocr_assets.metadata import metadata_value
from ocr_core.catalog import DATASETS
from ocr_core.schema import (
    BUILDINGS,
    CENSUS_DATASETS,
    RILEY_30M,
    RILEY_270M,
    SCOTT_2024,
    WIND_DISTRIBUTION,
)
from ocr_core.versions import CODE_VERSIONS
from ocr_resources.storage import InputCatalogResource

if TYPE_CHECKING:
    from ocr_core.demo import Written

INPUT_DATASETS: dict[str, tuple[str, ...]] = {
    "scott_2024": (SCOTT_2024,),
    "riley_2025": (*RILEY_270M.values(), *RILEY_30M.values()),
    "wind_direction_distribution": (WIND_DISTRIBUTION,),
    "census_polygons": CENSUS_DATASETS,
    "tagged_buildings": (BUILDINGS,),
}
GROUP = "inputs"

scott_2024, riley_2025, wind_direction_distribution, census_polygons, tagged_buildings = (
    dg.AssetKey(name) for name in INPUT_DATASETS
)


def _spec(key: str) -> dg.AssetSpec:
    names = INPUT_DATASETS[key]
    return dg.AssetSpec(
        key,
        owners=OWNERS,
        group_name=GROUP,
        description="; ".join(DATASETS[n].description for n in names),
        metadata={"datasets": dg.MetadataValue.json(list(names))},
        kinds={"zarr"} if DATASETS[names[0]].data_format == "zarr" else {"parquet"},
    )


class DemoInputsConfig(dg.Config):
    """Knobs of the synthetic demo inputs."""

    seed: int = 2026
    n_buildings: int = 60_000


@dg.multi_asset(
    specs=[
        _spec(key).replace_attributes(code_version=CODE_VERSIONS["demo_inputs"])
        for key in INPUT_DATASETS
    ],
    name="demo_inputs",
    description="Generate every input of the demo grid: real county/state polygons and places, "
    "synthetic hazard rasters, tracts, blocks and building footprints.",
)
def demo_inputs(config: DemoInputsConfig, catalog: InputCatalogResource):
    from ocr_core import demo

    catalog.storage().check_reachable()
    cat, grid = catalog.catalog(), catalog.grid_def()
    written: dict[str, Written] = {}
    written |= demo.write_hazard_inputs(cat, grid, seed=config.seed)
    written |= demo.write_census_polygons(cat, grid, seed=config.seed)
    written |= demo.write_tagged_buildings(
        cat, grid, seed=config.seed, n_buildings=config.n_buildings
    )
    for key, names in INPUT_DATASETS.items():
        datasets = {n: written_metadata(written[n]) if n in written else {} for n in names}
        yield dg.MaterializeResult(
            asset_key=key,
            metadata={
                "dagster/uri": dg.MetadataValue.path(cat.uri(names[0])),
                "seed": config.seed,
                "datasets": dg.MetadataValue.json(datasets),
            },
        )


def written_metadata(w: "Written") -> dict[str, Any]:
    """A demo store's report as the JSON of the asset's ``datasets`` metadata."""
    from dataclasses import asdict

    from ocr_core.demo import WrittenRaster

    if isinstance(w, WrittenRaster):
        meta: dict[str, Any] = {
            "uri": w.uri,
            "crs": w.crs,
            "crs_found_in": w.crs_found_in,
            "variables": list(w.variables),
            "dims": w.dims,
            "seed": w.seed,
        }
        if w.grid_offset is not None:
            meta["grid_offset"] = list(w.grid_offset)
        meta |= {f"{var}_nan_fraction": f for var, f in w.nan_fractions.items()}
        meta["ranges"] = {var: list(r) for var, r in w.ranges.items()}
        meta["bytes"] = w.bytes
        return meta | (asdict(w.masks) if w.masks else {})
    meta = {
        "uri": w.uri,
        "crs": w.crs,
        "rows": w.rows,
        "columns": list(w.columns),
        "bounds": list(w.bounds),
        "bytes": w.bytes,
    }
    return meta | (asdict(w.buildings) if w.buildings else {})


@dg.multi_asset_check(
    specs=[
        dg.AssetCheckSpec(
            "inputs_usable",
            asset=key,
            blocking=False,
            description="Each store opens; CRS as the catalog says (and where it is stated); "
            "on the Scott 30 m grid (4326) or 270 m pixels (5070); expected variables, dtype and "
            "chunking; values inside the schema's ranges on a sample window.",
        )
        for key in INPUT_DATASETS
    ],
    can_subset=True,
    name="input_checks",
)
def input_checks(context: dg.AssetCheckExecutionContext, catalog: InputCatalogResource):
    from ocr_core.input_checks import check_inputs

    cat = catalog.catalog()
    for check_key in context.selected_asset_check_keys:
        key = check_key.asset_key.to_user_string()
        reports = check_inputs(cat, catalog.grid_def(), INPUT_DATASETS[key])
        problems = [p.line() for r in reports for p in r.problems]
        metadata: dict[str, dg.MetadataValue] = {}
        for r in reports:
            for figure, value in r.figures().items():
                if value not in (None, [], {}, ""):
                    metadata[f"{r.name} {figure}"] = metadata_value(value)
        yield dg.AssetCheckResult(
            asset_key=check_key.asset_key,
            check_name=check_key.name,
            passed=not problems,
            severity=dg.AssetCheckSeverity.ERROR,
            description="; ".join(problems) or f"{len(reports)} dataset(s) usable",
            metadata=metadata,
        )


def input_assets(grid_name: str) -> list:
    """Generated inputs on the demo grid; external specs of the real stores otherwise (the
    same ``input_checks`` apply to both)."""
    if grid_name == "demo":
        return [demo_inputs]
    return [_spec(key) for key in INPUT_DATASETS]
