"""Fault injection for the fault suite (``./dev bench faults``, ``tests/test_faults.py``).

Off unless ``OCR_FAULTS`` holds a JSON plan, and refused outright in staging and production
(``OCR_ENVIRONMENT``): there the first fault point raises instead of running. A plan:

    {"transient_regions": ["y5_x14"],  # first attempt(s) of these regions: a transient error
     "transient_attempts": {"y5_x14": 2},  # how many first attempts fail (default 1)
     "permanent_regions": ["y6_x14"],  # every attempt of these regions: bad input
     "corrupt_regions": {"y5_x14": {"bp_2011": 1.5}},  # a computed value out of range
     "hold_regions": {"y5_x14": "/tmp/hold"},  # attempts wait while this file exists
     "kill": {"point": "publish.upload", "at": 2}}  # SIGKILL the 3rd time the point is hit

Points are named where outputs are staged and published (``ocr_core.publish``) and where a
region attempt starts; ``point`` costs one dictionary lookup when no plan is set.
"""

from __future__ import annotations

import json
import os
import signal
import time

from ocr_core.errors import TransientInputError

VARIABLE = "OCR_FAULTS"
REFUSED_IN = ("staging", "production")
HOLD_LIMIT_S = 600  # a held attempt goes on after this, so a forgotten file cannot hang a run

_hits: dict[str, int] = {}


class FaultSwitchError(RuntimeError):
    """The fault switch is set where it must never be."""


def plan() -> dict:
    raw = os.environ.get(VARIABLE, "").strip()
    if not raw:
        return {}
    environment = os.environ.get("OCR_ENVIRONMENT", "qa").strip() or "qa"
    if environment in REFUSED_IN:
        raise FaultSwitchError(
            f"{VARIABLE} is set in OCR_ENVIRONMENT={environment}: fault injection is for "
            "tests only and refused in staging and production. Fix: unset OCR_FAULTS."
        )
    return json.loads(raw)


def point(name: str) -> None:
    """Kill this process here if the plan says so (the ``at``-th time, counting from 0)."""
    if VARIABLE not in os.environ:
        return
    kill = plan().get("kill")
    if not kill or kill.get("point") != name:
        return
    seen = _hits.get(name, 0)
    _hits[name] = seen + 1
    if seen == int(kill.get("at", 0)):
        os.kill(os.getpid(), signal.SIGKILL)


def region_attempt(region_id: str, retry_number: int) -> None:
    """Hold or fail a region attempt as the plan says: held while the plan's file exists (so a
    test can signal a run mid-step), transient on the first attempt(s), or always failing."""
    from ocr_core.errors import InputDataError

    if VARIABLE not in os.environ:
        return
    p = plan()
    hold = p.get("hold_regions", {}).get(region_id)
    deadline = time.monotonic() + HOLD_LIMIT_S
    while hold and os.path.exists(hold) and time.monotonic() < deadline:
        time.sleep(0.1)
    if region_id in p.get("permanent_regions", ()):
        raise InputDataError(
            f"region {region_id}: injected permanent failure (OCR_FAULTS). Fix: unset OCR_FAULTS."
        )
    failing = p.get("transient_attempts", {}).get(region_id, 1)
    if region_id in p.get("transient_regions", ()) and retry_number < failing:
        raise TransientInputError(f"region {region_id}: injected transient failure (OCR_FAULTS)")


def corrupt_outputs(region_id: str, arrays: dict) -> None:
    """Overwrite one computed pixel per variable as the plan says (a stand-in for a bug)."""
    import numpy as np

    if VARIABLE not in os.environ:
        return
    for var, value in plan().get("corrupt_regions", {}).get(region_id, {}).items():
        finite = np.flatnonzero(np.isfinite(arrays[var]))
        if finite.size:
            arrays[var].flat[finite[0]] = value
