"""One command's work through the Dagster instance: submit, follow, cancel on interrupt.

A ``Pipeline`` is what ``ocr-dagster demo``, ``run`` and ``region`` do inside a ``Session``:
queue a job (the demo inputs, the input observation), backfill the regions, then wait for the
fan-ins the daemon materializes after them, writing one line per step and per failure.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from ocr_assets.follow import (
    Outcome,
    Progress,
    backfill_runs,
    fan_in_runs,
    follow_backfill,
    follow_fan_ins,
    follow_runs,
)
from ocr_resources.settings import current_settings


def current_defs():
    """The definitions of this process's settings (what the code location serves)."""
    from ocr_assets.definitions import build_defs

    return build_defs(current_settings())


class Pipeline:
    """One command's work through the instance: submit, follow, cancel on interrupt; steps are
    written to ``out`` and failures to ``err`` (default: this process's stdout and stderr)."""

    def __init__(
        self,
        session,
        tags: dict[str, str] | None = None,
        out: TextIO | None = None,
        err: TextIO | None = None,
    ):
        self.session = session
        self.instance = session.instance
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.progress = Progress()
        self.backfill_id: str | None = None
        self.run_ids: list[str] = []
        self.started: float | None = None  # when the regions were submitted
        s = current_settings()
        self.tags = {"ocr/environment": s.environment, "ocr/launched-by": "ocr-dagster"}
        self.tags |= tags or {}

    def _say(self, text: str, failure: bool = False) -> None:
        print(text, file=self.err if failure else self.out, flush=True)

    def _report(self, outcome: Outcome) -> bool:
        for line in outcome.failed.values():
            self._say(f"FAILED {line}", failure=True)
        if outcome.canceled:
            self._say(f"canceled: {', '.join(outcome.canceled)}", failure=True)
        return outcome.ok

    def job(self, name: str, label: str, tags: dict[str, str] | None = None) -> bool:
        run_id = self.session.submit_job(name, self.tags | (tags or {}))
        self.run_ids.append(run_id)
        self._say(f"{label} (run {run_id[:8]}) ...")
        return self._report(follow_runs(self.instance, [run_id], label, self.progress))

    def observe(self, regions: list[str]) -> bool:
        from ocr_assets.phase01_regions import OBSERVE_REGIONS_TAG

        return self.job(
            "observe_region_inputs",
            f"Reading the input identity of {len(regions)} region(s)",
            {OBSERVE_REGIONS_TAG: ",".join(regions)},
        )

    def regions(self, regions: list[str]) -> bool:
        from ocr_assets.phase01_regions import REGION_BUILDINGS, REGION_RISK
        from ocr_core.grid import get_grid

        t0 = self.started = time.time()
        backfill_id = self.backfill_id = self.session.submit_region_backfill(
            current_defs(),
            [REGION_RISK, REGION_BUILDINGS],
            regions,
            self.tags,
            title=f"ocr-dagster: {len(regions)} region(s)",
        )
        self._say(
            f"Phase 01: backfill {backfill_id} of {len(regions)} region(s); the daemon runs "
            "them within the queue limits of dagster.yaml"
        )
        order = get_grid(current_settings().grid).valid_region_ids
        outcome = follow_backfill(self.instance, backfill_id, regions, order, self.progress)
        self.run_ids += [r.run_id for r in backfill_runs(self.instance, backfill_id)]
        self._say(
            f"  {len(outcome.done)} region(s) done, {len(outcome.failed)} failed "
            f"({time.time() - t0:.0f} s)"
        )
        ok = self._report(outcome)
        if not ok:
            self._say(
                "The fan-ins wait until every region of the environment has succeeded. Fix the "
                "cause above, then rerun: ocr-dagster run --regions "
                + " ".join(sorted(outcome.failed.keys() - {"backfill"} | set(outcome.canceled))),
                failure=True,
            )
        return ok

    def fan_ins(self, since: float) -> bool:
        from ocr_assets.definitions import automated_keys

        keys = automated_keys(current_settings())
        self._say(
            f"Phase 02/03: the daemon materializes {len(keys)} fan-in asset(s) "
            "(statistics, tiles, ...) ..."
        )
        t0 = time.time()
        try:
            outcome = follow_fan_ins(self.instance, keys, since, self.progress)
        finally:
            self.run_ids += [r.run_id for r in fan_in_runs(self.instance, keys, since)]
        self._say(f"  {len(outcome.done)}/{len(keys)} done ({time.time() - t0:.0f} s)")
        return self._report(outcome)

    def cancel(self) -> None:
        from ocr_assets.definitions import automated_keys

        self.progress.end()
        if self.started is not None:  # fan-ins the daemon launched for this command
            keys = automated_keys(current_settings())
            self.run_ids += [r.run_id for r in fan_in_runs(self.instance, keys, self.started)]
        n = self.session.cancel(self.backfill_id, self.run_ids)
        self._say(f"Interrupted: canceled {n} run(s) and the backfill.", failure=True)
