"""The UI check of issue 9: what a user does in the Dagster UI, against the real deployment.

One webserver and one daemon (what ``./dev ui`` starts through ``dagster dev``) serve a fresh
instance for the module. A backfill of two regions, launched with the UI's own GraphQL
mutation, is the only launch: the daemon runs the regions and then, by the automation sensor,
every fan-in. Headless Chromium then has to show the backfill completed and the graph
materialized with nothing "Unsynced"; and the "Materialize" dialog, clicked, launches a
backfill whose fan-ins show "Unsynced" until the automation has rebuilt them.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect
from ui_flow import (
    FAN_INS,
    N_REGIONS,
    REGION_KEYS,
    Flow,
    from_automation,
    launch_backfill_like_the_ui,
    project_status,
    run_tags,
    staleness,
    wait_for_quiet_automation,
)
from ui_pages import (
    Screen,
    browsing,
    expect_backfill_succeeded,
    expect_graph_state,
    launch_backfill_by_clicking,
    open_page,
    table_row,
    wait_for_inner_text,
)
from ui_server import UI, serving, set_automation

BACKFILL_REGIONS = ("y2_x1", "y2_x2")  # launched over GraphQL
CLICKED_REGIONS = ("y1_x1", "y1_x2")  # launched by clicking "Materialize"
VECTOR = Path("fire-risk/vector/qa")


@pytest.fixture(scope="module")
def ui(tmp_path_factory, demo_inputs_root):
    """``dagster-webserver`` and ``dagster-daemon`` on loopback (as ``./dev ui``), on a fresh
    instance and storage root, reading the session's demo inputs."""
    with serving(tmp_path_factory.mktemp("ui"), demo_inputs_root) as ui:
        yield ui


@pytest.fixture(scope="module")
def graphql_flow(ui) -> Flow:
    """Test A's launch: two regions, as the UI launches them, and nothing else."""
    with ui.explained():
        flow = Flow(launch_backfill_like_the_ui(ui, BACKFILL_REGIONS), BACKFILL_REGIONS)
        flow.wait_for_regions(ui)
        flow.wait_for_fan_ins(ui)
        return flow


def test_a_backfill_launched_like_the_ui_completes_the_whole_graph(ui, graphql_flow):
    from ocr_assets.definitions import automated_keys
    from ocr_resources.settings import Settings

    flow = graphql_flow
    with ui.explained():
        assert {k.to_user_string() for k in automated_keys(Settings(grid="demo"))} == set(FAN_INS)
        assert flow.backfill["status"] == "COMPLETED_SUCCESS"
        assert sorted(flow.backfill["partitionNames"]) == sorted(BACKFILL_REGIONS)
        assert {tuple(k["path"]) for k in flow.backfill["assetSelection"]} == {
            (k,) for k in REGION_KEYS
        }

        # The only launch was the backfill: every run is one of its regions or the automation's.
        runs = {r["runId"]: r for r in flow.runs}
        region_runs = {m["runId"] for m in flow.region_materializations.values()}
        for run_id in region_runs:
            tags = run_tags(runs[run_id])
            assert tags.get("dagster/backfill") == flow.backfill_id, tags
            assert tags.get("dagster/from_ui") == "true", tags
        assert len(region_runs) == len(BACKFILL_REGIONS)  # one run per region
        automation_runs = [r for r in flow.runs if from_automation(r)]
        others = [
            (r["runId"], run_tags(r))
            for r in flow.runs
            if r["runId"] not in region_runs and not from_automation(r)
        ]
        assert not others, f"runs nobody asked for: {others}"

        # Dagster built every fan-in, in one run, after the last region.
        fan_in_runs = {m["runId"] for m in flow.fan_in_materializations.values()}
        assert len(fan_in_runs) == 1, flow.fan_in_materializations
        (fan_in_run,) = fan_in_runs
        assert from_automation(runs[fan_in_run]), run_tags(runs[fan_in_run])
        assert [r["runId"] for r in automation_runs] == [fan_in_run], (
            "the automation should request the fan-ins once for one backfill"
        )

        # ... and then has nothing more to do (no loop of re-materializations).
        later = wait_for_quiet_automation(ui, after_s=runs[fan_in_run]["endTime"])
        assert all(not t["runIds"] for t in later), later

        _expect_nothing_stale(ui)
        _expect_the_files(ui)


def _expect_nothing_stale(ui: UI) -> None:
    """Nothing is stale: Dagster's data versions and the project's own closure over them."""
    stale = staleness(ui, BACKFILL_REGIONS)
    for node in stale["regions"]:
        assert node["staleStatusByPartition"] == ["FRESH"] * len(BACKFILL_REGIONS), node
    for node in stale["fanIns"]:
        assert node["staleStatus"] == "FRESH", node
    status = project_status(ui)
    assert status.fresh_regions == len(BACKFILL_REGIONS), status.describe()
    assert not status.stale_regions and not status.stale_fan_ins, status.describe()
    assert len(status.missing_regions) == N_REGIONS - len(BACKFILL_REGIONS)


def _expect_the_files(ui: UI) -> None:
    """The files: one per region that ran, and the published tiles."""
    regions_dir = ui.root / "intermediate" / VECTOR / "geoparquet-regions"
    assert sorted(p.name for p in regions_dir.iterdir()) == [
        f"{rid}.parquet" for rid in sorted(BACKFILL_REGIONS)
    ]
    import pyarrow.parquet as pq

    for rid in BACKFILL_REGIONS:
        assert pq.read_metadata(regions_dir / f"{rid}.parquet").num_rows > 0, rid
    pmtiles = sorted((ui.root / "output" / VECTOR / "pmtiles").glob("*.pmtiles"))
    assert [p.name for p in pmtiles] == [
        "building_centroids.pmtiles",
        "buildings.pmtiles",
        "regions.pmtiles",
    ]
    for path in pmtiles:
        header = path.read_bytes()[:8]
        assert header[:7] == b"PMTiles" and header[7] == 3, (path, header)
    assert (ui.root / "output" / VECTOR / "geoparquet" / "buildings.parquet").is_dir()


@pytest.fixture
def screen(ui, tmp_path):
    """A page of headless Chromium (the system's browser) on the module's webserver."""
    with browsing(ui, tmp_path) as screen:
        yield screen


def test_b_browser_shows_the_backfill_done_and_nothing_unsynced(screen, graphql_flow):
    with screen.explained():
        _browse_the_backfill_and_the_graph(screen, graphql_flow)


def _browse_the_backfill_and_the_graph(screen: Screen, flow: Flow) -> None:
    page = screen.page

    # The runs list, backfills view (where /overview/backfills redirects), then its page.
    open_page(page, "/overview/backfills")
    expect(page).to_have_url(re.compile(r"/runs\?view=backfills"))
    row = table_row(page, f"/runs/b/{flow.backfill_id}")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Backfill")
    expect(row).to_contain_text("Success")
    screen.shot("1-backfills")
    row.locator(f'a[href="/runs/b/{flow.backfill_id}"]').first.click()
    expect(page).to_have_url(re.compile(rf"/runs/b/{flow.backfill_id}"))
    expect_backfill_succeeded(page, flow.backfill_id, BACKFILL_REGIONS)
    screen.shot("2-backfill")

    # The catalog: each fan-in materialized, no asset marked stale.
    open_page(page, "/assets")
    for key in FAN_INS:
        expect(table_row(page, f"/assets/{key}")).to_contain_text("Materialized")
    done, missing = len(BACKFILL_REGIONS), N_REGIONS - len(BACKFILL_REGIONS)
    for key in REGION_KEYS:  # partitions materialized / missing / failed / in progress
        row = table_row(page, f"/assets/{key}")
        wait_for_inner_text(row, rf"\n{done}\n{missing}\n0\n0\n{N_REGIONS} partitions")
    expect(page.get_by_text(re.compile(r"^(Unsynced|Stale)\b"))).to_have_count(0)
    screen.shot("3-catalog")

    # The global lineage with every group expanded, then the regions' downstream lineage.
    groups = ("inputs", "phase01_regions", "phase02_aggregation", "phase03_tiles")
    expanded = ",".join(f"global@global:{g}" for g in groups)
    open_page(page, f"/asset-groups?expanded={expanded}")
    expect_graph_state(page, len(BACKFILL_REGIONS))
    screen.shot("4-global-lineage")
    open_page(page, "/assets/region_risk?view=lineage&lineageScope=downstream&lineageDepth=4")
    expect_graph_state(page, len(BACKFILL_REGIONS))
    screen.shot("5-region-lineage")


def test_c_materialize_dialog_launches_a_backfill_whose_fan_ins_follow(ui, screen, graphql_flow):
    """Clicked, not posted: the dialog's backfill runs, its products show "Unsynced" while the
    automation is off, and the automation, switched back on, rebuilds them."""
    with screen.explained():
        _click_a_backfill_and_follow_it(ui, screen)


def _click_a_backfill_and_follow_it(ui: UI, screen: Screen) -> None:
    page = screen.page
    lineage = "/assets/region_risk?view=lineage&lineageScope=downstream&lineageDepth=4"
    n_regions = len(BACKFILL_REGIONS) + len(CLICKED_REGIONS)
    set_automation(ui, running=False)
    try:
        flow = Flow(launch_backfill_by_clicking(screen, CLICKED_REGIONS), CLICKED_REGIONS)
        flow.wait_for_regions(ui)
        region_runs = [
            r for r in flow.runs if run_tags(r).get("dagster/backfill") == flow.backfill_id
        ]
        assert len(region_runs) == len(CLICKED_REGIONS)
        assert all(run_tags(r).get("dagster/from_ui") == "true" for r in region_runs)
        expect_backfill_succeeded(page, flow.backfill_id, CLICKED_REGIONS)
        screen.shot("7-clicked-backfill")

        stale = staleness(ui, CLICKED_REGIONS)
        for node in stale["regions"]:
            assert node["staleStatusByPartition"] == ["FRESH"] * len(CLICKED_REGIONS), node
        unsynced = {
            n["assetKey"]["path"][0] for n in stale["fanIns"] if n["staleStatus"] == "STALE"
        }
        # The fan-ins that read the regions directly are out of date now, at least (Dagster
        # compares direct parents only, so the tiles built from them are not marked).
        print(f"stale after the clicked backfill: {sorted(unsynced)}")
        assert {"buildings_geoparquet", "building_tile_features", "risk_pyramid"} <= unsynced
        open_page(page, lineage)
        expect_graph_state(page, n_regions, unsynced=unsynced)
        screen.shot("8-lineage-unsynced")
    finally:
        set_automation(ui, running=True)

    flow.wait_for_fan_ins(ui)
    runs = {r["runId"]: r for r in flow.runs}
    (fan_in_run,) = {m["runId"] for m in flow.fan_in_materializations.values()}
    assert from_automation(runs[fan_in_run]), run_tags(runs[fan_in_run])
    open_page(page, lineage)
    expect_graph_state(page, n_regions)
    screen.shot("9-lineage-rebuilt")
