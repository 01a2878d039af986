"""The fault suite's bad inputs (tests/fault_suite.py): schema violations, corrupt or shrunk
buildings, a missing dataset, a computed value out of range, a missing census level, a
tampered region file and command lines that cannot work; each a failed run with one clear
line and every published output untouched."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from fault_dagster import (
    dagster_resources,
    one_line_failure,
    region_step_asset,
    step_events,
    with_faults,
)
from fault_state import REGIONS, Case, Category, compare, orphans, published
from fault_workspace import HERE, STEP_TIMEOUT_S, Workspace, copy_root


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
FreshInputs = Callable[[str], Path]  # a fresh copy of the inputs, named for its case


def _shrink(path: Path) -> None:
    """Keep every fourth building."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    pq.write_table(table.take(list(range(0, table.num_rows, 4))), path)


def _mutated(fresh_inputs: FreshInputs, name: str, dataset: str, mutate) -> Callable[[], Path]:
    """Prepares a copy of the inputs with ``dataset`` rewritten by ``mutate``."""

    def prepare() -> Path:
        from input_edits import rewrite_dataset

        path = fresh_inputs(name)
        rewrite_dataset(path, dataset, mutate)
        return path

    return prepare


def _corrupted(fresh_inputs: FreshInputs, name: str, corrupt) -> Callable[[], Path]:
    """Prepares a copy of the inputs with the buildings file altered by ``corrupt``."""

    def prepare() -> Path:
        from ocr_core.catalog import spec
        from ocr_core.schema import BUILDINGS

        path = fresh_inputs(name)
        corrupt(path / spec(BUILDINGS).prefix)
        return path

    return prepare


def _removed(fresh_inputs: FreshInputs, name: str, dataset: str) -> Callable[[], Path]:
    """Prepares a copy of the inputs without ``dataset``."""

    def prepare() -> Path:
        from ocr_core.catalog import spec

        path = fresh_inputs(name)
        target = path / spec(dataset).prefix
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink()
        return path

    return prepare


def _bad_input_cases(ws: Workspace, fresh_inputs: FreshInputs) -> list[BadInput]:
    """Every bad input: a schema violation, a corrupt or shrunk buildings file, a missing
    dataset, a computed value out of range, a missing census level."""
    from test_input_validation import BUILDING_CASES

    from ocr_assets import phase02_aggregation
    from ocr_core.schema import GEOGRAPHY, WIND_DISTRIBUTION

    region_step = [region_step_asset()]
    cases: list[BadInput] = [
        (name, _mutated(fresh_inputs, name, dataset, mutate), region_step, None)
        for name, (dataset, mutate) in _input_mutations().items()
    ]
    building_cases = {**BUILDING_CASES, "buildings_shrunk_to_a_quarter": (_shrink, [])}
    cases += [
        (name, _corrupted(fresh_inputs, name, corrupt), region_step, None)
        for name, (corrupt, _) in building_cases.items()
    ]
    cases += [
        ("missing_dataset", _removed(fresh_inputs, "missing_dataset", WIND_DISTRIBUTION),
         region_step, None),
        ("computed_bp_out_of_range", lambda: ws.inputs["A"], region_step,
         {"corrupt_regions": {REGIONS[0]: {"bp_2011": 1.5}}}),
        ("missing_census_counties",
         _removed(fresh_inputs, "missing_census", GEOGRAPHY["counties"].census_dataset),
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
            with with_faults(plan):
                result = dg.materialize(
                    assets,
                    partition_key=region if partitioned else None,
                    instance=instance,
                    resources=dagster_resources(inputs, root),
                    raise_on_error=False,
                )
            clear, line = one_line_failure(result)
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
            resources=dagster_resources(ws.inputs["A"], root),
            raise_on_error=False,
        )
        checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    failures = [e.event_specific_data.error.message for e in step_events(result, "STEP_FAILURE")]
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
