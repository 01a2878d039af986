"""Region grids: the 30 m EPSG:4326 processing grid cut into regions ("chunks").

A region id is ``y{row}_x{col}``: row counted from the south (latitude ascends), column from
the west. Pixel *edges* are the exact boundaries between regions, so every point belongs to
exactly one region. Pure module: no Dagster, no heavy imports.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

# Reach of the risk kernels in pixels: 3 spreading iterations of an 81-tap kernel (41 px),
# the Gaussian smoothing radius (8 px at 30 m) and one 270 m source pixel of the gap-fill.
KERNEL_REACH_PX = 3 * 41 + 8 + 9

REGION_ID_RE = re.compile(r"y([0-9]+)_x([0-9]+)")  # matched whole (fullmatch)


class RegionIdError(ValueError):
    """A region id that is malformed or not a valid region of the active grid."""


@dataclass(frozen=True)
class Grid:
    """A regular lat/lon grid (latitude ascending) cut into fixed-size regions."""

    name: str
    pixel_size: float  # degrees, both axes
    lon0: float  # west edge of column 0
    lat0: float  # south edge of row 0
    n_lat: int
    n_lon: int
    chunk_lat: int
    chunk_lon: int
    buffer_deg: float
    valid_ids_file: str = field(repr=False)
    description: str = ""
    valid_ids: tuple[str, ...] | None = field(default=None, repr=False)  # else from the file

    def __post_init__(self) -> None:
        if self.buffer_pixels < KERNEL_REACH_PX:
            raise ValueError(
                f"grid {self.name!r}: buffer {self.buffer_deg}° ({self.buffer_pixels} px) is less "
                f"than the risk kernels' reach ({KERNEL_REACH_PX} px); results would depend on "
                "the region cut. Raise buffer_deg."
            )

    # --- shape -------------------------------------------------------------------------------
    @property
    def n_rows(self) -> int:
        return math.ceil(self.n_lat / self.chunk_lat)

    @property
    def n_cols(self) -> int:
        return math.ceil(self.n_lon / self.chunk_lon)

    @property
    def buffer_pixels(self) -> int:
        return math.ceil(self.buffer_deg / self.pixel_size - 1e-9)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(west, south, east, north) pixel edges of the whole grid."""
        return (
            self.lon_edge(0),
            self.lat_edge(0),
            self.lon_edge(self.n_lon),
            self.lat_edge(self.n_lat),
        )

    def lon_edge(self, col: int) -> float:
        return self.lon0 + col * self.pixel_size

    def lat_edge(self, row: int) -> float:
        return self.lat0 + row * self.pixel_size

    def lon_centers(self, start: int, stop: int):
        import numpy as np

        return self.lon0 + (np.arange(start, stop, dtype="float64") + 0.5) * self.pixel_size

    def lat_centers(self, start: int, stop: int):
        import numpy as np

        return self.lat0 + (np.arange(start, stop, dtype="float64") + 0.5) * self.pixel_size

    # --- region ids --------------------------------------------------------------------------
    def all_region_ids(self) -> list[str]:
        return [f"y{r}_x{c}" for r in range(self.n_rows) for c in range(self.n_cols)]

    @property
    def valid_region_ids(self) -> tuple[str, ...]:
        return self.valid_ids if self.valid_ids is not None else _load_ids(self.valid_ids_file)

    def canonical_region_id(self, region_id: str) -> str:
        """The one spelling of a region id on this grid: ``y05_x14`` is ``y5_x14`` (no zero
        padding, as partitions and file names are written); RegionIdError when malformed or
        outside the grid."""
        m = REGION_ID_RE.fullmatch(str(region_id))
        if not m:
            raise RegionIdError(
                f"malformed region id {region_id!r}: expected 'y<row>_x<col>', e.g. "
                f"{self.valid_region_ids[0]!r}"
            )
        row, col = int(m.group(1)), int(m.group(2))
        if row >= self.n_rows or col >= self.n_cols:
            raise RegionIdError(
                f"region id {region_id!r} is outside the {self.name} grid "
                f"({self.n_rows} rows y0..y{self.n_rows - 1} × {self.n_cols} columns "
                f"x0..x{self.n_cols - 1})"
            )
        return f"y{row}_x{col}"

    def parse_region_id(self, region_id: str) -> tuple[int, int]:
        """(row, col) of an id on this grid; raises RegionIdError for anything else."""
        m = REGION_ID_RE.fullmatch(self.canonical_region_id(region_id))
        assert m is not None  # the canonical spelling always matches
        return int(m.group(1)), int(m.group(2))

    def validate_region_id(self, region_id: str) -> tuple[int, int]:
        """(row, col) of a *valid* region (one that holds data), spelled canonically; clear
        error otherwise."""
        canonical = self._holding_data(region_id)
        if canonical != region_id:
            raise RegionIdError(f"region id {region_id!r} is written {canonical!r}")
        return self.parse_region_id(canonical)

    def _holding_data(self, region_id: str) -> str:
        """The canonical id of a region that holds data; RegionIdError otherwise."""
        canonical = self.canonical_region_id(region_id)
        if canonical not in set(self.valid_region_ids):
            same = "" if canonical == region_id else f" ({canonical})"
            raise RegionIdError(
                f"region {region_id!r}{same} holds no data on the {self.name} grid, so it is not "
                f"a valid region id ({len(self.valid_region_ids)} valid ids, e.g. "
                f"{', '.join(self.valid_region_ids[:4])}). Pick a valid id or switch grids "
                "with OCR_GRID."
            )
        return canonical

    def select_region_ids(self, region_ids: Iterable[str]) -> tuple[list[str], list[str]]:
        """Regions a user named, as (valid canonical ids in the order given, once each; notes
        on what was changed): ``y05_x14`` becomes ``y5_x14``, a repeat is dropped. Any id that
        is malformed, outside the grid or holds no data raises RegionIdError."""
        given = [(rid, self._holding_data(rid)) for rid in region_ids]
        notes = [f"{rid} is {canonical}" for rid, canonical in given if rid != canonical]
        counts = Counter(canonical for _, canonical in given)
        selected = list(counts)  # first appearance order
        for rid in selected:
            if counts[rid] > 1:
                times = "twice" if counts[rid] == 2 else f"{counts[rid]} times"
                notes.append(f"{rid} given {times}; running it once")
        return selected, notes

    def pixel_window(self, region_id: str) -> tuple[int, int, int, int]:
        """(row_start, row_stop, col_start, col_stop) pixel indices of a region."""
        row, col = self.parse_region_id(region_id)
        r0, c0 = row * self.chunk_lat, col * self.chunk_lon
        return r0, min(r0 + self.chunk_lat, self.n_lat), c0, min(c0 + self.chunk_lon, self.n_lon)

    def region_bounds(self, region_id: str) -> tuple[float, float, float, float]:
        """(lon_min, lat_min, lon_max, lat_max) of the region's pixel edges."""
        r0, r1, c0, c1 = self.pixel_window(region_id)
        return self.lon_edge(c0), self.lat_edge(r0), self.lon_edge(c1), self.lat_edge(r1)


@cache
def _load_ids(filename: str) -> tuple[str, ...]:
    text = resources.files("ocr_core").joinpath("data", filename).read_text()
    return tuple(json.loads(text))


CONUS_PIXEL_SIZE = 0.00030799387843671866
CONUS_LON0 = -128.3875562194317
CONUS_LAT0 = 22.428114227623333

CONUS = Grid(
    name="conus",
    pixel_size=CONUS_PIXEL_SIZE,
    lon0=CONUS_LON0,
    lat0=CONUS_LAT0,
    n_lat=97_579,
    n_lon=208_881,
    chunk_lat=6000,
    chunk_lon=4500,
    buffer_deg=0.15,
    valid_ids_file="conus_valid_region_ids.json",
    description="Continental US, 30 m (the reference deployment's grid)",
)

# A window of CONUS pixels over the Santa Monica Mountains, Simi and Santa Clarita valleys
# (Los Angeles/Ventura counties; Woolsey, Palisades and Saugus fire country), cut into 4 × 4
# regions of 600 × 450 px. The southern row is open Pacific: no data, so not valid ids.
DEMO_ROW_OFFSET = 36_922  # CONUS pixel row of the demo grid's southern edge
DEMO_COL_OFFSET = 30_317  # CONUS pixel column of the demo grid's western edge

DEMO = Grid(
    name="demo",
    pixel_size=CONUS_PIXEL_SIZE,
    lon0=CONUS_LON0 + DEMO_COL_OFFSET * CONUS_PIXEL_SIZE,
    lat0=CONUS_LAT0 + DEMO_ROW_OFFSET * CONUS_PIXEL_SIZE,
    n_lat=4 * 600,
    n_lon=4 * 450,
    chunk_lat=600,
    chunk_lon=450,
    buffer_deg=0.05,
    valid_ids_file="demo_valid_region_ids.json",
    description="Embedded demo: Santa Monica Mountains and surroundings, California",
)

GRIDS: dict[str, Grid] = {g.name: g for g in (DEMO, CONUS)}


def get_grid(name: str) -> Grid:
    """The grid called ``name``; a clear error naming the choices otherwise."""
    try:
        return GRIDS[name]
    except KeyError:
        raise ValueError(
            f"unknown grid {name!r}: choose one of {', '.join(sorted(GRIDS))} (set OCR_GRID)"
        ) from None
