"""The fault suite: transient and permanent failures, kill -9 at random points, bad inputs,
concurrent writers, S3, idempotency — each case checks what readers see afterwards.

Shared by ``tests/test_faults.py`` (part of ``.ci/run``) and ``./dev bench faults`` (prints
the figures). Every case starts from a fully published demo (a few regions and every
product) and compares each published output, by content digest, with what it was before and
with what a clean run makes. Per case: ``lost`` counts outputs that vanished, ``corrupted``
those that are neither the old nor the new complete version (or differ after a clean rerun),
``stuck`` processes or runs that never finished, ``orphans`` files left behind (stage
folders, hidden files in published folders, S3 versions no pointer names, unfinished
multipart uploads) once a rerun has completed.

This module holds the kill trials, the concurrency and S3 categories and the run; the record
and the published state are in tests/fault_state.py, the work root and its step processes in
tests/fault_workspace.py, the retry and idempotency categories in tests/fault_dagster.py and
the bad inputs in tests/fault_bad_inputs.py.
"""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path
from typing import Any

from fault_bad_inputs import bad_input_category
from fault_dagster import idempotency_category, retry_category
from fault_state import REGIONS, Case, Category, compare, orphans, published
from fault_workspace import Workspace, belongs, clean_states, copy_root, finish, prepare_step

# --- kill -9 ---------------------------------------------------------------------------------
KILL_POINTS = ("publish.before", "publish.exchanged", "publish.after", "publish.upload",
               "publish.pointer")  # fmt: skip


def kill_trials(
    ws: Workspace,
    storage,
    category: Category,
    steps: tuple[str, ...],
    trials: int,
    rng: random.Random,
    clean: dict[str, dict],
    seconds: dict[str, float],
) -> None:
    """``trials`` kills spread over ``steps``, each switching the inputs' version so old and
    new outputs differ; half at a named point of the publication, half after a random delay
    within the step's clean duration. Then a clean rerun must give the new version exactly and
    leave no orphan."""
    kwargs: dict[str, Any]
    for i in range(trials):
        step = steps[i % len(steps)]
        region = rng.choice(REGIONS) if step == "region" else None
        unit = region or "fan-ins"
        version = ws.versions.get((storage.root, unit), "A")
        target = "B" if version == "A" else "A"
        prepare_step(ws, storage, step, target)
        before = published(storage)
        new = {
            k: v
            for k, v in clean[target].items()
            if belongs(k, step) and (region is None or k.endswith(region))
        }
        if i % 2 == 0:
            point = rng.choice(KILL_POINTS)
            at = rng.randrange(3)
            how, kwargs = f"at {point}#{at}", {"faults": {"kill": {"point": point, "at": at}}}
        else:
            delay = rng.uniform(0.1, max(0.2, seconds[step]))
            how, kwargs = f"after {delay:.2f} s", {"kill_after": delay}
        label = f"{step} {region}" if region else step
        case = category.add(Case(category.name, f"{label} killed {how}"))
        regions = (region,) if region else REGIONS
        code, _ = ws.step(step, storage.root, target, regions=regions, **kwargs)
        after_kill = published(storage)
        lost, corrupted = compare(before, after_kill, new)
        rerun, _ = ws.step(step, storage.root, target, regions=regions)
        final = published(storage)
        wrong = sum(1 for k, v in new.items() if final.get(k) != v)
        case.lost, case.corrupted = lost, corrupted + wrong
        case.stuck = int(code is None or rerun is None)
        case.orphans = len(orphans(storage))
        case.note = "killed" if code == -signal.SIGKILL else "finished before the kill"
        case.passed = not (case.lost or case.corrupted or case.stuck or case.orphans)
        ws.versions[(storage.root, unit)] = target


def concurrency_category(ws: Workspace, clean: dict[str, dict]) -> Category:
    """Two writers of one environment at once (each product whole, the same as a clean run,
    nothing left behind), and two environments side by side (each its own outputs)."""
    from ocr_core.storage import Storage

    cat = Category("concurrency")
    root = copy_root(ws, "concurrency")
    for step in ("consolidate", "tiles"):
        case = cat.add(Case(cat.name, f"two {step} writers, one environment"))
        prepare_step(ws, Storage(root), step, "B")
        procs = [ws.start(step, root, "B") for _ in range(2)]
        codes = [finish(p, step) for p in procs]
        after = published(Storage(root))
        new = {k: v for k, v in clean["B"].items() if belongs(k, step)}
        case.lost, case.corrupted = compare(new, after)
        case.stuck = codes.count(None)
        case.orphans = len(orphans(Storage(root)))
        case.passed = codes == [0, 0] and not (case.lost or case.corrupted or case.orphans)
    case = cat.add(Case(cat.name, "qa and staging side by side"))
    chains = {"qa": "B", "staging": "A"}
    procs = {env: ws.start("region", root, v, OCR_ENVIRONMENT=env) for env, v in chains.items()}
    codes = [finish(p, "region") for p in procs.values()]
    procs = {
        env: ws.start("consolidate", root, v, OCR_ENVIRONMENT=env) for env, v in chains.items()
    }
    codes += [finish(p, "consolidate") for p in procs.values()]
    for env, version in chains.items():
        storage = Storage(root, environment=env)
        after = published(storage)
        new = {
            k: v
            for k, v in clean[version].items()
            if k.startswith(("region", "raster", "cons", "hive"))
        }
        lost, corrupted = compare(new, after)
        case.lost += lost
        case.corrupted += corrupted
        case.orphans += len(orphans(storage))
    case.stuck = codes.count(None)
    case.passed = codes == [0] * 4 and not (case.lost or case.corrupted or case.orphans)
    return cat


def s3_category(
    ws: Workspace, endpoint: str, bucket: str, clean: dict[str, dict], trials: int, rng
) -> Category:
    """The consolidation and statistics on an S3 root (the loopback server): kills mid-upload
    of a folder's files, before the pointer swap, and at random times; readers see the old or
    the new complete version; a rerun completes and leaves nothing behind."""
    from ocr_core.storage import Storage

    cat = Category("s3")
    storage = Storage(f"{bucket}/faults", s3_endpoint_url=endpoint, s3_region="us-east-1")
    env = {"OCR_S3_ENDPOINT_URL": endpoint}
    ws.env.update(env)
    try:
        for step in ("region", "consolidate", "summary"):
            if ws.step(step, storage.root, "A")[0] != 0:
                raise RuntimeError(f"{step} on S3 did not finish")
        points = ("publish.upload", "publish.upload", "publish.pointer")
        kwargs: dict[str, Any]
        for i in range(trials):
            step = ("consolidate", "summary")[i % 2]
            unit = (storage.root, step)
            target = "B" if ws.versions.get(unit, "A") == "A" else "A"
            prepare_step(ws, storage, step, target)
            before = published(storage)
            if i % 3 == 2:
                delay = rng.uniform(0.3, 2.5)
                how, kwargs = f"after {delay:.2f} s", {"kill_after": delay}
            else:
                point, at = points[i % 3], rng.randrange(1, 4)
                how, kwargs = f"at {point}#{at}", {"faults": {"kill": {"point": point, "at": at}}}
            case = cat.add(Case(cat.name, f"{step} killed {how}"))
            new = {k: v for k, v in clean[target].items() if belongs(k, step)}
            code, _ = ws.step(step, storage.root, target, **kwargs)
            case.lost, case.corrupted = compare(before, published(storage), new)
            rerun, _ = ws.step(step, storage.root, target)
            final = published(storage)
            case.corrupted += sum(1 for k, v in new.items() if final.get(k) != v)
            case.stuck = int(code is None or rerun is None)
            case.orphans = len(orphans(storage))
            case.note = "killed" if code == -signal.SIGKILL else "finished before the kill"
            case.passed = not (case.lost or case.corrupted or case.stuck or case.orphans)
            ws.versions[unit] = target
    finally:
        for key in env:
            ws.env.pop(key, None)
    return cat


def summary_line(categories: list[Category]) -> str:
    cases = [c for cat in categories for c in cat.cases]
    total = lambda attr: sum(getattr(c, attr) for c in cases)  # noqa: E731
    return (
        f"faults: cases={len(cases)} passed={sum(c.passed for c in cases)} lost={total('lost')} "
        f"corrupted={total('corrupted')} stuck={total('stuck')} orphans={total('orphans')}"
    )


def table(categories: list[Category]) -> str:
    head = f"{'category':<16} {'cases':>5} {'passed':>6} {'lost':>4} {'corrupted':>9} " \
           f"{'stuck':>5} {'orphans':>7}"  # fmt: skip
    rows = [head, "-" * len(head)]
    for cat in categories:
        c = cat.cases
        rows.append(
            f"{cat.name:<16} {len(c):>5} {sum(x.passed for x in c):>6} "
            f"{sum(x.lost for x in c):>4} {sum(x.corrupted for x in c):>9} "
            f"{sum(x.stuck for x in c):>5} {sum(x.orphans for x in c):>7}"
        )
    kills = [x for cat in categories for x in cat.cases if " killed " in x.name]
    killed = sum(x.note == "killed" for x in kills)
    rows.append(f"kill trials: {killed} killed mid-step, {len(kills) - killed} finished first")
    failed = [x for cat in categories for x in cat.cases if not x.passed]
    rows += [f"FAILED {x.category}: {x.name} ({x.note})" for x in failed]
    return "\n".join([*rows, summary_line(categories)])


# --- the suite ---------------------------------------------------------------------------------
def run_suite(base: Path, endpoint: str, bucket: str, kills: int = 10, seed: int = 10,
              inputs: Path | None = None, log=print) -> list[Category]:  # fmt: skip
    """Every category; ``kills`` kill trials each for region writes, consolidation and tiles."""
    from ocr_core.storage import Storage

    rng = random.Random(seed)
    ws = Workspace(base)
    started = time.monotonic()
    ws.make_inputs(inputs)
    clean, seconds = clean_states(ws, Storage)
    log(f"set-up {time.monotonic() - started:.0f} s (clean runs per step: {seconds})")
    categories = []
    kill_categories = {
        "kill: regions": ("region",),
        "kill: aggregation": ("consolidate", "summary"),
        "kill: tiles": ("tiles",),
    }
    for name, steps in kill_categories.items():
        t0 = time.monotonic()
        cat = Category(name)
        storage = Storage(copy_root(ws, name.replace(": ", "-")))
        kill_trials(ws, storage, cat, steps, kills, rng, clean, seconds)
        categories.append(cat)
        log(f"{name}: {time.monotonic() - t0:.0f} s")
    for make in (
        lambda: retry_category(ws),
        lambda: bad_input_category(ws),
        lambda: concurrency_category(ws, clean),
        lambda: s3_category(ws, endpoint, bucket, clean, 6, rng),
        lambda: idempotency_category(ws),
    ):
        t0 = time.monotonic()
        categories.append(make())
        log(f"{categories[-1].name}: {time.monotonic() - t0:.0f} s")
    return categories
