"""DuckDB resource: memory and spill limits for the aggregation and tile steps."""

import dagster as dg

from ocr_core.duck import DuckDBConfig


class DuckDBResource(dg.ConfigurableResource):
    """Bounded DuckDB settings; connections are opened by the tasks that use them."""

    memory_limit: str = "4GB"
    threads: int | None = None
    temp_directory: str | None = None

    def config(self) -> DuckDBConfig:
        return DuckDBConfig(
            memory_limit=self.memory_limit,
            threads=self.threads,
            temp_directory=self.temp_directory,
        )
