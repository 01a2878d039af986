"""Throughput and memory of the building GeoParquet and summary-statistics steps.

Generates N synthetic buildings (default 1 M and 5 M) over the 12 demo regions as region files
in the reference schema, under a throwaway storage root (with the demo census polygons copied
where the input catalog expects them), then runs each step in a fresh subprocess so the peak
RSS is per step:

    python benchmarks/bench_aggregation.py [--sizes 1000000 5000000] [--memory-limit 3GB]

Figures depend on the machine and on whatever else runs on it; they are indicative.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ocr_core.schema import GEOGRAPHIES, OUTPUT_VARIABLES

REPO = Path(__file__).resolve().parents[1]

DEMO_INPUTS = REPO / "data"
RISK_COLUMNS = OUTPUT_VARIABLES
COUNTY_NAMES = {"06037": "Los Angeles", "06111": "Ventura"}
STEPS = ("consolidate", "summary_stats")


# --- synthetic inputs --------------------------------------------------------------------------
def _census_geoids(catalog) -> tuple[list[str], Any, Any] | None:
    """Real demo block GEOIDs with a representative point each, if the demo blocks exist."""
    import geopandas as gpd
    import shapely

    path = Path(catalog.uri("us-census-blocks"))
    if not path.exists():
        return None
    blocks = gpd.read_parquet(path, columns=["GEOID", "geometry"])
    points = shapely.point_on_surface(blocks.geometry.values)
    return blocks["GEOID"].tolist(), shapely.get_x(points), shapely.get_y(points)


def _geo_metadata(bbox: list[float]) -> bytes:
    from pyproj import CRS

    column = {
        "encoding": "WKB",
        "crs": CRS.from_epsg(4326).to_json_dict(),
        "geometry_types": ["Polygon"],
        "bbox": bbox,
        "covering": {"bbox": {k: ["bbox", k] for k in ("xmin", "ymin", "xmax", "ymax")}},
    }
    doc = {"version": "1.1.0", "primary_column": "geometry", "columns": {"geometry": column}}
    return json.dumps(doc).encode()


def _risk_values(rng, n: int) -> dict:
    """Float32 risk columns in realistic ranges, about a third exact zeros (non-burnable)."""
    import numpy as np

    burnable = rng.random(n) > 0.35
    out = {}
    for name in RISK_COLUMNS:
        if name.startswith("bp"):
            values = rng.beta(0.6, 60.0, n)  # annual burn probability: mostly < 0.05
        else:
            values = np.minimum(rng.lognormal(-0.5, 1.2, n), 100.0)  # percent
        out[name] = np.where(burnable, values, 0.0).astype("float32")
    return out


def generate_inputs(root: Path, n_buildings: int, seed: int = 0) -> dict:
    """Region files for ``n_buildings`` across the demo regions, plus the census polygons."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    import shapely

    from ocr_core.catalog import InputCatalog
    from ocr_core.grid import DEMO
    from ocr_core.storage import Storage

    start = time.perf_counter()
    storage = Storage(str(root))
    source, target = InputCatalog(Storage(str(DEMO_INPUTS))), InputCatalog(storage)
    copied = []
    for geography in GEOGRAPHIES:
        name = geography.census_dataset
        if Path(source.uri(name)).exists():
            Path(target.uri(name)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source.uri(name), target.uri(name))
            copied.append(geography.level)
    census = _census_geoids(source)
    rng = np.random.default_rng(seed)
    regions = DEMO.valid_region_ids
    counts = np.full(len(regions), n_buildings // len(regions))
    counts[: n_buildings % len(regions)] += 1
    Path(storage.region_geoparquet_dir).mkdir(parents=True, exist_ok=True)
    for region, n in zip(regions, counts.tolist(), strict=True):
        west, south, east, north = DEMO.region_bounds(region)
        width, height = rng.uniform(5e-5, 3e-4, n), rng.uniform(5e-5, 3e-4, n)
        xmin = rng.uniform(west, east - 3e-4, n)
        ymin = rng.uniform(south, north - 3e-4, n)
        xmax, ymax = xmin + width, ymin + height
        if census is not None:
            geoids, px, py = census
            inside = np.flatnonzero((px >= west) & (px < east) & (py >= south) & (py < north))
            pool = np.asarray(geoids, dtype=object)[inside if inside.size else slice(None)]
            geoid = pool[rng.integers(0, len(pool), n)]
        else:
            county = rng.choice(np.array(["06037", "06111"], dtype=object), n)
            tail = np.char.zfill(rng.integers(0, 10**10, n).astype("U10"), 10).astype(object)
            geoid = county + tail
        table = pa.table(
            {
                **{k: pa.array(v) for k, v in _risk_values(rng, n).items()},
                "GEOID": pa.array(geoid, pa.string()),
                "state": pa.array(np.full(n, "CA", dtype=object), pa.string()),
                "county": pa.array([COUNTY_NAMES.get(g[:5], "Other") for g in geoid]),
                "geometry": pa.array(shapely.to_wkb(shapely.box(xmin, ymin, xmax, ymax))),
                "bbox": pa.StructArray.from_arrays(
                    [pa.array(a) for a in (xmin, ymin, xmax, ymax)],
                    names=["xmin", "ymin", "xmax", "ymax"],
                ),
            }
        )
        bbox = [float(xmin.min()), float(ymin.min()), float(xmax.max()), float(ymax.max())]
        table = table.replace_schema_metadata({b"geo": _geo_metadata(bbox)})
        pq.write_table(
            table, storage.region_geoparquet_uri(region), compression="zstd", row_group_size=65_536
        )
    size = sum(p.stat().st_size for p in Path(storage.region_geoparquet_dir).glob("*.parquet"))
    return {
        "regions": len(regions),
        "buildings": n_buildings,
        "region_bytes": size,
        "census_levels": copied,
        "real_geoids": census is not None,
        "seconds": round(time.perf_counter() - start, 1),
    }


# --- one step in this process ------------------------------------------------------------------
def run_step(step: str, root: str, memory_limit: str, threads: int | None) -> dict:
    """Run one step and return its wall time, building count and peak RSS (this process)."""
    from ocr_core.catalog import InputCatalog
    from ocr_core.duck import DuckDBConfig
    from ocr_core.memory import PeakRSS
    from ocr_core.storage import Storage

    storage = Storage(root)
    duck = DuckDBConfig(
        memory_limit=memory_limit,
        threads=threads,
        temp_directory=str(Path(root) / "duckdb-tmp"),
    )
    start = time.perf_counter()
    with PeakRSS() as rss:
        if step == "consolidate":
            from ocr_core.consolidate import write_buildings_geoparquet

            result = write_buildings_geoparquet(storage, duck)
            buildings = result.buildings
        else:
            from ocr_core.statistics import write_summary_stats

            result = write_summary_stats(storage, InputCatalog(storage), duck)
            buildings = result.total_buildings
    seconds = time.perf_counter() - start
    max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "step": step,
        "buildings": buildings,
        "seconds": seconds,
        "peak_rss_bytes": max(rss.peak_bytes, max_rss),
        "result": asdict(result),
    }


def _in_subprocess(step: str, root: Path, args) -> dict:
    command = [sys.executable, __file__, "--step", step, "--root", str(root)]
    command += ["--memory-limit", args.memory_limit]
    if args.threads:
        command += ["--threads", str(args.threads)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        print(f"  {step} failed:\n{done.stderr[-3000:]}", file=sys.stderr)
        return {"step": step, "failed": True}
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- report ------------------------------------------------------------------------------------
def _machine() -> str:
    import duckdb

    with open("/proc/meminfo") as f:
        total_kb = int(next(line for line in f if line.startswith("MemTotal")).split()[1])
    return (
        f"machine: {os.cpu_count()} cores (nproc {len(os.sched_getaffinity(0))}), "
        f"{total_kb / 2**20:.1f} GiB RAM, DuckDB {duckdb.__version__}, Python "
        f"{sys.version.split()[0]}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 5_000_000])
    parser.add_argument("--memory-limit", default="3GB", help="DuckDB memory_limit (the bound)")
    parser.add_argument("--threads", type=int, default=None, help="DuckDB threads (all cores)")
    parser.add_argument("--steps", nargs="+", choices=STEPS, default=list(STEPS))
    parser.add_argument("--workdir", default=None, help="where the temp roots go (/tmp)")
    parser.add_argument("--keep", action="store_true", help="keep the generated roots")
    parser.add_argument("--step", choices=STEPS, help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.step:  # child: one step, one JSON line on stdout
        out = run_step(args.step, args.root, args.memory_limit, args.threads)
        print(json.dumps(out, default=str))
        return

    print(_machine())
    print(f"DuckDB memory_limit {args.memory_limit}, threads {args.threads or 'all cores'}")
    rows = []
    for n in args.sizes:
        root = Path(tempfile.mkdtemp(prefix=f"ocr-bench-{n}-", dir=args.workdir))
        try:
            info = generate_inputs(root, n)
            print(
                f"generated {n:,} buildings in {info['regions']} region files "
                f"({info['region_bytes'] / 1e6:.0f} MB, real block GEOIDs: "
                f"{info['real_geoids']}) in {info['seconds']} s"
            )
            for step in args.steps:
                out = _in_subprocess(step, root, args)
                rows.append(out | {"size": n})
                if not out.get("failed"):
                    print(f"  {step}: {out['seconds']:.1f} s", flush=True)
        finally:
            if not args.keep:
                shutil.rmtree(root, ignore_errors=True)
    header = f"{'step':<14} {'buildings':>11} {'wall s':>8} {'peak RSS MB':>12} {'bldg/min':>12}"
    print("\n" + header + "\n" + "-" * len(header))
    for r in rows:
        if r.get("failed"):
            print(f"{r['step']:<14} {r['size']:>11,} {'failed (see above)':>34}")
            continue
        rate = r["buildings"] / r["seconds"] * 60
        print(
            f"{r['step']:<14} {r['buildings']:>11,} {r['seconds']:>8.1f} "
            f"{r['peak_rss_bytes'] / 2**20:>12.0f} {rate:>12,.0f}"
        )


if __name__ == "__main__":
    main()
