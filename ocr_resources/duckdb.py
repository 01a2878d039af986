"""DuckDB resource: memory and spill limits for the aggregation and tile steps."""

import dagster as dg

from ocr_core.duck import DuckDBConfig
from ocr_core.machines import VMType, duckdb_memory_limit


class DuckDBResource(dg.ConfigurableResource):
    """Bounded DuckDB settings; connections are opened by the tasks that use them.

    ``memory_limit`` and ``threads`` hold on this machine; on a Coiled VM (``config(vm)``) the
    VM's size decides them instead: a share of its memory and all its vCPUs.
    """

    memory_limit: str = "4GB"
    threads: int | None = None
    temp_directory: str | None = None

    def config(self, vm: VMType | None = None) -> DuckDBConfig:
        """The limits of a connection opened on ``vm`` (None: this machine)."""
        if vm is None:
            return DuckDBConfig(
                memory_limit=self.memory_limit,
                threads=self.threads,
                temp_directory=self.temp_directory,
            )
        return DuckDBConfig(
            memory_limit=duckdb_memory_limit(vm),
            threads=vm.vcpus,
            temp_directory=self.temp_directory,
        )
