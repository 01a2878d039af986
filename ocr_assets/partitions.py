"""Region partitions: one per valid region id of a grid."""

from __future__ import annotations

from functools import cache

import dagster as dg

from ocr_core.grid import get_grid


@cache
def region_partitions(grid_name: str) -> dg.StaticPartitionsDefinition:
    """The region partitions of a grid (one object per grid, shared by assets and jobs)."""
    return dg.StaticPartitionsDefinition(list(get_grid(grid_name).valid_region_ids))
