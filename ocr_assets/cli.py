"""Command line: submit the graph's work to the Dagster instance, follow it, report the outputs.

    ocr-dagster demo [--regions y1_x1 ...]        # demo inputs, every region, then the fan-ins
    ocr-dagster run (--regions ... | --all-regions | --changed)
                    [--write-regional-stats] [--create-pyramid]
    ocr-dagster region y2_x1                      # one region (and the fan-ins after it)
    ocr-dagster status                            # which regions and products are stale
    ocr-dagster summary                           # where every output is
    ocr-dagster check-inputs                      # every input of OCR_GRID, checked
    ocr-dagster map [--port 3100]                 # the published outputs as a local web map
    ocr-dagster deploy plan [--event-name N] [--event-path P]   # what a GitHub event deploys
    ocr-dagster deploy wipe --environment E [--namespace NS]    # delete one namespace's outputs
    ocr-dagster deploy serve code-server|daemon|webserver       # one service of a deployment
    ocr-dagster deploy run --dagster-url URL --environment E --regions R...  # deploy through it

Nothing runs in this process: jobs are queued with the instance at $DAGSTER_HOME, regions are
one asset backfill, and the Dagster daemon (started here if none is running) launches every
run within the queue limits of ``dagster.yaml`` and, once the regions are done, the fan-ins.
The command shows progress, waits for the end, prints one line per failure and exits non-zero
if anything failed; Ctrl-C cancels the runs it started.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Callable

from ocr_assets.cli_parser import build_parser
from ocr_assets.follow import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    Interrupted,
    raise_interrupted,
)
from ocr_assets.pipeline import Pipeline, current_defs
from ocr_core.storage import StorageError
from ocr_deploy.graphql import DeployError
from ocr_resources.settings import SettingsError, current_settings


def check_roots(write_outputs: bool = True, write_inputs: bool = False) -> None:
    """The roots usable before anything is submitted (StorageError: one line naming the
    variable); the S3 input root is left to the steps that read it."""
    current_settings().storage().check_reachable(writable=write_outputs)
    inputs = current_settings().input_storage()
    if not inputs.is_s3:
        inputs.check_reachable(writable=write_inputs)


def _follow(work: Callable[[Pipeline], bool], tags: dict[str, str] | None = None) -> int:
    """Run ``work(pipeline)`` in a session (``tags`` on every run it submits); the exit status
    (130 on Ctrl-C or SIGTERM)."""
    from ocr_assets.launch import LaunchError, Session

    previous = signal.signal(signal.SIGTERM, raise_interrupted)
    signal.signal(signal.SIGINT, raise_interrupted)
    try:
        with Session() as session:
            pipeline = Pipeline(session, tags)
            try:
                return 0 if work(pipeline) else EXIT_FAILED
            except Interrupted:
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
                pipeline.cancel()
                return EXIT_INTERRUPTED
    except LaunchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, signal.default_int_handler)


def run_regions(regions: list[str], observe: bool = True, tags: dict | None = None) -> int:
    """Observe, backfill ``regions``, then wait for the fan-ins the daemon materializes."""

    def work(p: Pipeline) -> bool:
        if observe and not p.observe(regions):
            return False
        since = time.time()
        return p.regions(regions) and p.fan_ins(since)

    return _follow(work, tags)


def run_changed(tags: dict | None = None) -> int:
    """Observe every region's inputs, then rerun exactly the stale or missing regions (and the
    fan-ins after them); with no region to rerun, the stale fan-ins alone."""
    from ocr_assets.staleness import pipeline_status
    from ocr_core.grid import get_grid

    everything = list(get_grid(current_settings().grid).valid_region_ids)

    def work(p: Pipeline) -> bool:
        if not p.observe(everything):
            return False
        status = pipeline_status(p.instance, current_defs())
        changed = status.regions_to_run
        print(status.describe(), flush=True)
        if changed:
            since = time.time()
            return p.regions(changed) and p.fan_ins(since)
        if status.stale_fan_ins:
            return p.job("aggregate_and_tile", "Rerunning the stale fan-ins")
        print("Nothing changed: every region and product is up to date.", flush=True)
        return True

    return _follow(work, tags)


def demo(selected: list[str]) -> int:
    from ocr_core.grid import get_grid

    grid = get_grid(current_settings().grid)
    check_roots(write_inputs=grid.name == "demo")
    s = current_settings()
    print(
        f"OCR demo: grid={grid.name} environment={s.environment} storage={s.storage_root} "
        f"DAGSTER_HOME={os.environ.get('DAGSTER_HOME', '.dagster_home')}",
        flush=True,
    )

    def work(p: Pipeline) -> bool:
        if grid.name == "demo" and not p.job("generate_demo_inputs", "Generating demo inputs"):
            return False
        if not p.observe(selected):
            return False
        since = time.time()
        return p.regions(selected) and p.fan_ins(since)

    code = _follow(work)
    if code == 0:
        summary()
    return code


def status() -> int:
    from ocr_assets.launch import get_instance
    from ocr_assets.staleness import pipeline_status

    print(pipeline_status(get_instance(), current_defs()).describe())
    return 0


def summary() -> None:
    """Print where every output is, with counts and sizes."""
    from ocr_core.map_server import map_url
    from ocr_core.report import outputs_report

    print(outputs_report(current_settings().storage(), current_settings().grid))
    print(
        "\nOpen the Dagster UI with `./dev ui` (http://127.0.0.1:3000) to browse lineage, "
        "metadata, checks and previews; see the risk on a map with `./dev map` "
        f"({map_url()})."
    )


def check_inputs() -> int:
    """Print one row per input dataset of the active grid, then one line per problem; the exit
    status is 1 if there is any problem."""
    from ocr_core.catalog import InputCatalog
    from ocr_core.grid import get_grid
    from ocr_core.input_checks import check_inputs as run_checks

    s = current_settings()
    grid = get_grid(s.grid)
    catalog = InputCatalog(current_settings().input_storage())
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


def requested_regions(args: argparse.Namespace, grid) -> list[str]:
    """The regions a ``demo``, ``run`` or ``region`` command names: valid, canonical and once
    each, with a note on stderr for every id changed or dropped; all valid regions for
    ``--all-regions`` or a demo without ``--regions``."""
    if args.command == "region":
        given = [args.region_id]
    elif getattr(args, "all_regions", False) or not args.regions:
        return list(grid.valid_region_ids)
    else:
        given = args.regions
    regions, notes = grid.select_region_ids(given)
    for note in notes:
        print(f"note: {note}", file=sys.stderr, flush=True)
    return regions


def serve_map(port: int) -> int:
    """Serve the environment's published outputs as a web map on loopback until Ctrl-C or
    SIGTERM."""
    from ocr_core.map_server import describe, make_server
    from ocr_resources.settings import PROJECT_DIR

    server = make_server(current_settings().storage(), PROJECT_DIR / "web", port)
    previous = signal.signal(signal.SIGTERM, raise_interrupted)
    try:
        print(describe(server), flush=True)
        server.serve_forever()
    except (KeyboardInterrupt, Interrupted):
        print("map server stopped", flush=True)
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.server_close()
    return 0


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "run":
            _switch_on(args)
        raise SystemExit(_dispatch(args))
    except (SettingsError, StorageError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None
    except DeployError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_FAILED) from None


def _switch_on(args) -> None:
    """The optional outputs asked for on the command line, for the daemon this starts."""
    from ocr_resources.settings import reload_settings

    if args.write_regional_stats:
        os.environ["OCR_WRITE_REGIONAL_STATS"] = "1"
    if args.create_pyramid:
        os.environ["OCR_CREATE_PYRAMID"] = "1"
    reload_settings()


def _dispatch(args: argparse.Namespace) -> int:
    from ocr_core.grid import get_grid

    if args.command == "demo":
        return demo(requested_regions(args, get_grid(current_settings().grid)))
    if args.command in ("run", "region"):
        return _run(args)
    if args.command == "check-inputs":
        check_roots(write_outputs=False)
        return check_inputs()
    if args.command == "status":
        return status()
    if args.command == "map":
        return _map(args.port)
    if args.command == "deploy":
        from ocr_deploy.commands import dispatch

        return dispatch(args)
    check_roots(write_outputs=False)
    summary()
    return 0


def _run(args: argparse.Namespace) -> int:
    """``run`` and ``region``: the regions named (or the changed ones), then the fan-ins."""
    from ocr_assets.phase01_regions import ACCEPT_SHRINK_TAG
    from ocr_core.grid import get_grid

    tags = {ACCEPT_SHRINK_TAG: "true"} if args.accept_shrink else {}
    if getattr(args, "changed", False):
        check_roots()
        return run_changed(tags)
    regions = requested_regions(args, get_grid(current_settings().grid))
    check_roots()
    return run_regions(regions, tags=tags)


def _map(port: int) -> int:
    from ocr_core.map_server import MapError

    check_roots(write_outputs=False)
    try:
        return serve_map(port)
    except MapError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    main()
