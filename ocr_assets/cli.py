"""Command line: run the graph for an environment, or the whole demo, and report the outputs.

    python -m ocr_assets.cli demo [--regions y1_x1 ...]      # inputs + every phase, then summary
    python -m ocr_assets.cli run (--regions ... | --all-regions) [--write-regional-stats]
                                 [--create-pyramid] [--concurrency N]
    python -m ocr_assets.cli region y2_x1                    # one region partition (one run)
    python -m ocr_assets.cli summary
    ocr-dagster check-inputs                                 # every input of OCR_GRID, checked

Every step is a Dagster run in the instance at $DAGSTER_HOME, so the UI shows them. Regions
run as separate processes, a few at a time; each retries on its own (RetryPolicy), and the
aggregation starts only when every requested region succeeded. Nothing is fire-and-forget.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from ocr_core.grid import get_grid
from ocr_resources.settings import PROJECT_DIR, SettingsError, current_settings

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def _instance():
    import dagster as dg

    home = os.environ.setdefault("DAGSTER_HOME", str(PROJECT_DIR / ".dagster_home"))
    os.makedirs(home, exist_ok=True)
    return dg.DagsterInstance.get()


def _run_job(name: str, **kwargs) -> bool:
    """Execute one job of the code location in this process; print one line about it."""
    from ocr_assets.definitions import defs

    job = defs.resolve_job_def(name)
    label = kwargs.get("partition_key", "")
    t0 = time.perf_counter()
    result = job.execute_in_process(
        instance=_instance(), raise_on_error=False, run_config=QUIET, **kwargs
    )
    took = time.perf_counter() - t0
    if result.success:
        print(f"  {name} {label} ok ({took:.1f} s)", flush=True)
        return True
    print(f"  {name} {label} FAILED after {took:.1f} s", file=sys.stderr, flush=True)
    for event in result.all_events:
        data = event.event_specific_data
        error = getattr(data, "error", None)
        if event.event_type_value in ("STEP_FAILURE", "RUN_FAILURE") and error:
            print(f"    {error.message.strip().splitlines()[0]}", file=sys.stderr)
        if event.event_type_value == "ASSET_CHECK_EVALUATION" and not data.passed:
            print(f"    check failed: {data.check_name}", file=sys.stderr)
    return False


def _run_region_processes(regions: list[str], concurrency: int) -> list[str]:
    """One process (one Dagster run) per region, ``concurrency`` at a time; failed ids."""

    def one(rid: str) -> tuple[str, int]:
        proc = subprocess.run([sys.executable, "-m", "ocr_assets.cli", "region", rid])
        return rid, proc.returncode

    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        results = list(pool.map(one, regions))
    return [rid for rid, code in results if code != 0]


def run(regions: list[str], regional_stats: bool, pyramid: bool, concurrency: int) -> None:
    grid = get_grid(current_settings().grid)

    for rid in regions:
        grid.validate_region_id(rid)
    s = current_settings()
    print(
        f"Phase 01: {len(regions)} region(s), {concurrency} at a time "
        f"(environment={s.environment}, platform={s.platform})",
        flush=True,
    )
    failed = _run_region_processes(regions, concurrency)
    if failed:
        raise SystemExit(
            f"error: {len(failed)} region(s) failed: {', '.join(failed)}; "
            "nothing downstream was run. Rerun them with the same command."
        )
    print("Phase 02/03: aggregation and tiles ...", flush=True)
    steps = ["aggregate_and_tile"]
    if regional_stats:
        steps.append("write_regional_stats")
    if pyramid:
        steps.append("create_pyramid")
    for name in steps:
        if not _run_job(name):
            raise SystemExit(f"error: {name} failed; see the run in the Dagster UI")


def demo(regions: list[str] | None, concurrency: int) -> None:
    grid = get_grid(current_settings().grid)

    selected = regions or list(grid.valid_region_ids)
    for rid in selected:
        grid.validate_region_id(rid)
    s = current_settings()
    print(
        f"OCR demo: grid={grid.name} environment={s.environment} storage={s.storage_root} "
        f"DAGSTER_HOME={_instance().root_directory}",
        flush=True,
    )
    if grid.name == "demo":
        print("Generating demo inputs ...", flush=True)
        if not _run_job("generate_demo_inputs"):
            raise SystemExit(1)
    run(selected, regional_stats=True, pyramid=True, concurrency=concurrency)
    summary()


def summary() -> None:
    """Print where every output is, with counts and sizes."""
    from ocr_core.report import outputs_report
    from ocr_core.storage import Storage

    s = current_settings()
    storage = Storage(s.storage_root, s.environment, s.version, s.s3_endpoint_url, s.s3_region)
    print(outputs_report(storage, s.grid))
    print(
        "\nOpen the Dagster UI with `./dev ui` (http://127.0.0.1:3000) to browse lineage, "
        "metadata, checks and previews."
    )


def check_inputs() -> int:
    """Print one row per input dataset of the active grid, then one line per problem; the exit
    status is 1 if there is any problem."""
    from ocr_core.catalog import InputCatalog
    from ocr_core.grid import get_grid
    from ocr_core.input_checks import check_inputs as run_checks
    from ocr_core.storage import Storage

    s = current_settings()
    grid = get_grid(s.grid)
    catalog = InputCatalog(
        Storage(s.inputs_root, s3_endpoint_url=s.s3_endpoint_url, s3_region=s.s3_region)
    )
    print(f"Inputs of the {grid.name} grid under {s.inputs_root}", flush=True)
    reports = run_checks(catalog, grid)
    for r in reports:
        ranges = ", ".join(f"{v} [{_num(lo)}, {_num(hi)}]" for v, (lo, hi) in r.ranges.items())
        print(
            " | ".join(
                [
                    f"{'ok ' if r.ok else 'BAD'} {r.name}",
                    r.uri,
                    f"CRS {r.crs or '-'} ({r.crs_found_in or 'not found'})",
                    r.alignment or "-",
                    f"variables {','.join(r.variables) or '-'}",
                    f"dtype {','.join(sorted(set(r.dtypes.values()))) or '-'}",
                    f"chunks {_chunks(r.chunks)}",
                    f"rows {r.rows}" if r.rows is not None else f"sample {r.sample or '-'}",
                    f"ranges {ranges or '-'}",
                ]
            )
        )
    problems = [p for r in reports for p in r.problems]
    for p in problems:
        print(f"problem: {p.line()}", file=sys.stderr)
    print(
        f"{len(reports)} datasets, {len(problems)} problem(s)",
        file=sys.stderr if problems else sys.stdout,
    )
    return 1 if problems else 0


def _num(value) -> str:
    return "-" if value is None else f"{value:.6g}"


def _chunks(chunks: dict[str, list[int]]) -> str:
    shapes = sorted({"×".join(map(str, c)) for c in chunks.values()})
    return ",".join(shapes) or "-"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="ocr-dagster", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_demo = sub.add_parser("demo", help="generate demo inputs and materialize the whole graph")
    p_demo.add_argument("--regions", nargs="*", help="region ids (default: all valid ids)")
    p_demo.add_argument("--concurrency", type=int, default=2, help="regions run at once")
    p_run = sub.add_parser("run", help="materialize the graph for the configured environment")
    which = p_run.add_mutually_exclusive_group(required=True)
    which.add_argument("--regions", nargs="+", help="region ids to (re)process")
    which.add_argument("--all-regions", action="store_true", help="every valid region id")
    p_run.add_argument(
        "--write-regional-stats",
        action="store_true",
        help="also write the CSV/GeoJSON/GeoParquet analysis files",
    )
    p_run.add_argument("--create-pyramid", action="store_true", help="also build the pyramid")
    p_run.add_argument("--concurrency", type=int, default=4, help="regions run at once")
    p_region = sub.add_parser("region", help="materialize one region partition")
    p_region.add_argument("region_id")
    sub.add_parser("summary", help="list the outputs and where they are")
    sub.add_parser(
        "check-inputs",
        help="open every input of the grid and check CRS, alignment, variables and values",
    )
    args = parser.parse_args(argv)
    try:
        if args.command == "demo":
            demo(args.regions, args.concurrency)
        elif args.command == "run":
            grid = get_grid(current_settings().grid)

            regions = list(grid.valid_region_ids) if args.all_regions else args.regions
            run(regions, args.write_regional_stats, args.create_pyramid, args.concurrency)
        elif args.command == "region":
            grid = get_grid(current_settings().grid)

            grid.validate_region_id(args.region_id)
            if not _run_job("process_regions", partition_key=args.region_id):
                raise SystemExit(1)
        elif args.command == "check-inputs":
            raise SystemExit(check_inputs())
        else:
            summary()
    except (SettingsError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
