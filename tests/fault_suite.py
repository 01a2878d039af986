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
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REGIONS = ("y2_x1", "y2_x2", "y2_x3")  # contiguous: one partition range holds them
N_BUILDINGS = 12_000
STEP_TIMEOUT_S = 300
FAN_IN_STEPS = ("consolidate", "summary", "tiles", "pyramid")


@dataclass
class Case:
    category: str
    name: str
    passed: bool = False
    lost: int = 0
    corrupted: int = 0
    stuck: int = 0
    orphans: int = 0
    note: str = ""


@dataclass
class Category:
    name: str
    cases: list[Case] = field(default_factory=list)

    def add(self, case: Case) -> Case:
        self.cases.append(case)
        return case


# --- the published state --------------------------------------------------------------------
def _digest_local(path: Path) -> str | None:
    """Content digest of a file or a folder (relative names and bytes); None if absent."""
    if not path.exists():
        return None
    if path.is_file():
        return hashlib.sha256(path.read_bytes()).hexdigest()
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(f.relative_to(path).as_posix().encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


def _digest_s3(storage, uri: str) -> str | None:
    fs = storage.filesystem()
    base = storage.fs_path(uri).rstrip("/")
    if fs.isfile(base):
        return hashlib.sha256(fs.cat_file(base)).hexdigest()
    keys = sorted(fs.find(base)) if fs.exists(base) else []
    if not keys:
        return None
    h = hashlib.sha256()
    for key in keys:
        h.update(key[len(base) + 1 :].encode() + b"\0" + fs.cat_file(key))
    return h.hexdigest()


def published(storage) -> dict[str, str | None]:
    """Every published output as readers resolve it now: output name -> content digest
    (the risk raster: the region arrays on ``main``)."""
    from ocr_core import raster_store
    from ocr_core.grid import DEMO

    outputs = {
        **{f"region {r}": storage.region_geoparquet_uri(r) for r in REGIONS},
        "consolidated": storage.consolidated_buildings_uri,
        "hive": storage.current_dir(storage.partitioned_buildings_uri),
        "summary": storage.current_dir(storage.summary_stats_dir),
        "analysis": storage.current_dir(storage.region_analysis_dir),
        **{f"pmtiles {n}": storage.pmtiles_uri(n) for n in ("buildings", "building_centroids")},
        "pmtiles regions": storage.pmtiles_uri("regions"),
        "pyramid": storage.current_dir(storage.pyramid_uri),
    }
    digest = (
        (lambda u: _digest_s3(storage, u)) if storage.is_s3 else (lambda u: _digest_local(Path(u)))
    )
    state = {name: digest(uri) for name, uri in outputs.items()}
    for region in REGIONS:
        try:
            arrays = raster_store.read_region(storage, DEMO, region)
        except raster_store.RasterStoreError:
            state[f"raster {region}"] = None
            continue
        h = hashlib.sha256()
        for var in sorted(arrays):
            h.update(arrays[var].tobytes())
        state[f"raster {region}"] = h.hexdigest()
    return state


def orphans(storage) -> list[str]:
    """What a finished run must not leave: stage folders, hidden files in the published
    trees, S3 keys of folder datasets that no pointer names, unfinished multipart uploads."""
    from ocr_core import publish

    found = [str(p) for p in publish.staging_root(storage).glob("*")]
    if not storage.is_s3:
        for top in ("output", "intermediate"):
            base = Path(storage.root) / top
            found += [str(p) for p in base.rglob(".*")] if base.exists() else []
        return found
    fs = storage.filesystem()
    for uri in (
        storage.partitioned_buildings_uri,
        storage.summary_stats_dir,
        storage.region_analysis_dir,
        storage.pyramid_uri,
    ):
        pointer = publish.read_pointer(storage, uri) or {}
        keep = {pointer.get("version"), pointer.get("previous"), publish.POINTER}
        base = storage.fs_path(uri).rstrip("/")
        keys = fs.find(base) if fs.exists(base) else []
        found += [k for k in keys if k[len(base) + 1 :].split("/", 1)[0] not in keep]
    client = publish.s3_client(storage)
    bucket = storage.root[len("s3://") :].split("/", 1)[0]
    found += [u["Key"] for u in client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]
    return found


def compare(before: dict, after: dict, new: dict | None = None) -> tuple[int, int]:
    """(lost, corrupted) outputs of ``after``: each must be as ``before`` or, for the outputs
    ``new`` names, its new complete version."""
    lost = corrupted = 0
    for name, old in before.items():
        now = after.get(name)
        allowed = {old, (new or {}).get(name, old)}
        if now is None and old is not None:
            lost += 1
        elif now not in allowed:
            corrupted += 1
    return lost, corrupted


# --- the work root ------------------------------------------------------------------------
class Workspace:
    """Demo inputs in two versions (B: a tenth of the buildings dropped), and a storage root
    published completely from version A."""

    def __init__(self, base: Path, env: dict | None = None):
        self.base = base
        self.env = {**os.environ, **(env or {}), "PYTHONDONTWRITEBYTECODE": "1"}
        self.env.pop("OCR_FAULTS", None)
        self.inputs = {"A": base / "inputs-a", "B": base / "inputs-b"}
        self.versions: dict = {}  # (root, region or "fan-ins") -> input version published there

    def make_inputs(self, source: Path | None = None) -> None:
        import pyarrow.parquet as pq

        from ocr_core.catalog import spec
        from ocr_core.schema import BUILDINGS

        if source is None:
            source = self.base / "inputs-src"
            self._demo_inputs(source)
        for version, path in self.inputs.items():
            shutil.copytree(source, path)
            if version == "B":
                target = path / spec(BUILDINGS).prefix
                table = pq.read_table(target)
                keep = [i for i in range(table.num_rows) if i % 10]
                pq.write_table(table.take(keep), target)

    def _demo_inputs(self, root: Path) -> None:
        import dagster as dg

        from ocr_assets.inputs import demo_inputs
        from ocr_resources import InputCatalogResource

        result = dg.materialize(
            [demo_inputs],
            resources={"catalog": InputCatalogResource(root=str(root))},
            run_config={"ops": {"demo_inputs": {"config": {"n_buildings": N_BUILDINGS}}}},
        )
        assert result.success

    def start(
        self, step: str, root: str, version: str = "A", faults=None, regions=REGIONS, **env
    ) -> subprocess.Popen:
        """A step started in its own process (``env``: extra variables, e.g. OCR_ENVIRONMENT)."""
        run_env = {**self.env, **env}
        if faults:
            run_env["OCR_FAULTS"] = json.dumps(faults)
        args = [
            sys.executable,
            str(HERE / "fault_worker.py"),
            step,
            root,
            str(self.inputs[version]),
        ]
        return subprocess.Popen(
            [*args, *regions],
            env=run_env,
            cwd=HERE.parent,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def step(
        self,
        step: str,
        root: str,
        version: str = "A",
        faults: dict | None = None,
        kill_after: float | None = None,
        regions=REGIONS,
        **env,
    ) -> tuple[int | None, float]:
        """Run a step in its own process; (exit code, None if it had to be killed as stuck;
        seconds). ``kill_after``: SIGKILL it after that many seconds."""
        started = time.monotonic()
        proc = self.start(step, root, version, faults, regions, **env)
        if kill_after is not None:
            try:
                proc.wait(timeout=kill_after)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
        return finish(proc, step), time.monotonic() - started

    def publish_all(self, root: str, version: str = "A") -> dict[str, float]:
        """Every step once, in pipeline order; the seconds each took."""
        seconds = {}
        for step in ("region", *FAN_IN_STEPS):
            code, took = self.step(step, root, version)
            if code != 0:
                raise RuntimeError(f"{step} did not finish (exit {code})")
            seconds[step] = took
        return seconds


def finish(proc: subprocess.Popen, step: str) -> int | None:
    """Wait for a step's process: its exit code, or None if it had to be killed as stuck."""
    try:
        _, err = proc.communicate(timeout=STEP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return None
    if proc.returncode not in (0, -signal.SIGKILL):
        raise RuntimeError(f"{step} exited {proc.returncode}: {err.decode()[-2000:]}")
    return proc.returncode


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
        _prepare_step(ws, storage, step, target)
        before = published(storage)
        new = {
            k: v
            for k, v in clean[target].items()
            if _belongs(k, step) and (region is None or k.endswith(region))
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


def _belongs(output: str, step: str) -> bool:
    prefix = {
        "region": ("region ", "raster "),
        "consolidate": ("consolidated", "hive"),
        "summary": ("summary", "analysis"),
        "tiles": ("pmtiles",),
        "pyramid": ("pyramid",),
    }[step]
    return output.startswith(prefix)


def _prepare_step(ws: Workspace, storage, step: str, version: str) -> None:
    """Bring what the step reads to ``version`` by copying it from that version's clean root
    (region files; for the tiles, the statistics too), so only the step under test changes
    what it publishes."""
    from ocr_core.storage import Storage

    if step == "region":
        return
    clean = Storage(str(ws.base / f"clean-{version.lower()}"))
    folders = [clean.region_geoparquet_dir]
    if step in ("tiles", "pyramid"):
        folders.append(clean.summary_stats_dir)
    for folder in folders:
        target = storage.join(folder[len(clean.root) + 1 :])
        if storage.is_s3:  # the S3 trials' steps read the region files only
            fs = storage.filesystem()
            for f in sorted(Path(folder).iterdir()):
                fs.put_file(str(f), storage.fs_path(f"{target}/{f.name}"))
            continue
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(folder, target)


def clean_states(ws: Workspace, make_storage: Callable[[str], Any]) -> tuple[dict, dict]:
    """The complete published state of versions A and B, each from clean runs in its own
    root; and the seconds per step (for the random kill delays)."""
    states, seconds = {}, {}
    for version in ("A", "B"):
        storage = make_storage(str(ws.base / f"clean-{version.lower()}"))
        seconds = ws.publish_all(storage.root, version)
        states[version] = published(storage)
    return states, seconds


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


def copy_root(ws: Workspace, name: str) -> str:
    """A new local root holding a copy of clean root A (everything published from A)."""
    target = ws.base / name
    shutil.copytree(ws.base / "clean-a", target, symlinks=True)
    return str(target)


# --- Dagster: retries, a permanent failure, idempotency, bad inputs -----------------------------
RETRY_DELAY_S = 0.2


def _dagster_resources(inputs: Path, root: str) -> dict:
    from ocr_resources import (
        ComputeResource,
        DuckDBResource,
        InputCatalogResource,
        StorageResource,
        TippecanoeResource,
    )

    return {
        "storage": StorageResource(root=root),
        "catalog": InputCatalogResource(root=str(inputs)),
        "compute": ComputeResource(),
        "duckdb": DuckDBResource(memory_limit="1GB"),
        "tippecanoe": TippecanoeResource(),
    }


@contextmanager
def _with_faults(plan: dict | None) -> Iterator[None]:
    """OCR_FAULTS set to ``plan`` (unset if None) for an in-process run."""
    previous = os.environ.pop("OCR_FAULTS", None)
    if plan:
        os.environ["OCR_FAULTS"] = json.dumps(plan)
    try:
        yield
    finally:
        os.environ.pop("OCR_FAULTS", None)
        if previous is not None:
            os.environ["OCR_FAULTS"] = previous


def _region_step(regions_per_run: int = 1):
    from ocr_assets.phase01_regions import region_assets

    return region_assets("demo", 2, regions_per_run=regions_per_run, retry_delay_s=RETRY_DELAY_S)[1]


def _events(result, kind: str) -> list:
    return [e for e in result.all_events if e.event_type_value == kind]


def retry_category(ws: Workspace) -> Category:
    """Transient failures on 2 of 3 regions' first attempts (one of them twice): every region
    succeeds and the waits are 1 × and 2 × the delay. Then one region fails for good inside a
    run of all three and the fan-in after it: nothing downstream publishes."""
    import dagster as dg

    from ocr_assets import phase02_aggregation, phase03_tiles
    from ocr_core.storage import Storage

    cat = Category("retries")
    root = copy_root(ws, "retries")
    storage = Storage(root)
    flaky = {REGIONS[0]: 1, REGIONS[1]: 2}
    plan = {"transient_regions": list(flaky), "transient_attempts": flaky}
    step = _region_step()
    with dg.instance_for_test() as instance, _with_faults(plan):
        for region in REGIONS:
            case = cat.add(Case(cat.name, f"transient ×{flaky.get(region, 0)} {region}"))
            before = published(storage)
            result = dg.materialize(
                [step],
                partition_key=region,
                instance=instance,
                resources=_dagster_resources(ws.inputs["A"], root),
                raise_on_error=False,
            )
            waits = [
                e.event_specific_data.seconds_to_wait for e in _events(result, "STEP_UP_FOR_RETRY")
            ]
            expected = [RETRY_DELAY_S * (k + 1) for k in range(flaky.get(region, 0))]
            case.lost, case.corrupted = compare(before, published(storage))
            case.orphans = len(orphans(storage))
            case.note = f"waits {waits} s, expected {expected} (linear: delay × attempt)"
            case.passed = (
                result.success
                and [round(w, 6) for w in waits] == [round(w, 6) for w in expected]
                and not (case.lost or case.corrupted or case.orphans)
            )
    case = cat.add(Case(cat.name, f"permanent failure of {REGIONS[2]} in a 3-region run"))
    fan_ins = [phase02_aggregation.buildings_geoparquet, phase02_aggregation.region_summary_stats]
    before = published(storage)
    with dg.instance_for_test() as instance, _with_faults({"permanent_regions": [REGIONS[2]]}):
        result = dg.materialize(
            [_region_step(len(REGIONS)), *fan_ins, phase03_tiles.regional_pmtiles],
            instance=instance,
            resources=_dagster_resources(ws.inputs["B"], root),
            raise_on_error=False,
            tags={
                "dagster/asset_partition_range_start": REGIONS[0],
                "dagster/asset_partition_range_end": REGIONS[-1],
            },
        )
    after = published(storage)
    fan_in_keys = {a.key for a in fan_ins} | {phase03_tiles.regional_pmtiles.key}
    published_fan_ins = [
        e for e in result.all_events if e.is_step_materialization and e.asset_key in fan_in_keys
    ]
    changed = sorted(k for k in before if before[k] != after[k])
    moved = [k for k in changed if not k.endswith((REGIONS[0], REGIONS[1]))]
    failures = _events(result, "STEP_FAILURE")
    case.lost, case.corrupted = compare(
        before, after, {k: after[k] for k in changed if k not in moved}
    )
    case.corrupted += len(moved)
    case.orphans = len(orphans(storage))
    case.note = f"changed: {changed}"
    case.passed = (
        not result.success
        and not published_fan_ins
        and not _events(result, "STEP_UP_FOR_RETRY")
        and len(failures) == 1
        and "injected permanent failure" in failures[0].event_specific_data.error.message
        and not (case.lost or case.corrupted or case.orphans)
    )
    return cat


def idempotency_category(ws: Workspace) -> Category:
    """A region partition materialized twice, and the consolidation twice: the same bytes,
    and no building twice downstream."""
    import dagster as dg

    from ocr_assets import phase02_aggregation
    from ocr_core import checks
    from ocr_core.storage import Storage

    cat = Category("idempotency")
    root = copy_root(ws, "idempotency")
    storage = Storage(root)
    with dg.instance_for_test() as instance:
        for label, assets, key in (
            ("region twice", [_region_step()], REGIONS[0]),
            ("consolidation twice", [phase02_aggregation.buildings_geoparquet], None),
        ):
            case = cat.add(Case(cat.name, label))
            states, successes = [], []
            for _ in range(2):
                result = dg.materialize(
                    assets,
                    partition_key=key,
                    instance=instance,
                    resources=_dagster_resources(ws.inputs["A"], root),
                    raise_on_error=False,
                )
                states.append(published(storage))
                successes.append(result.success)
            clean = published(Storage(str(ws.base / "clean-a")))
            case.lost, case.corrupted = compare(clean, states[-1])
            case.corrupted += sum(1 for k in clean if states[0][k] != states[1][k])
            ok, details = checks.consolidated_matches_regions(storage)
            case.orphans = len(orphans(storage))
            case.note = (
                f"consolidated rows {details['consolidated']['rows']} of {details['region_rows']}"
            )
            case.passed = (
                all(successes) and ok and not (case.lost or case.corrupted or case.orphans)
            )
    return cat


def _one_line_failure(result) -> tuple[bool, str]:
    """(the run failed once, not retried, with a one-line error; that line)."""
    failures = _events(result, "STEP_FAILURE")
    if result.success or len(failures) != 1 or _events(result, "STEP_UP_FOR_RETRY"):
        return False, f"success={result.success} failures={len(failures)}"
    message = failures[0].event_specific_data.error.message.strip()
    return len(message.splitlines()) == 1, message


def _input_mutations() -> dict[str, tuple[str, Callable]]:
    """Bad input datasets: name -> (dataset, mutate(ds) -> ds), the schema cases of
    tests/test_input_validation.py and the catalog cases of tests/test_phase01_bad_input.py."""
    import numpy as np
    from input_edits import web_mercator
    from test_input_validation import CASES

    from ocr_core.grid import DEMO
    from ocr_core.schema import SCOTT_2024 as SCOTT
    from ocr_core.schema import WIND_DISTRIBUTION as WIND

    def negate(ds):
        w = ds.wind_direction_distribution.values.copy()
        w[..., 0] = -np.abs(w[..., 0]) - 0.1
        return ds.assign(wind_direction_distribution=(ds.wind_direction_distribution.dims, w))

    cases = {name: (dataset, mutate) for name, (dataset, (mutate, _), _) in CASES.items()}
    return cases | {
        "wrong_crs": (SCOTT, web_mercator),
        "missing_variable": (SCOTT, lambda ds: ds.drop_vars("CRPS")),
        "off_the_grid": (
            WIND,
            lambda ds: ds.assign_coords(longitude=ds.longitude + DEMO.pixel_size * 0.4),
        ),
        "wind_all_negative_north": (WIND, negate),
    }


BadInput = tuple[str, Callable[[], Path], list, "dict | None"]  # name, prepare, assets, plan


def _bad_input_cases(ws: Workspace, fresh_inputs: Callable[[str], Path]) -> list[BadInput]:
    """Every bad input: a schema violation, a corrupt or shrunk buildings file, a missing
    dataset, a computed value out of range, a missing census level."""
    import pyarrow.parquet as pq
    from input_edits import rewrite_dataset
    from test_input_validation import BUILDING_CASES

    from ocr_assets import phase02_aggregation
    from ocr_core.catalog import spec
    from ocr_core.schema import BUILDINGS, GEOGRAPHY, WIND_DISTRIBUTION

    def shrink(path: Path) -> None:
        table = pq.read_table(path)
        pq.write_table(table.take(list(range(0, table.num_rows, 4))), path)

    def mutated(name: str, dataset: str, mutate) -> Callable[[], Path]:
        def prepare() -> Path:
            path = fresh_inputs(name)
            rewrite_dataset(path, dataset, mutate)
            return path

        return prepare

    def corrupted(name: str, corrupt) -> Callable[[], Path]:
        def prepare() -> Path:
            path = fresh_inputs(name)
            corrupt(path / spec(BUILDINGS).prefix)
            return path

        return prepare

    def removed(name: str, dataset: str) -> Callable[[], Path]:
        def prepare() -> Path:
            path = fresh_inputs(name)
            target = path / spec(dataset).prefix
            if target.is_dir():
                shutil.rmtree(target)
            else:
                target.unlink()
            return path

        return prepare

    region_step = [_region_step()]
    cases: list[BadInput] = [
        (name, mutated(name, dataset, mutate), region_step, None)
        for name, (dataset, mutate) in _input_mutations().items()
    ]
    building_cases = {**BUILDING_CASES, "buildings_shrunk_to_a_quarter": (shrink, [])}
    cases += [
        (name, corrupted(name, corrupt), region_step, None)
        for name, (corrupt, _) in building_cases.items()
    ]
    cases += [
        ("missing_dataset", removed("missing_dataset", WIND_DISTRIBUTION), region_step, None),
        ("computed_bp_out_of_range", lambda: ws.inputs["A"], region_step,
         {"corrupt_regions": {REGIONS[0]: {"bp_2011": 1.5}}}),
        ("missing_census_counties",
         removed("missing_census", GEOGRAPHY["counties"].census_dataset),
         [phase02_aggregation.region_summary_stats], None),
    ]  # fmt: skip
    return cases


def bad_input_category(ws: Workspace) -> Category:
    """Each bad input in a copy of the inputs, run against the fully published root: a failed
    run with one clear line, not retried, and every published output byte-identical."""
    import dagster as dg

    from ocr_core.storage import Storage

    cat = Category("bad inputs")
    root = copy_root(ws, "bad-inputs")
    storage = Storage(root)
    region = REGIONS[0]

    def fresh_inputs(name: str) -> Path:
        path = ws.base / "bad" / name
        shutil.copytree(ws.inputs["A"], path)
        return path

    with dg.instance_for_test() as instance:
        for name, prepare, assets, plan in _bad_input_cases(ws, fresh_inputs):
            case = cat.add(Case(cat.name, name))
            inputs = prepare()
            before = published(storage)
            partitioned = assets[0].partitions_def is not None
            with _with_faults(plan):
                result = dg.materialize(
                    assets,
                    partition_key=region if partitioned else None,
                    instance=instance,
                    resources=_dagster_resources(inputs, root),
                    raise_on_error=False,
                )
            clear, line = _one_line_failure(result)
            case.lost, case.corrupted = compare(before, published(storage))
            case.orphans = len(orphans(storage))
            case.note = line[:300]
            case.passed = clear and not (case.lost or case.corrupted or case.orphans)
            if inputs != ws.inputs["A"]:
                shutil.rmtree(inputs)
    cat.cases.append(_tampered_region_file(ws, storage, root))
    cat.cases += _bad_command_lines(ws, storage)
    return cat


def _bad_command_lines(ws: Workspace, storage) -> list[Case]:
    """Roots that cannot work and a region without data, given to ``ocr-dagster``: exit 2 and
    one line naming the problem, before anything runs; the published outputs untouched."""
    a_file = ws.base / "a-file"
    a_file.write_text("not a folder")
    cases = {
        "OCR_STORAGE_ROOT=s3://": {"OCR_STORAGE_ROOT": "s3://"},
        "OCR_STORAGE_ROOT=s3:/b": {"OCR_STORAGE_ROOT": "s3:/b"},
        "OCR_STORAGE_ROOT=gs://b": {"OCR_STORAGE_ROOT": "gs://b"},
        "OCR_STORAGE_ROOT=s3://My_Bucket": {"OCR_STORAGE_ROOT": "s3://My_Bucket"},
        "OCR_STORAGE_ROOT is a file": {"OCR_STORAGE_ROOT": str(a_file)},
        "OCR_STORAGE_ROOT unwritable": {"OCR_STORAGE_ROOT": "/sys/ocr-root"},
        "OCR_INPUT_ROOT=s3://": {"OCR_INPUT_ROOT": "s3://"},
    }
    out = []
    before = published(storage)
    for name, env in cases.items():
        out.append(_command_case(ws, name, ["region", REGIONS[0]], env, env_name=next(iter(env))))
    out.append(_command_case(ws, "region without data y9_x9", ["run", "--regions", "y9_x9"],
                             {"OCR_STORAGE_ROOT": storage.root}, env_name="y9_x9"))  # fmt: skip
    lost, corrupted = compare(before, published(storage))
    out[-1].lost, out[-1].corrupted = lost, corrupted
    out[-1].passed &= not (lost or corrupted)
    return out


def _command_case(ws: Workspace, name: str, args: list[str], env: dict, env_name: str) -> Case:
    case = Case("bad inputs", name)
    clean_env = {k: v for k, v in ws.env.items() if not k.startswith("OCR_")}
    home = ws.base / "cli-home"
    proc = subprocess.run(
        [sys.executable, "-m", "ocr_assets.cli", *args],
        cwd=HERE.parent,
        env={**clean_env, "DAGSTER_HOME": str(home), "OCR_INPUT_ROOT": str(ws.inputs["A"]), **env},
        capture_output=True,
        text=True,
        timeout=STEP_TIMEOUT_S,
    )
    lines = proc.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    case.note = f"exit {proc.returncode}: {errors[0] if errors else proc.stderr[-300:]}"
    case.passed = (
        proc.returncode == 2
        and len(errors) == 1
        and env_name in errors[0]
        and "Traceback" not in proc.stderr
        and not home.exists()  # refused before an instance or a daemon
    )
    return case


def _tampered_region_file(ws: Workspace, storage, root: str) -> Case:
    """A published region file altered to BP = 1.5 (a bad upstream): the consolidation's
    blocking check fails naming the value, and every product stays byte-identical."""
    import dagster as dg
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ocr_assets.definitions import fan_in_assets

    case = Case("bad inputs", "region file with bp_2011 = 1.5")
    path = Path(storage.region_geoparquet_uri(REGIONS[1]))
    original = path.read_bytes()
    table = pq.read_table(path)
    bp = table.column("bp_2011").to_pylist()
    bp[0] = 1.5
    index = table.schema.get_field_index("bp_2011")
    pq.write_table(table.set_column(index, "bp_2011", pa.array(bp, pa.float32())), path)
    before = published(storage)
    with dg.instance_for_test() as instance:
        optional = {"region_analysis_files", "risk_pyramid"}
        fan_ins = fan_in_assets()
        result = dg.materialize(
            [a for a in fan_ins if a.key.to_user_string() not in optional],
            instance=instance,
            resources=_dagster_resources(ws.inputs["A"], root),
            raise_on_error=False,
        )
        checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    failures = [e.event_specific_data.error.message for e in _events(result, "STEP_FAILURE")]
    case.lost, case.corrupted = compare(before, published(storage))
    case.orphans = len(orphans(storage))
    case.note = f"{len(failures)} failed steps; checks {checks}; {failures}"[:2000]
    case.passed = (
        not result.success
        and len(failures) == 3  # consolidation, statistics, tile features; the rest never ran
        and all("1.5" in m and len(m.strip().splitlines()) == 1 for m in failures)
        and checks.get("buildings_value_ranges") is False
        and checks.get("region_files_value_ranges") is False
        and not (case.lost or case.corrupted or case.orphans)
    )
    path.write_bytes(original)
    return case


# --- concurrency and S3 -----------------------------------------------------------------------
def concurrency_category(ws: Workspace, clean: dict[str, dict]) -> Category:
    """Two writers of one environment at once (each product whole, the same as a clean run,
    nothing left behind), and two environments side by side (each its own outputs)."""
    from ocr_core.storage import Storage

    cat = Category("concurrency")
    root = copy_root(ws, "concurrency")
    for step in ("consolidate", "tiles"):
        case = cat.add(Case(cat.name, f"two {step} writers, one environment"))
        _prepare_step(ws, Storage(root), step, "B")
        procs = [ws.start(step, root, "B") for _ in range(2)]
        codes = [finish(p, step) for p in procs]
        after = published(Storage(root))
        new = {k: v for k, v in clean["B"].items() if _belongs(k, step)}
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
            _prepare_step(ws, storage, step, target)
            before = published(storage)
            if i % 3 == 2:
                delay = rng.uniform(0.3, 2.5)
                how, kwargs = f"after {delay:.2f} s", {"kill_after": delay}
            else:
                point, at = points[i % 3], rng.randrange(1, 4)
                how, kwargs = f"at {point}#{at}", {"faults": {"kill": {"point": point, "at": at}}}
            case = cat.add(Case(cat.name, f"{step} killed {how}"))
            new = {k: v for k, v in clean[target].items() if _belongs(k, step)}
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
