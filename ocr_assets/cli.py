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

from ocr_core.storage import StorageError
from ocr_deploy.graphql import DeployError
from ocr_resources.settings import ENVIRONMENTS, SettingsError, current_settings

EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130


class Interrupted(Exception):
    """Ctrl-C or SIGTERM while following work."""


def _on_signal(signum, frame):
    raise Interrupted(signal.Signals(signum).name)


def _defs():
    from ocr_assets.definitions import build_defs

    return build_defs(current_settings())


def _input_storage():
    from ocr_core.storage import Storage

    s = current_settings()
    return Storage(
        s.inputs_root,
        s3_endpoint_url=s.s3_endpoint_url,
        s3_region=s.s3_region,
        variable="OCR_INPUT_ROOT",
    )


def check_roots(write_outputs: bool = True, write_inputs: bool = False) -> None:
    """The roots usable before anything is submitted (StorageError: one line naming the
    variable); the S3 input root is left to the steps that read it."""
    current_settings().storage().check_reachable(writable=write_outputs)
    inputs = _input_storage()
    if not inputs.is_s3:
        inputs.check_reachable(writable=write_inputs)


def _report(label: str, outcome) -> bool:
    for line in outcome.failed.values():
        print(f"FAILED {line}", file=sys.stderr, flush=True)
    if outcome.canceled:
        print(f"canceled: {', '.join(outcome.canceled)}", file=sys.stderr, flush=True)
    return outcome.ok


class Pipeline:
    """One command's work through the instance: submit, follow, cancel on interrupt."""

    def __init__(self, session, tags: dict[str, str] | None = None):
        from ocr_assets.launch import Progress

        self.session = session
        self.instance = session.instance
        self.progress = Progress()
        self.backfill_id: str | None = None
        self.run_ids: list[str] = []
        self.started: float | None = None  # when the regions were submitted
        s = current_settings()
        self.tags = {"ocr/environment": s.environment, "ocr/launched-by": "ocr-dagster"}
        self.tags |= tags or {}

    def job(self, name: str, label: str, tags: dict[str, str] | None = None) -> bool:
        from ocr_assets.launch import follow_runs

        run_id = self.session.submit_job(name, self.tags | (tags or {}))
        self.run_ids.append(run_id)
        print(f"{label} (run {run_id[:8]}) ...", flush=True)
        return _report(label, follow_runs(self.instance, [run_id], label, self.progress))

    def observe(self, regions: list[str]) -> bool:
        from ocr_assets.phase01_regions import OBSERVE_REGIONS_TAG

        return self.job(
            "observe_region_inputs",
            f"Reading the input identity of {len(regions)} region(s)",
            {OBSERVE_REGIONS_TAG: ",".join(regions)},
        )

    def regions(self, regions: list[str]) -> bool:
        from ocr_assets.launch import backfill_runs, follow_backfill
        from ocr_assets.phase01_regions import REGION_BUILDINGS, REGION_RISK
        from ocr_core.grid import get_grid

        t0 = self.started = time.time()
        self.backfill_id = self.session.submit_region_backfill(
            _defs(),
            [REGION_RISK, REGION_BUILDINGS],
            regions,
            self.tags,
            title=f"ocr-dagster: {len(regions)} region(s)",
        )
        print(
            f"Phase 01: backfill {self.backfill_id} of {len(regions)} region(s); the daemon runs "
            "them within the queue limits of dagster.yaml",
            flush=True,
        )
        order = get_grid(current_settings().grid).valid_region_ids
        outcome = follow_backfill(self.instance, self.backfill_id, regions, order, self.progress)
        self.run_ids += [r.run_id for r in backfill_runs(self.instance, self.backfill_id)]
        print(
            f"  {len(outcome.done)} region(s) done, {len(outcome.failed)} failed "
            f"({time.time() - t0:.0f} s)",
            flush=True,
        )
        ok = _report("regions", outcome)
        if not ok:
            print(
                "The fan-ins wait until every region of the environment has succeeded. Fix the "
                "cause above, then rerun: ocr-dagster run --regions "
                + " ".join(sorted(outcome.failed.keys() - {"backfill"} | set(outcome.canceled))),
                file=sys.stderr,
            )
        return ok

    def fan_ins(self, since: float) -> bool:
        from ocr_assets.definitions import automated_keys
        from ocr_assets.launch import fan_in_runs, follow_fan_ins

        keys = automated_keys(current_settings())
        print(
            f"Phase 02/03: the daemon materializes {len(keys)} fan-in asset(s) "
            "(statistics, tiles, ...) ...",
            flush=True,
        )
        t0 = time.time()
        try:
            outcome = follow_fan_ins(self.instance, keys, since, self.progress)
        finally:
            self.run_ids += [r.run_id for r in fan_in_runs(self.instance, keys, since)]
        print(f"  {len(outcome.done)}/{len(keys)} done ({time.time() - t0:.0f} s)", flush=True)
        return _report("fan-ins", outcome)

    def cancel(self) -> None:
        from ocr_assets.definitions import automated_keys
        from ocr_assets.launch import fan_in_runs

        self.progress.end()
        if self.started is not None:  # fan-ins the daemon launched for this command
            keys = automated_keys(current_settings())
            self.run_ids += [r.run_id for r in fan_in_runs(self.instance, keys, self.started)]
        n = self.session.cancel(self.backfill_id, self.run_ids)
        print(f"Interrupted: canceled {n} run(s) and the backfill.", file=sys.stderr, flush=True)


def _follow(work, tags: dict[str, str] | None = None) -> int:
    """Run ``work(pipeline)`` in a session (``tags`` on every run it submits); the exit status
    (130 on Ctrl-C or SIGTERM)."""
    from ocr_assets.launch import LaunchError, Session

    previous = signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
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
        status = pipeline_status(p.instance, _defs())
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

    print(pipeline_status(get_instance(), _defs()).describe())
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
    catalog = InputCatalog(_input_storage())
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
    previous = signal.signal(signal.SIGTERM, _on_signal)
    try:
        print(describe(server), flush=True)
        server.serve_forever()
    except (KeyboardInterrupt, Interrupted):
        print("map server stopped", flush=True)
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.server_close()
    return 0


def deploy_plan(event_name: str | None, event_path: str | None) -> int:
    """Print the plan of a GitHub event as one JSON object; with ``$GITHUB_OUTPUT`` set, also
    append it there as ``key=value`` lines for the workflow's later jobs. The event defaults
    to the workflow run's own (``GITHUB_EVENT_NAME``, ``GITHUB_EVENT_PATH``)."""
    import json
    from pathlib import Path

    from ocr_deploy.plan import github_output_lines, plan
    from ocr_resources.settings import GitHubRun

    run = GitHubRun.from_env()
    name, path = event_name or run.event_name, event_path or run.event_path
    if not name or not path:
        missing = (
            "--event-name (GITHUB_EVENT_NAME)" if not name else "--event-path (GITHUB_EVENT_PATH)"
        )
        raise ValueError(f"no GitHub event: give {missing}")
    try:
        payload = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"event payload {path!r} cannot be read as JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise ValueError(f"event payload {path!r} is not a JSON object")
    result = plan(name, payload, None, sha=run.sha, grid=current_settings().grid)
    for note in result["notes"]:
        print(f"note: {note}", file=sys.stderr, flush=True)
    print(json.dumps(result), flush=True)
    if run.output_path:
        with open(run.output_path, "a") as out:
            out.write("".join(f"{line}\n" for line in github_output_lines(result)))
    return 0


def deploy_wipe(environment: str, namespace: str | None) -> int:
    """Delete the outputs of one namespace of ``environment`` under OCR_STORAGE_ROOT (its own,
    or ``--namespace`` such as ``qa/pr-12``) and print each entry removed."""
    from ocr_core.storage import Storage
    from ocr_deploy.wipe import PRODUCTION_REFUSED, WipeError, wipe_namespace

    if environment == "production":
        raise WipeError(PRODUCTION_REFUSED)
    s = current_settings()
    base = Storage(s.storage_root, environment, None, s.s3_endpoint_url, s.s3_region)
    target = base.with_namespace(namespace or environment)
    base.check_reachable(writable=False)
    removed = wipe_namespace(target)
    for path in removed:
        print(f"removed {path}", flush=True)
    where = f"under {s.storage_root}"
    print(
        f"wiped {target.namespace} {where}: {len(removed)} entries removed"
        if removed
        else f"nothing to wipe: {target.namespace} has no outputs {where}",
        flush=True,
    )
    return 0


def deploy_run(args) -> int:
    """Launch the deploy into the deployment at ``--dagster-url`` and follow it to the end."""
    from ocr_core.grid import get_grid
    from ocr_core.storage import Storage
    from ocr_deploy.run import Target
    from ocr_deploy.run import deploy_run as run

    regions = [r for value in args.regions for r in value.replace(",", " ").split()]
    if regions in (["all"], ["missing"]):
        chosen: list[str] | str = regions[0]
    else:
        grid = get_grid(current_settings().grid)
        chosen, notes = grid.select_region_ids(regions)
        for note in notes:
            print(f"note: {note}", file=sys.stderr, flush=True)
    namespace = Storage(".", args.environment).with_namespace(args.namespace or args.environment)
    target = Target(args.environment, namespace.namespace, args.expect_ref)
    flags = {"write_regional_stats": args.write_regional_stats, "pyramid": args.create_pyramid}
    return run(args.dagster_url, target, chosen, flags)


def _port(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise argparse.ArgumentTypeError(f"{value!r} is not a TCP port (1-65535)")
    return int(value)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ocr-dagster", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_demo = sub.add_parser("demo", help="generate demo inputs and materialize the whole graph")
    p_demo.add_argument("--regions", nargs="*", help="region ids (default: all valid ids)")
    p_run = sub.add_parser("run", help="materialize the graph for the configured environment")
    which = p_run.add_mutually_exclusive_group(required=True)
    which.add_argument("--regions", nargs="+", help="region ids to (re)process")
    which.add_argument("--all-regions", action="store_true", help="every valid region id")
    which.add_argument(
        "--changed",
        action="store_true",
        help="only the regions whose inputs or code changed (or that are missing)",
    )
    p_run.add_argument(
        "--write-regional-stats",
        action="store_true",
        help="also write the CSV/GeoJSON/GeoParquet analysis files (OCR_WRITE_REGIONAL_STATS=1)",
    )
    p_run.add_argument(
        "--create-pyramid",
        action="store_true",
        help="also build the pyramid (OCR_CREATE_PYRAMID=1)",
    )
    p_region = sub.add_parser("region", help="materialize one region partition, then the fan-ins")
    p_region.add_argument("region_id")
    for p in (p_run, p_region):
        p.add_argument(
            "--accept-shrink",
            action="store_true",
            help="accept regions whose building count fell below half the published one",
        )
    sub.add_parser("status", help="which regions and products are stale or missing, and why")
    sub.add_parser("summary", help="list the outputs and where they are")
    sub.add_parser(
        "check-inputs",
        help="open every input of the grid and check CRS, alignment, variables and values",
    )
    from ocr_core.map_server import MAP_PORT

    p_map = sub.add_parser("map", help="serve the published outputs as a web map on loopback")
    p_map.add_argument("--port", type=_port, default=MAP_PORT, help=f"default: {MAP_PORT}")
    p_deploy = sub.add_parser("deploy", help="plan a deployment from a GitHub event, or wipe")
    deploy = p_deploy.add_subparsers(dest="deploy_command", required=True)
    p_plan = deploy.add_parser("plan", help="print what a GitHub event deploys, as JSON")
    p_plan.add_argument("--event-name", help="e.g. pull_request (default: $GITHUB_EVENT_NAME)")
    p_plan.add_argument("--event-path", help="the event's JSON (default: $GITHUB_EVENT_PATH)")
    p_wipe = deploy.add_parser("wipe", help="delete one namespace's outputs (never production)")
    p_wipe.add_argument("--environment", required=True, choices=ENVIRONMENTS)
    p_wipe.add_argument(
        "--namespace", help="default: the environment's own; e.g. qa/pr-12 for a pull request"
    )
    p_serve = deploy.add_parser("serve", help="start one service of an environment's deployment")
    p_serve.add_argument("service", choices=("code-server", "daemon", "webserver"))
    p_drun = deploy.add_parser(
        "run", help="launch a deploy into an environment's Dagster deployment and follow it"
    )
    p_drun.add_argument("--dagster-url", required=True, help="the deployment's webserver")
    p_drun.add_argument("--environment", required=True, choices=ENVIRONMENTS)
    p_drun.add_argument(
        "--namespace", help="default: the environment's own; qa/pr-N, production/vX.Y.Z"
    )
    p_drun.add_argument(
        "--regions", nargs="+", required=True, help="region ids, or all, or missing"
    )
    p_drun.add_argument("--expect-ref", help="the commit the code location must run")
    p_drun.add_argument("--write-regional-stats", action="store_true")
    p_drun.add_argument("--create-pyramid", action="store_true")
    return parser


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


def _dispatch(args) -> int:
    from ocr_core.grid import get_grid

    if args.command == "demo":
        return demo(requested_regions(args, get_grid(current_settings().grid)))
    if args.command in ("run", "region"):
        from ocr_assets.phase01_regions import ACCEPT_SHRINK_TAG

        tags = {ACCEPT_SHRINK_TAG: "true"} if args.accept_shrink else {}
        if getattr(args, "changed", False):
            check_roots()
            return run_changed(tags)
        regions = requested_regions(args, get_grid(current_settings().grid))
        check_roots()
        return run_regions(regions, tags=tags)
    if args.command == "check-inputs":
        check_roots(write_outputs=False)
        return check_inputs()
    if args.command == "status":
        return status()
    if args.command == "map":
        from ocr_core.map_server import MapError

        check_roots(write_outputs=False)
        try:
            return serve_map(args.port)
        except MapError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USAGE
    if args.command == "deploy":
        if args.deploy_command == "plan":
            return deploy_plan(args.event_name, args.event_path)
        if args.deploy_command == "serve":
            from ocr_deploy.serve import serve

            serve(args.service)
        if args.deploy_command == "run":
            return deploy_run(args)
        return deploy_wipe(args.environment, args.namespace)
    check_roots(write_outputs=False)
    summary()
    return 0


if __name__ == "__main__":
    main()
