"""The Dagster UI's pages in headless Chromium for the UI check: a page per test with its
screenshots and errors, the UI's tables and lineage nodes, and the "Materialize" dialog."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from chromium import chromium
from playwright.sync_api import Page, ViewportSize, expect
from ui_flow import FAN_INS, N_REGIONS, REGION_KEYS
from ui_server import UI

# Wide enough that the lineage graphs fit at a zoom where Dagster draws full asset nodes
# (status, partitions, "Unsynced" tag) rather than bare names.
VIEWPORT: ViewportSize = {"width": 2560, "height": 1600}


@dataclass
class Screen:
    """The browser page of a test, where its screenshots go, and what the page threw."""

    page: Page
    shots: Path
    ui: UI
    errors: list[str] = field(default_factory=list)

    def shot(self, name: str) -> None:
        path = self.shots / f"{name}.png"
        self.page.screenshot(path=path)
        print(f"screenshot: {path}")

    @contextlib.contextmanager
    def explained(self):
        """On a failure inside: a screenshot, the page's errors and the servers' log tails."""
        try:
            yield
        except Exception:
            with contextlib.suppress(Exception):
                self.shot("failure")
            if self.errors:
                print("errors thrown in the page:\n" + "\n".join(self.errors))
            print(self.ui.log_tails())
            raise


@contextlib.contextmanager
def browsing(ui: UI, shots: Path) -> Iterator[Screen]:
    """A page of headless Chromium (the system's browser) on ``ui``'s webserver, its
    screenshots going to ``shots``."""
    ui.graphql("mutation { setNuxSeen }")  # no first-visit dialog in front of the pages
    with chromium() as browser:
        context = browser.new_context(viewport=VIEWPORT, base_url=ui.url)
        page = context.new_page()
        page.set_default_timeout(60_000)
        expect.set_options(timeout=60_000)
        screen = Screen(page=page, shots=shots, ui=ui)
        page.on("pageerror", lambda exc: screen.errors.append(str(exc)))
        yield screen


def open_page(page: Page, path: str) -> None:
    page.goto(path)
    page.wait_for_load_state("networkidle")
    # A modal (first-visit notice, community invitation) would hide what is checked below.
    expect(page.get_by_role("dialog")).to_have_count(0)


def expect_backfill_succeeded(page: Page, backfill_id: str, partitions) -> None:
    """The backfill page: status Succeeded, its partitions, each region asset 100 % done."""
    open_page(page, f"/runs/b/{backfill_id}")
    expect(page.get_by_text(re.compile(rf"/\s*{backfill_id}$"))).to_be_visible()  # breadcrumb
    status = page.get_by_text("Status", exact=True).locator("xpath=..")
    expect(status).to_contain_text("Succeeded")
    selection = page.get_by_text("Partition selection", exact=True).locator("xpath=..")
    for rid in partitions:
        expect(selection.get_by_text(rid, exact=True)).to_be_visible()
    n = str(len(partitions))
    for key in REGION_KEYS:  # asset and progress, partitions targeted / in progress / done / failed
        cells = table_row(page, f"/assets/{key}").locator('[class*="VirtualizedTable_cellBox__"]')
        expect(cells).to_have_text([re.compile(r"100% completed"), n, "0", n, "0"])


def wait_for_inner_text(locator, pattern: str, timeout_s: float = 60) -> str:
    """``locator``'s rendered text once it matches ``pattern`` (``expect`` matches the raw
    text content, where table cells run together)."""
    deadline = time.monotonic() + timeout_s
    while True:
        text = locator.inner_text()
        if re.search(pattern, text):
            return text
        if time.monotonic() > deadline:
            raise AssertionError(f"{pattern!r} not shown in {text!r}")
        locator.page.wait_for_timeout(500)


def table_row(page: Page, href: str):
    """The row of one of the UI's (virtualized, role-less) tables that links to ``href``."""
    return page.locator('[class*="VirtualizedTable_row__"]').filter(
        has=page.locator(f'a[href="{href}"]')
    )


def asset_node(page: Page, key: str):
    """The full node of asset ``key`` in a lineage graph (each node is a foreignObject)."""
    return page.locator("foreignObject").filter(has=page.get_by_text(key, exact=True))


def expect_graph_state(page: Page, n_materialized: int, unsynced: Collection[str] = ()):
    """Every fan-in drawn materialized, the regions with their share of partitions, and the
    "Unsynced" tag on exactly the assets in ``unsynced``."""
    for key in (*REGION_KEYS, *FAN_INS):
        node = asset_node(page, key)
        expect(node).to_have_count(1)
        expect(node).not_to_contain_text("Loading")
    for key in FAN_INS:
        expect(asset_node(page, key)).to_contain_text("Materialized")
    for key in REGION_KEYS:
        filled = n_materialized * 100 // N_REGIONS
        expect(asset_node(page, key)).to_contain_text(f"{filled}% filled")
    page.wait_for_load_state("networkidle")  # the staleness arrives with the live data
    for key in (*REGION_KEYS, *FAN_INS):
        marker = asset_node(page, key).get_by_text(re.compile(r"^(Unsynced|Stale)\b"))
        if key in unsynced:
            expect(marker).to_be_visible()
        else:
            expect(marker).to_have_count(0)


def launch_backfill_by_clicking(screen: Screen, partitions) -> str:
    """Materialize… on region_risk, the partitions picked from the list, Launch backfill;
    the id from the toast, whose View opens the backfill's page."""
    page = screen.page
    open_page(page, "/assets/region_risk")
    page.get_by_role("button", name="Materialize…").click()
    # The region step cannot be subset: the UI says region_buildings comes along.
    notice = page.get_by_role("dialog").filter(has_text="Additional assets will be materialized")
    expect(notice).to_contain_text("region_buildings")
    notice.get_by_role("button", name="Confirm").click()
    launch = page.get_by_role("dialog").filter(has_text="Launch runs to materialize 2 assets")
    # The inputs were generated outside this instance, so the UI warns they were never
    # materialized here; the regions read them all the same.
    upstream = page.get_by_role("dialog").filter(has_text="Are you sure?")
    expect(launch.or_(upstream)).to_be_visible()
    if upstream.is_visible():
        upstream.get_by_role("button", name="Confirm").click()
    expect(launch).to_be_visible()
    launch.get_by_text("Select a partition or create one").click()
    for rid in partitions:
        # The list re-renders while partition statuses load, so the item may never hold still
        # for Playwright's stability wait; the partition count below checks what was chosen.
        page.get_by_role("menuitem", name=re.compile(rf"^{rid}\b")).click(force=True)
    launch.get_by_text("Launch runs to materialize 2 assets").click()  # closes the list
    expect(launch).to_contain_text(f"{len(partitions)} partitions")
    screen.shot("6-materialize-dialog")
    launch.get_by_role("button", name="Launch backfill").click()
    notifications = page.get_by_role("region", name=re.compile("Notifications"))
    toast = notifications.get_by_text(re.compile(r"Created backfill \w+"))
    expect(toast).to_be_visible()
    created = re.search(r"Created backfill (\w+)", toast.inner_text())
    assert created, toast.inner_text()
    backfill_id = created.group(1)
    notifications.get_by_role("link", name="View", exact=True).click()  # an AnchorButton
    expect(page).to_have_url(re.compile(rf"/runs/b/{backfill_id}"))
    return backfill_id
