"""What orchestration costs per partition, on the launch path every run takes.

Each case gets a fresh instance ($DAGSTER_HOME with the project's dagster.yaml) and storage
root, starts the Dagster daemon, submits the regions as one asset backfill (as the UI and
``ocr-dagster run`` do) and waits for it:

    python benchmarks/bench_orchestration.py [--demo] [--trivial N] [--regions-per-run K]

- ``--demo``: the 12 demo regions with real compute (inputs generated first, not timed), then
  the fan-in run the daemon launches; and the same fan-ins executed in one process the way the
  old CLI ran them (``aggregate_and_tile`` with the in-process executor), for the before/after
  of the parallel tile builds.
- ``--trivial N``: the first N CONUS region partitions (405 = all) with OCR_TRIVIAL_COMPUTE=1,
  so a region step does no work and the wall time is orchestration only; K regions per run
  (OCR_REGIONS_PER_RUN, default 8 here) spread each run's start-up cost.

Overhead per partition = (wall time − compute time / cores) / partitions, where compute time
is the sum of the region steps' own durations (STEP_START to STEP_SUCCESS) and cores = 2: what
the orchestration adds to the wall time beyond perfectly packed compute.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CORES = os.cpu_count() or 2


def _fresh_environment(base: Path, **env: str) -> None:
    for key in [k for k in os.environ if k.startswith("OCR_")]:
        del os.environ[key]
    os.environ["DAGSTER_HOME"] = str(base / "home")
    os.environ["OCR_STORAGE_ROOT"] = str(base / "root")
    os.environ.update(env)
    from ocr_resources.settings import reload_settings

    reload_settings()


def _step_seconds(instance, run_ids, step: str | None = None) -> float:
    total = 0.0
    for run_id in run_ids:
        starts = {}
        for record in instance.get_records_for_run(run_id).records:
            event = record.event_log_entry.dagster_event
            if event is None or (step and event.step_key != step):
                continue
            if event.event_type_value == "STEP_START":
                starts[event.step_key] = record.event_log_entry.timestamp
            elif event.event_type_value == "STEP_SUCCESS" and event.step_key in starts:
                total += record.event_log_entry.timestamp - starts.pop(event.step_key)
    return total


def _run_seconds(instance, run_id: str) -> float:
    """A finished run's wall time, start to end."""
    record = instance.get_run_record_by_id(run_id)
    assert record is not None and record.start_time and record.end_time, run_id
    return record.end_time - record.start_time


def _backfill(session, regions: list[str], label: str) -> None:
    """Backfill ``regions`` through the daemon, wait, print the overhead figures."""
    from ocr_assets.definitions import build_defs
    from ocr_assets.follow import Progress, backfill_runs, follow_backfill
    from ocr_assets.phase01_regions import REGION_BUILDINGS, REGION_RISK
    from ocr_core.grid import get_grid
    from ocr_resources.settings import current_settings

    defs = build_defs(current_settings())
    t0 = time.perf_counter()
    backfill_id = session.submit_region_backfill(
        defs, [REGION_RISK, REGION_BUILDINGS], regions, {"ocr/launched-by": "bench"}, "bench"
    )
    order = get_grid(current_settings().grid).valid_region_ids
    outcome = follow_backfill(session.instance, backfill_id, regions, order, Progress())
    wall = time.perf_counter() - t0
    if not outcome.ok:
        raise SystemExit(f"backfill failed: {outcome.failed or outcome.canceled}")
    run_ids = [r.run_id for r in backfill_runs(session.instance, backfill_id)]
    _report(label, len(regions), wall, _step_seconds(session.instance, run_ids))


def _report(label: str, n: int, wall: float, compute: float) -> None:
    overhead = (wall - compute / CORES) / n
    print(
        f"{label}: {n} partitions, wall {wall:.1f} s, compute {compute:.1f} s "
        f"(sum of region steps), overhead {overhead:.2f} s per partition",
        flush=True,
    )


def bench_demo(base: Path) -> None:
    from ocr_assets.definitions import automated_keys, build_defs
    from ocr_assets.follow import Progress, fan_in_runs, follow_fan_ins, follow_runs
    from ocr_assets.launch import Session
    from ocr_core.grid import get_grid
    from ocr_resources.settings import current_settings

    _fresh_environment(base)
    regions = list(get_grid("demo").valid_region_ids)
    with Session() as session:
        inputs = session.submit_job("generate_demo_inputs")
        if not follow_runs(session.instance, [inputs], "demo inputs", Progress()).ok:
            raise SystemExit("demo inputs failed")
        since = time.time()
        _backfill(session, regions, "demo regions (real compute)")
        keys = automated_keys(current_settings())
        if not follow_fan_ins(session.instance, keys, since, Progress()).ok:
            raise SystemExit("fan-ins failed")
        (run,) = [r for r in fan_in_runs(session.instance, keys, since)]
        daemon_wall = _run_seconds(session.instance, run.run_id)
        tiles = [
            _step_seconds(session.instance, [run.run_id], s)
            for s in ("building_pmtiles", "building_centroid_pmtiles")
        ]
        # the same job as below, launched by the daemon (one process per step, in parallel)
        job_run = session.submit_job("aggregate_and_tile")
        if not follow_runs(session.instance, [job_run], "aggregate_and_tile", Progress()).ok:
            raise SystemExit("aggregate_and_tile failed")
        launched = _run_seconds(session.instance, job_run)
    job = build_defs(current_settings()).resolve_job_def("aggregate_and_tile")
    import dagster as dg

    with dg.instance_for_test() as instance:
        t0 = time.perf_counter()
        result = job.execute_in_process(instance=instance, raise_on_error=False)
        in_process = time.perf_counter() - t0
    print(
        f"aggregate_and_tile: {in_process:.1f} s in one process, steps one after the other "
        f"(before, ok={result.success}); {launched:.1f} s launched by the daemon, one process "
        f"per step (after); the automation's fan-in run {daemon_wall:.1f} s with the analysis "
        f"files and pyramid too, building tiles {tiles[0]:.1f} s and centroid tiles "
        f"{tiles[1]:.1f} s side by side",
        flush=True,
    )


def bench_trivial(base: Path, n: int, per_run: int) -> None:
    from ocr_assets.launch import Session
    from ocr_core.grid import get_grid

    _fresh_environment(
        base,
        OCR_GRID="conus",
        OCR_TRIVIAL_COMPUTE="1",
        OCR_WRITE_REGIONAL_STATS="0",
        OCR_CREATE_PYRAMID="0",
        OCR_REGIONS_PER_RUN=str(per_run),
    )
    regions = list(get_grid("conus").valid_region_ids)[:n]
    with Session() as session:
        _backfill(session, regions, f"trivial compute (CONUS partitions, {per_run} per run)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--demo", action="store_true", help="the 12 demo regions, real compute")
    parser.add_argument("--trivial", type=int, default=0, help="N trivial CONUS partitions")
    parser.add_argument("--regions-per-run", type=int, default=8, help="K for --trivial")
    args = parser.parse_args(argv)
    if not args.demo and not args.trivial:
        args.demo, args.trivial = True, 405
    print(
        f"cores {CORES}; queue: see dagster.yaml (max_concurrent_runs, dequeue interval); "
        "executor: in-process for one-step runs",
        flush=True,
    )
    for name, enabled in (("demo", args.demo), ("trivial", args.trivial)):
        if not enabled:
            continue
        base = Path(tempfile.mkdtemp(prefix=f"ocr-bench-{name}-"))
        try:
            if name == "demo":
                bench_demo(base)
            else:
                bench_trivial(base, args.trivial, args.regions_per_run)
        finally:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    main()
