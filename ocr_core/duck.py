"""DuckDB connections for the aggregation steps: spatial loaded offline, memory bounded.

The spatial extension comes from the ``duckdb-extension-spatial`` wheel (its version must
equal DuckDB's) and is loaded from that file: nothing is downloaded at run time. S3 paths are
read through an fsspec filesystem registered on the connection (no httpfs needed).
"""

from __future__ import annotations

import glob
import os
import re
import tempfile
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ocr_core.storage import Storage

if TYPE_CHECKING:
    import duckdb


class DuckDBSetupError(RuntimeError):
    """DuckDB or its spatial extension cannot be set up; the message says how to fix it."""


@dataclass(frozen=True)
class DuckDBConfig:
    """Resource limits of one connection: memory, threads and where to spill."""

    memory_limit: str = "4GB"
    threads: int | None = None  # None: all cores
    temp_directory: str | None = None  # None: a folder under the system temp dir


def spatial_extension_path() -> str:
    import importlib.resources as resources

    import duckdb

    try:
        base = resources.files("duckdb_extension_spatial")
    except ModuleNotFoundError as exc:
        raise DuckDBSetupError(
            "the DuckDB spatial extension package is missing: install "
            f"duckdb-extension-spatial=={duckdb.__version__}"
        ) from exc
    path = base / "extensions" / f"v{duckdb.__version__}" / "spatial.duckdb_extension"
    if not path.is_file():
        raise DuckDBSetupError(
            f"duckdb-extension-spatial has no build for DuckDB {duckdb.__version__} (looked for "
            f"{path}); pin both packages to the same version"
        )
    return str(path)


def sql_literal(value: str) -> str:
    """A SQL string literal of ``value`` (single quotes doubled)."""
    return "'" + value.replace("'", "''") + "'"


def sql_file(uri: str) -> str:
    """SQL literal naming one file for DuckDB's readers, read as that file and never as a
    pattern. Local paths are given as they are (DuckDB opens an existing path as is); an s3://
    path goes through the registered fsspec filesystem's ``glob``, so its ``[``, ``*`` and ``?``
    are escaped."""
    if uri.startswith("s3://"):
        uri = glob.escape(uri)
    return sql_literal(uri)


def sql_files(uris: list[str]) -> str:
    """SQL list of files (see ``sql_file``), e.g. for ``read_parquet([...])``."""
    return "[" + ", ".join(map(sql_file, uris)) + "]"


def parquet_columns(con, source: str) -> dict[str, str]:
    """Column name → DuckDB type of a parquet source (a ``sql_file``/``sql_files`` literal)."""
    rows = con.execute(f"DESCRIBE SELECT * FROM read_parquet({source})").fetchall()
    return {row[0]: row[1] for row in rows}


def geometry_crs(columns: dict[str, str], column: str = "geometry") -> tuple[bool, str | None]:
    """(``column`` is a GEOMETRY, the CRS DuckDB read from its GeoParquet metadata or None)."""
    match = re.fullmatch(r"GEOMETRY(?:\('(.*)'\))?", columns.get(column, ""))
    return match is not None, match.group(1) if match and match.group(1) else None


def fetch_one(con, sql: str) -> tuple:
    """The one row of a query that always returns one (an aggregate without GROUP BY)."""
    row = con.execute(sql).fetchone()
    assert row is not None, sql
    return row


def record_batches(con, sql: str, rows: int = 50_000):
    """A query's result as a pyarrow RecordBatchReader of ``rows``-row batches (streamed)."""
    return con.execute(sql).to_arrow_reader(rows)


def connect(
    config: DuckDBConfig | None = None, storage: Storage | None = None
) -> duckdb.DuckDBPyConnection:
    """An in-memory connection with spatial loaded, limits applied and S3 registered.

    DuckDB connections are context managers: use ``with connect(...) as con:`` so the
    connection (and its spill files) is closed on every path."""
    import duckdb

    config = config or DuckDBConfig()
    temp = config.temp_directory or os.path.join(tempfile.gettempdir(), "ocr-duckdb")
    os.makedirs(temp, exist_ok=True)
    settings: dict[str, str | bool | int | float | list[str]] = {
        "autoinstall_known_extensions": "false",
        "autoload_known_extensions": "false",
        "memory_limit": config.memory_limit,
        "temp_directory": temp,
        "preserve_insertion_order": "false",
    }
    if config.threads:
        settings["threads"] = str(config.threads)
    con = duckdb.connect(":memory:", config=settings)
    con.execute("SET enable_progress_bar = false")
    con.execute(f"LOAD '{spatial_extension_path()}'")
    if storage is not None and storage.is_s3:
        con.register_filesystem(storage.filesystem())
    return con
