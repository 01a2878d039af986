"""``ocr-dagster deploy …``: the command line of the deploy tooling (what CI and a host call).

ocr-dagster deploy plan [--event-name N] [--event-path P]   # what a GitHub event deploys
ocr-dagster deploy wipe --environment E [--namespace NS]    # delete one namespace's outputs
ocr-dagster deploy serve code-server|daemon|webserver       # one service of a deployment
ocr-dagster deploy run --dagster-url URL --environment E --regions R...  # deploy through it
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ocr_resources.settings import ENVIRONMENTS, current_settings


def add_parser(sub) -> None:
    """Add ``deploy`` and its commands to the subparsers ``sub`` of ``ocr-dagster``."""
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


def dispatch(args: argparse.Namespace) -> int:
    """Run the ``deploy`` command ``args`` name; its exit status."""
    commands = {"plan": plan, "wipe": wipe, "serve": serve, "run": run}
    return commands[args.deploy_command](args)


def plan(args: argparse.Namespace) -> int:
    """Print the plan of a GitHub event as one JSON object; with ``$GITHUB_OUTPUT`` set, also
    append it there as ``key=value`` lines for the workflow's later jobs. The event defaults
    to the workflow run's own (``GITHUB_EVENT_NAME``, ``GITHUB_EVENT_PATH``)."""
    from ocr_deploy.deployment import GitHubRun
    from ocr_deploy.plan import github_output_lines
    from ocr_deploy.plan import plan as plan_event

    github = GitHubRun.from_env()
    name, path = args.event_name or github.event_name, args.event_path or github.event_path
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
    result = plan_event(name, payload, None, sha=github.sha, grid=current_settings().grid)
    for note in result["notes"]:
        print(f"note: {note}", file=sys.stderr, flush=True)
    print(json.dumps(result), flush=True)
    if github.output_path:
        with open(github.output_path, "a") as out:
            out.write("".join(f"{line}\n" for line in github_output_lines(result)))
    return 0


def wipe(args: argparse.Namespace) -> int:
    """Delete the outputs of one namespace of ``--environment`` under OCR_STORAGE_ROOT (its
    own, or ``--namespace`` such as ``qa/pr-12``) and print each entry removed."""
    from ocr_deploy.wipe import PRODUCTION_REFUSED, WipeError, wipe_namespace

    if args.environment == "production":
        raise WipeError(PRODUCTION_REFUSED)
    s = current_settings()
    target = s.storage(args.namespace, environment=args.environment)
    target.check_reachable(writable=False)
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


def serve(args: argparse.Namespace) -> int:
    """Become one service of the deployment (never returns: the process is replaced)."""
    from ocr_deploy.serve import serve as serve_service

    serve_service(args.service)


def run(args: argparse.Namespace) -> int:
    """Launch the deploy into the deployment at ``--dagster-url`` and follow it to the end."""
    from ocr_core.grid import get_grid
    from ocr_deploy.run import Target, deploy_run

    regions = [r for value in args.regions for r in value.replace(",", " ").split()]
    if regions in (["all"], ["missing"]):
        chosen: list[str] | str = regions[0]
    else:
        grid = get_grid(current_settings().grid)
        chosen, notes = grid.select_region_ids(regions)
        for note in notes:
            print(f"note: {note}", file=sys.stderr, flush=True)
    namespace = current_settings().storage(args.namespace, environment=args.environment)
    target = Target(args.environment, namespace.namespace, args.expect_ref)
    flags = {"write_regional_stats": args.write_regional_stats, "pyramid": args.create_pyramid}
    return deploy_run(args.dagster_url, target, chosen, flags)
