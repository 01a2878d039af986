"""The ``ocr-dagster`` command line's arguments: every command, its flags and their help."""

from __future__ import annotations

import argparse

from ocr_core.map_server import MAP_PORT
from ocr_deploy.commands import add_parser as add_deploy_parser

DESCRIPTION = (
    "Command line: submit the graph's work to the Dagster instance, follow it, report the outputs."
)


def _port(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise argparse.ArgumentTypeError(f"{value!r} is not a TCP port (1-65535)")
    return int(value)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ocr-dagster", description=DESCRIPTION)
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
    p_map = sub.add_parser("map", help="serve the published outputs as a web map on loopback")
    p_map.add_argument("--port", type=_port, default=MAP_PORT, help=f"default: {MAP_PORT}")
    add_deploy_parser(sub)
    return parser
