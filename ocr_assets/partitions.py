"""Region partitions: the valid region ids of the active grid (OCR_GRID)."""

from __future__ import annotations

import dagster as dg

from ocr_core.grid import get_grid
from ocr_resources.settings import current_settings

GRID = get_grid(current_settings().grid)

region_partitions = dg.StaticPartitionsDefinition(list(GRID.valid_region_ids))
