"""Command line: materialize the whole graph on the embedded demo and report the outputs.

    python -m ocr_assets.cli demo [--regions y1_x1 y2_x3 ...]
    python -m ocr_assets.cli summary

Runs go through the persistent Dagster instance in $DAGSTER_HOME, so the UI shows them.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from ocr_resources.settings import PROJECT_DIR, SettingsError, current_settings


def _instance():
    import dagster as dg

    home = os.environ.setdefault("DAGSTER_HOME", str(PROJECT_DIR / ".dagster_home"))
    os.makedirs(home, exist_ok=True)
    return dg.DagsterInstance.get()


def _run(job, instance, **kwargs) -> None:
    label = kwargs.get("partition_key", "")
    t0 = time.perf_counter()
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    result = job.execute_in_process(
        instance=instance, raise_on_error=False, run_config=quiet, **kwargs
    )
    took = time.perf_counter() - t0
    if not result.success:
        failures = [
            e.event_specific_data.error.message.strip()
            for e in result.all_events
            if e.event_type_value == "STEP_FAILURE" and e.event_specific_data.error
        ]
        print(f"  {job.name} {label} FAILED after {took:.1f} s", file=sys.stderr)
        for msg in failures:
            print(f"    {msg.splitlines()[0]}", file=sys.stderr)
        raise SystemExit(1)
    print(f"  {job.name} {label} ok ({took:.1f} s)")


def demo(regions: list[str] | None) -> None:
    from ocr_assets.definitions import defs
    from ocr_assets.partitions import GRID

    settings = current_settings()
    instance = _instance()
    selected = regions or list(GRID.valid_region_ids)
    for rid in selected:
        GRID.validate_region_id(rid)
    print(
        f"OCR demo: grid={GRID.name} environment={settings.environment} "
        f"storage={settings.storage_root} DAGSTER_HOME={os.environ['DAGSTER_HOME']}"
    )
    if GRID.name == "demo":
        print("Generating demo inputs ...")
        _run(defs.resolve_job_def("generate_demo_inputs"), instance)
    print(f"Phase 01: {len(selected)} regions ...")
    job = defs.resolve_job_def("process_regions")
    for rid in selected:
        _run(job, instance, partition_key=rid)
    summary()


def summary() -> None:
    """Print where every output is, with counts."""
    import pyarrow.parquet as pq

    from ocr_assets.partitions import GRID
    from ocr_core import raster_store
    from ocr_core.storage import Storage

    s = current_settings()
    storage = Storage(s.storage_root, s.environment, s.version, s.s3_endpoint_url, s.s3_region)
    print("\nOutputs")
    print(f"  risk raster (icechunk): {storage.icechunk_uri}")
    commits = raster_store.committed_regions(storage)
    for rid in GRID.valid_region_ids:
        if rid in commits:
            print(f"    commit {commits[rid]}  wrote region_id ({rid})")
    print(f"  {len(commits)} of {len(GRID.valid_region_ids)} valid regions committed")
    print(f"  region buildings (GeoParquet): {storage.region_geoparquet_dir}/")
    fs = storage.filesystem()
    total = 0
    for uri in storage.glob(f"{storage.region_geoparquet_dir}/*.parquet"):
        path = uri[len("s3://") :] if uri.startswith("s3://") else uri
        with fs.open(path, "rb") as f:
            rows = pq.ParquetFile(f).metadata.num_rows
        total += rows
        print(f"    {uri.rsplit('/', 1)[-1]:<16} {rows:>7} buildings")
    print(f"  {total} buildings in total")
    print(
        "\nOpen the Dagster UI with `./dev ui` (http://127.0.0.1:3000) to browse lineage, "
        "metadata and previews."
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="ocr-dagster", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_demo = sub.add_parser("demo", help="materialize the whole graph on the demo grid")
    p_demo.add_argument("--regions", nargs="*", help="region ids (default: all valid ids)")
    sub.add_parser("summary", help="list the outputs and where they are")
    args = parser.parse_args(argv)
    try:
        if args.command == "demo":
            demo(args.regions)
        else:
            summary()
    except (SettingsError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
