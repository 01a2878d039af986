"""Phase 02 through Dagster with its blocking checks, and the checks catching bad data."""

import shutil
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ocr_assets.phase01_regions import process_region
from ocr_assets.phase02_aggregation import (
    buildings_geoparquet,
    region_analysis_files,
    region_summary_stats,
)
from ocr_core import checks
from ocr_core.storage import Storage
from ocr_resources import (
    ComputeResource,
    DuckDBResource,
    InputCatalogResource,
    StorageResource,
)

REGIONS = ("y2_x1", "y3_x3")


def _number(entry: dg.MetadataValue) -> float:
    """A numeric metadata entry's value."""
    value = entry.value
    assert isinstance(value, int | float)
    return value


def _resources(root, inputs_root) -> dict:
    return {
        "storage": StorageResource(root=str(root)),
        "catalog": InputCatalogResource(root=str(inputs_root)),
        "compute": ComputeResource(),
        "duckdb": DuckDBResource(memory_limit="1GB"),
    }


@pytest.fixture(scope="module")
def phase02_root(tmp_path_factory, demo_inputs_root):
    root = tmp_path_factory.mktemp("phase02")
    with dg.instance_for_test() as instance:
        for rid in REGIONS:
            result = dg.materialize(
                [process_region],
                partition_key=rid,
                instance=instance,
                resources=_resources(root, demo_inputs_root),
            )
            assert result.success
        result = dg.materialize(
            [
                process_region,
                buildings_geoparquet,
                region_summary_stats,
                region_analysis_files,
            ],
            selection=[buildings_geoparquet, region_summary_stats, region_analysis_files],
            instance=instance,
            resources=_resources(root, demo_inputs_root),
        )
        assert result.success
        evaluations = result.get_asset_check_evaluations()
    assert {e.check_name for e in evaluations} == {
        "buildings_match_region_files",
        "buildings_value_ranges",
        "buildings_not_collapsed",
        "region_files_value_ranges",
        "summary_stats_consistent",
        "analysis_files_complete",
    }
    assert all(e.passed for e in evaluations)
    by_name = {e.check_name: e.metadata for e in evaluations}
    region_rows = _number(by_name["buildings_match_region_files"]["region_rows"])
    assert region_rows > 0  # each figure its own entry, as numbers (they plot)
    ranges = by_name["buildings_value_ranges"]
    assert 0 <= _number(ranges["bp_2011 min"]) <= _number(ranges["bp_2011 max"]) <= 1
    (stats,) = result.asset_materializations_for_node("region_summary_stats")
    table = stats.metadata["nation_risk_score_histogram"].value
    assert isinstance(table, str)
    rows = table.splitlines()[2:]
    counts = [int(row.split(" | ")[2].split()[0].replace(",", "")) for row in rows]
    assert len(counts) == 11 and sum(counts) == region_rows
    return root


def test_outputs_reconcile(phase02_root):
    storage = Storage(str(phase02_root))
    passed, details = checks.consolidated_matches_regions(storage)
    assert passed and details["consolidated"]["rows"] == details["region_rows"] > 0
    passed, details = checks.summary_stats_consistent(storage)
    assert passed and details["nation"]["buildings"] == details["region_buildings"]
    assert details["counties_sum_equals_nation"]
    csv = storage.region_analysis_uri("counties", "csv")
    assert Path(csv).read_text().startswith("# version: unversioned")


@pytest.fixture
def copied(phase02_root, tmp_path) -> Storage:
    """A copy of the phase 02 outputs to break."""
    root = tmp_path / "copy"
    shutil.copytree(phase02_root, root)
    return Storage(str(root))


def test_checks_fail_on_a_duplicated_building(copied):
    storage = copied
    path = storage.consolidated_buildings_uri
    table = pq.read_table(path)
    pq.write_table(pa.concat_tables([table, table.slice(0, 1)]), path)
    passed, details = checks.consolidated_matches_regions(storage)
    assert not passed and details["consolidated"]["extra_or_duplicated"] == 1


def test_checks_fail_on_a_lost_building_and_bad_values(copied):
    storage = copied
    path = storage.consolidated_buildings_uri
    table = pq.read_table(path)
    rps = table.column("rps_2011").to_pylist()
    rps[1] = 150.0  # outside [0, 100]
    bad = table.slice(1).set_column(
        table.schema.get_field_index("rps_2011"),
        "rps_2011",
        pa.array(rps[1:], type=pa.float32()),
    )
    pq.write_table(bad, path)
    passed, details = checks.consolidated_matches_regions(storage)
    assert not passed and details["consolidated"]["missing"] == 2  # dropped + changed row
    passed, details = checks.building_value_ranges(storage)
    assert not passed and details["rps_2011"]["max"] == 150.0


def test_checks_fail_when_histograms_do_not_sum(copied):
    storage = copied
    path = storage.summary_stats_uri("tracts")
    con = duckdb.connect()
    table = con.execute(f"SELECT * FROM read_parquet('{path}')").fetch_arrow_table()
    counts = table.column("building_count").to_pylist()
    counts[0] += 1
    broken = table.set_column(
        table.schema.get_field_index("building_count"),
        "building_count",
        pa.array(counts, type=pa.int64()),
    )
    pq.write_table(broken.replace_schema_metadata(pq.read_schema(path).metadata), path)
    passed, details = checks.summary_stats_consistent(storage)
    assert not passed and details["tracts"]["bad_histograms"] == 1
