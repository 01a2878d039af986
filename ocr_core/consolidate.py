"""Building GeoParquet outputs: one consolidated file and a state/county hive dataset.

The reference's partition step read the region files twice and wrote with OVERWRITE_OR_IGNORE,
leaving stale ``data_N`` files behind (docs/method.md). Here:

1. The region files are listed once and read once, by one DuckDB ``COPY`` that sorts the rows
   by GEOID (then bbox corner, so reruns are deterministic) and writes the consolidated file into
   local scratch. Geometry stays WKB bytes end to end (``enable_geoparquet_conversion`` off: no
   parsing); the GeoParquet 1.1 ``geo`` metadata (CRS, covering bbox column) is merged from
   the region files' footers and written by us, together with the vector metadata.
2. That local, GEOID-sorted file is streamed once with pyarrow into one file per county,
   ``state_fips=SS/county_fips=CCC/data_0.parquet``: a county's rows are contiguous, so one
   writer is open at a time (memory bounded by one row group), every county gets exactly one
   file with a fixed name, and rows stay in GEOID order (row-group statistics prune by GEOID).
   ``_common_metadata`` holds the schema (no partition fields) with the vector metadata.
3. Both are written in one stage, checked there (every region building present once in
   each, risk values in range, no collapse in count against the published file) and only then
   published, each whole (``ocr_core.publish``): a reader never sees a county twice, an empty
   folder, a partial file or values that failed a check.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from ocr_core.checks import Audit
from ocr_core.duck import DuckDBConfig, connect, fetch_one, sql_files, sql_literal
from ocr_core.metadata import vector_metadata
from ocr_core.storage import Storage

PARTITION_FIELDS = ("state_fips", "county_fips")
PART_FILE = "data_0.parquet"
ROW_GROUP_ROWS = 122_880  # DuckDB's default; also the unit of pyarrow's buffering per county
ZSTD_LEVEL = 3  # DuckDB's default zstd level, used for both outputs
GEOID_PATTERN = r"^[0-9]{15}$"


class RegionBuildingsMissingError(FileNotFoundError):
    """No region building files to consolidate; the message names the folder and the fix."""


class BuildingDataError(ValueError):
    """The region building files cannot be consolidated as they are (bad GEOID or metadata)."""


@dataclass(frozen=True)
class ConsolidatedBuildings:
    """Where the two building outputs went, their size, and the checks' figures."""

    consolidated_uri: str
    partitioned_uri: str
    region_files: int
    buildings: int
    partitions: int
    consolidated_bytes: int
    partitioned_bytes: int
    seconds: float
    checks: Audit


def write_buildings_geoparquet(
    storage: Storage, duck: DuckDBConfig | None = None, accept_shrink: bool = False
) -> ConsolidatedBuildings:
    """Write, check and publish the consolidated building file and the state/county dataset
    (``checks.AuditError`` if a check failed).

    Nothing is published unless both outputs were written completely and passed; a rerun
    replaces the previous outputs whole.
    """
    from ocr_core.publish import stage

    start = time.perf_counter()
    source_dir = storage.region_geoparquet_dir
    # Hidden names (in-flight or abandoned atomic-write temp files) are never listed.
    sources = storage.list_files(source_dir, ".parquet")
    if not sources:
        raise RegionBuildingsMissingError(
            f"no region building files in {source_dir}: materialize the region_buildings "
            "asset (all regions) before the building GeoParquet outputs"
        )
    meta = vector_metadata(storage.version)
    with connect(duck, storage) as con:
        con.execute("SET enable_geoparquet_conversion = false")
        geo = _merged_geo_metadata(con, sources)
        with stage(storage) as st:
            cpath = st.file(storage.consolidated_buildings_uri, ".parquet")
            pdir = st.folder(storage.partitioned_buildings_uri)
            copied = _write_consolidated(con, sources, cpath, geo, meta)
            con.close()  # release DuckDB's buffers before the split pass
            buildings, partitions = _write_partitions(cpath, pdir, geo, meta)
            if buildings != copied:
                raise RuntimeError(
                    f"partitioned dataset has {buildings} buildings, consolidated file {copied}"
                )
            consolidated_bytes = cpath.stat().st_size
            partitioned_bytes = sum(p.stat().st_size for p in pdir.rglob("*") if p.is_file())
            audited = _audit(storage, duck, cpath, pdir, buildings, accept_shrink)
            st.publish()
    return ConsolidatedBuildings(
        consolidated_uri=storage.consolidated_buildings_uri,
        partitioned_uri=storage.partitioned_buildings_uri,
        region_files=len(sources),
        buildings=buildings,
        partitions=partitions,
        consolidated_bytes=consolidated_bytes,
        partitioned_bytes=partitioned_bytes,
        seconds=round(time.perf_counter() - start, 3),
        checks=audited,
    )


def _audit(
    storage: Storage,
    duck: DuckDBConfig | None,
    consolidated: Path,
    partitioned: Path,
    buildings: int,
    accept_shrink: bool,
) -> Audit:
    """The blocking checks of the staged outputs (``checks.AuditError`` if one failed)."""
    from ocr_core import checks

    published = checks.parquet_rows(storage, storage.consolidated_buildings_uri)
    return checks.audit(
        {
            "buildings_match_region_files": checks.consolidated_matches_regions(
                storage, duck, consolidated=str(consolidated), partitioned=str(partitioned)
            ),
            "buildings_value_ranges": checks.building_value_ranges(
                storage, duck, path=str(consolidated)
            ),
            "buildings_not_collapsed": checks.shrink_guard(
                published, buildings, accept_shrink, "the consolidated buildings"
            ),
        }
    )


def _merged_geo_metadata(con, sources: list[str]) -> dict:
    """GeoParquet 1.1 ``geo`` metadata of the union of the region files (footers only).

    CRS, encoding and covering must agree (they come from one writer); bbox and geometry types
    are the union over files.
    """
    rows = con.execute(
        "SELECT file_name, decode(value) FROM parquet_kv_metadata("
        f"{sql_files(sources)}) WHERE key = 'geo'::BLOB"
    ).fetchall()
    found = {name: json.loads(text) for name, text in rows}
    if len(found) < len(sources):
        missing = [s for s in sources if s not in found]
        raise BuildingDataError(
            f"{len(sources) - len(found)} region file(s) without GeoParquet 'geo' metadata, "
            f"e.g. {missing[0]}: rematerialize region_buildings for those regions"
        )
    docs = list(found.values())
    primary = docs[0]["primary_column"]
    columns = [d["columns"][primary] for d in docs]
    base = dict(columns[0])
    for key in ("encoding", "crs", "covering"):
        if any(c.get(key) != base.get(key) for c in columns):
            raise BuildingDataError(
                f"region files disagree on the geometry {key!r}: rematerialize region_buildings"
            )
    if base.get("encoding") != "WKB":
        raise BuildingDataError(f"region files use {base.get('encoding')!r} geometry, not WKB")
    types = [c.get("geometry_types", []) for c in columns]
    base["geometry_types"] = [] if not all(types) else sorted({t for ts in types for t in ts})
    boxes = [c["bbox"] for c in columns if c.get("bbox")]
    base.pop("bbox", None)
    if len(boxes) == len(columns):
        base["bbox"] = [
            min(b[0] for b in boxes),
            min(b[1] for b in boxes),
            max(b[2] for b in boxes),
            max(b[3] for b in boxes),
        ]
    return {"version": "1.1.0", "primary_column": primary, "columns": {primary: base}}


def _write_consolidated(con, sources: list[str], path: Path, geo: dict, meta: dict) -> int:
    """One read of every region file, sorted by GEOID, into one zstd GeoParquet file."""
    files = sql_files(sources)
    columns = {
        r[0] for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet({files})").fetchall()
    }
    if "GEOID" not in columns:
        raise BuildingDataError("region files have no GEOID column: rematerialize region_buildings")
    order = "GEOID, bbox.xmin, bbox.ymin" if "bbox" in columns else "GEOID"
    kv = {"geo": json.dumps(geo), **meta}
    kv_sql = ", ".join(f'"{k}": {sql_literal(v)}' for k, v in kv.items())
    (count,) = fetch_one(
        con,
        f"COPY (SELECT * FROM read_parquet({files}) ORDER BY {order}) TO {sql_literal(str(path))} "
        f"(FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL {ZSTD_LEVEL}, "
        f"ROW_GROUP_SIZE {ROW_GROUP_ROWS}, KV_METADATA {{{kv_sql}}})",
    )
    return int(count)


class _CountyWriter:
    """Writes one county's rows (arriving in GEOID order) to one file, a row group at a time."""

    def __init__(self, folder: Path, county: str, schema, geo: dict, meta: dict):
        import pyarrow as pa
        import pyarrow.parquet as pq

        state, county_code = PARTITION_FIELDS
        target = folder / f"{state}={county[:2]}" / f"{county_code}={county[2:]}" / PART_FILE
        target.parent.mkdir(parents=True)
        # Dictionaries only for the string columns (faster and smaller than trying every
        # column); no ARROW:schema copy: its metadata (dataset-wide geo) would shadow the file's.
        strings = [f.name for f in schema if pa.types.is_string(f.type)]
        self.writer = pq.ParquetWriter(
            target,
            schema,
            compression="zstd",
            compression_level=ZSTD_LEVEL,
            use_dictionary=strings,  # pyright: ignore[reportArgumentType]  (a list is allowed)
            store_schema=False,
        )
        self.schema, self.geo, self.meta = schema, geo, meta
        self.pending: list = []
        self.pending_rows = 0
        self.bounds: list[float] | None = None

    def add(self, batch) -> None:
        self.pending.append(batch)
        self.pending_rows += batch.num_rows
        if self.pending_rows >= ROW_GROUP_ROWS:
            self.flush()

    def flush(self) -> None:
        import pyarrow as pa

        if not self.pending:
            return
        table = pa.Table.from_batches(self.pending, schema=self.schema)
        self.pending, self.pending_rows = [], 0
        self._extend_bounds(table)
        self.writer.write_table(table, row_group_size=ROW_GROUP_ROWS)

    def _extend_bounds(self, table) -> None:
        import pyarrow.compute as pc

        if "bbox" not in table.column_names:
            return
        bbox = table.column("bbox")
        lo = [pc.min(pc.struct_field(bbox, f)).as_py() for f in ("xmin", "ymin")]  # pyright: ignore[reportAttributeAccessIssue]
        hi = [pc.max(pc.struct_field(bbox, f)).as_py() for f in ("xmax", "ymax")]  # pyright: ignore[reportAttributeAccessIssue]
        if self.bounds is None:
            self.bounds = [*lo, *hi]
        else:
            self.bounds = [
                min(self.bounds[0], lo[0]),
                min(self.bounds[1], lo[1]),
                max(self.bounds[2], hi[0]),
                max(self.bounds[3], hi[1]),
            ]

    def close(self) -> None:
        self.flush()
        primary = self.geo["primary_column"]
        column = {k: v for k, v in self.geo["columns"][primary].items() if k != "bbox"}
        if self.bounds is not None and None not in self.bounds:
            column["bbox"] = self.bounds
        file_geo = {**self.geo, "columns": {primary: column}}
        self.writer.add_key_value_metadata({"geo": json.dumps(file_geo), **self.meta})
        self.writer.close()


def _write_partitions(consolidated: Path, folder: Path, geo: dict, meta: dict) -> tuple[int, int]:
    """Stream the GEOID-sorted file into one file per county; (buildings, counties)."""
    import numpy as np
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    source = pq.ParquetFile(consolidated)
    schema = source.schema_arrow
    writer: _CountyWriter | None = None
    current: str | None = None
    buildings = partitions = 0
    for batch in source.iter_batches(batch_size=65_536):
        geoid = batch.column("GEOID")
        valid = pc.fill_null(pc.match_substring_regex(geoid, GEOID_PATTERN), False)  # pyright: ignore[reportAttributeAccessIssue]
        if not pc.all(valid).as_py():  # pyright: ignore[reportAttributeAccessIssue]
            bad = pc.filter(geoid, pc.invert(valid))  # pyright: ignore[reportAttributeAccessIssue]
            raise BuildingDataError(
                f"{len(bad)}+ buildings have a missing or malformed GEOID (expected 15 digits, "
                f"e.g. got {bad[0].as_py()!r}): fix the tagged building input and "
                "rematerialize region_buildings"
            )
        keys = pc.cast(pc.utf8_slice_codeunits(geoid, 0, 5), "int32").to_numpy()  # pyright: ignore[reportAttributeAccessIssue]
        starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
        stops = np.r_[starts[1:], len(keys)]
        for lo, hi in zip(starts.tolist(), stops.tolist(), strict=True):
            county = f"{keys[lo]:05d}"
            if county != current:
                if writer is not None:
                    writer.close()
                if current is not None and county < current:
                    raise RuntimeError("consolidated file is not sorted by GEOID")
                writer = _CountyWriter(folder, county, schema, geo, meta)
                current = county
                partitions += 1
            assert writer is not None  # opened for the first county and on every change
            writer.add(batch.slice(lo, hi - lo))
            buildings += hi - lo
    if writer is not None:
        writer.close()
    _write_common_metadata(folder, schema, geo, meta)
    return buildings, partitions


def _write_common_metadata(folder: Path, schema, geo: dict, meta: dict) -> None:
    """``_common_metadata``: the files' schema (no partition fields), dataset geo, vector keys."""
    import pyarrow.parquet as pq

    metadata = {k: v for k, v in (schema.metadata or {}).items() if k != b"ARROW:schema"}
    metadata |= {b"geo": json.dumps(geo).encode()}
    metadata |= {k.encode(): v.encode() for k, v in meta.items()}
    pq.write_metadata(schema.with_metadata(metadata), folder / "_common_metadata")
