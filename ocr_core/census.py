"""Census polygons in DuckDB for the regional statistics: checked, in WGS 84, cut into pieces.

* CRS: polygons are transformed **explicitly** with ``ST_Transform(geometry, 'EPSG:4326',
  always_xy := true)`` from the CRS recorded in their GeoParquet metadata (NAD83 for TIGER;
  PROJ resolves NAD83 → WGS 84 to its null transformation, the same result as geopandas
  ``to_crs(4326)``). A file without a CRS is taken as OGC:CRS84, the GeoParquet default.
* Pieces: polygons above ``MAX_PIECE_VERTICES`` vertices are cut into pieces of at most that
  many, so the point-in-polygon tests stay cheap; pieces keep their polygon's id (``gid``).
* Several rows with the same GEOID form one geography (their polygons are unioned).
"""

from __future__ import annotations

from dataclasses import dataclass

from ocr_core.catalog import InputCatalog
from ocr_core.duck import fetch_one, geometry_crs, parquet_columns, sql_file
from ocr_core.errors import InputDataError
from ocr_core.schema import GEOGRAPHIES, GEOGRAPHY

MAX_PIECE_VERTICES = 256
PIECE_CHUNK_VERTICES = 2_000_000
WGS84 = ("EPSG:4326", "OGC:CRS84")


@dataclass(frozen=True)
class CensusPolygons:
    """One level's polygons as loaded into the ``poly`` table."""

    input: str
    crs_transform: str
    polygons: int
    duplicate_geoid_rows: int


@dataclass(frozen=True)
class PieceCounts:
    """How the ``pieces`` table was cut from ``poly``."""

    subdivided_polygons: int
    pieces: int


def census_sources(con, catalog: InputCatalog) -> dict[str, str | None]:
    """Census file per level (None: optional level absent); InputDataError when unusable."""
    sources: dict[str, str | None] = {}
    for geography in GEOGRAPHIES:
        name = geography.census_dataset
        if geography.optional and not catalog.storage.exists(catalog.uri(name)):
            sources[geography.level] = None
            continue
        uri = catalog.geoparquet_uri(name)
        columns = parquet_columns(con, sql_file(uri))
        missing = [c for c in ("GEOID", *geography.name_columns) if c not in columns]
        is_geometry, _ = geometry_crs(columns)
        if missing or not is_geometry:
            problem = f"column(s) {missing}" if missing else "a GeoParquet 'geometry' column"
            raise InputDataError(f"input dataset {name!r} at {uri} lacks {problem}")
        sources[geography.level] = uri
    nation = sources["nation"]
    assert nation is not None  # a required level
    (geoids,) = fetch_one(
        con, f"SELECT count(DISTINCT GEOID) FROM read_parquet({sql_file(nation)})"
    )
    if geoids != 1:
        raise InputDataError(
            f"input dataset 'us-census-nation' at {nation} holds {geoids} GEOIDs; "
            "the nation level needs exactly one"
        )
    return sources


def _names(level: str, prefix: str = "") -> str:
    """``, NAME, …``: the level's name columns as a SQL select-list tail."""
    return "".join(f", {prefix}{c}" for c in GEOGRAPHY[level].name_columns)


def _transform(crs: str | None) -> tuple[str, str]:
    """(SQL geometry in EPSG:4326, how it was obtained) for a file's recorded CRS."""
    if crs is None:
        return "geometry::GEOMETRY", "none (no CRS recorded: OGC:CRS84)"
    if crs in WGS84:
        return "geometry::GEOMETRY", f"none ({crs})"
    geom = "ST_Transform(geometry, 'EPSG:4326', always_xy := true)::GEOMETRY"
    return geom, f"ST_Transform {crs} -> EPSG:4326 (always_xy)"


def load_polygons(con, level: str, uri: str) -> CensusPolygons:
    """Table ``poly``: gid, GEOID, names, geom in EPSG:4326 and its vertex count ``npts``.

    gid numbers distinct GEOIDs in ascending order, so the lowest gid is the lowest GEOID.
    """
    _, crs = geometry_crs(parquet_columns(con, sql_file(uri)))
    geom, transform = _transform(crs)
    names = _names(level)
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE poly AS
        SELECT dense_rank() OVER (ORDER BY GEOID) AS gid, GEOID{names}, geom,
            ST_NPoints(geom) AS npts
        FROM (
            SELECT GEOID{names}, {geom} AS geom FROM read_parquet({sql_file(uri)})
            WHERE GEOID IS NOT NULL AND geometry IS NOT NULL AND NOT ST_IsEmpty(geometry)
        )
        """
    )
    rows, geographies = fetch_one(con, "SELECT count(*), count(DISTINCT gid) FROM poly")
    if geographies == 0:
        raise InputDataError(f"census {level} file {uri} has no polygons")
    return CensusPolygons(uri, transform, int(rows), int(rows - geographies))


def subdivide(geometry, max_vertices: int) -> list:
    """Cut a polygonal geometry into polygonal pieces of at most ``max_vertices`` vertices.

    Pieces are intersections with halving boxes, so together they cover the polygon; a point
    on a seam touches both neighbours, which carry the same gid, and is still counted once.
    """
    import shapely

    pieces, stack = [], [(geometry, 0)]
    while stack:
        geom, depth = stack.pop()
        if geom.is_empty:
            continue
        if isinstance(geom, shapely.MultiPolygon | shapely.GeometryCollection):
            stack.extend(
                (g, depth)
                for g in geom.geoms
                if isinstance(g, shapely.Polygon | shapely.MultiPolygon)
            )
            continue
        if not isinstance(geom, shapely.Polygon):
            continue
        if shapely.get_num_coordinates(geom) <= max_vertices or depth >= 40:
            pieces.append(geom)
            continue
        stack.extend((shapely.intersection(geom, box), depth + 1) for box in _halves(geom))
    return pieces


def _halves(geom) -> list:
    """The two boxes halving ``geom``'s bounds across its longer side."""
    import shapely

    xmin, ymin, xmax, ymax = geom.bounds
    if xmax - xmin >= ymax - ymin:
        mid = (xmin + xmax) / 2
        return [shapely.box(xmin, ymin, mid, ymax), shapely.box(mid, ymin, xmax, ymax)]
    mid = (ymin + ymax) / 2
    return [shapely.box(xmin, ymin, xmax, mid), shapely.box(xmin, mid, xmax, ymax)]


def _piece_chunks(sizes: list[tuple[int, int]]) -> list[list[int]]:
    """[first gid, last gid] ranges of about ``PIECE_CHUNK_VERTICES`` vertices each."""
    chunks: list[list[int]] = []
    budget = 0
    for gid, npts in sizes:
        if not chunks or budget + npts > PIECE_CHUNK_VERTICES:
            chunks.append([gid, gid])
            budget = 0
        chunks[-1][1] = gid
        budget += npts
    return chunks


def build_pieces(con) -> PieceCounts:
    """Table ``pieces`` (gid, geom) from ``poly``: small polygons as they are, the others cut.

    Large polygons are cut a chunk of gids at a time, so only a bounded part of them is in
    Python at once.
    """
    import pyarrow as pa
    import shapely

    con.execute(
        "CREATE OR REPLACE TEMP TABLE pieces AS "
        f"SELECT gid, geom FROM poly WHERE npts <= {MAX_PIECE_VERTICES}"
    )
    sizes = con.execute(
        f"SELECT gid, npts FROM poly WHERE npts > {MAX_PIECE_VERTICES} ORDER BY gid"
    ).fetchall()
    for lo, hi in _piece_chunks(sizes):
        batch = con.execute(
            f"SELECT gid, ST_AsWKB(geom) FROM poly WHERE npts > {MAX_PIECE_VERTICES} "
            f"AND gid BETWEEN {lo} AND {hi}"
        ).fetchall()
        gids, parts = [], []
        for gid, wkb in batch:
            cut = subdivide(shapely.from_wkb(bytes(wkb)), MAX_PIECE_VERTICES)
            gids.extend([gid] * len(cut))
            parts.extend(cut)
        new = pa.table(
            {"gid": pa.array(gids, pa.int64()), "wkb": pa.array(shapely.to_wkb(parts), pa.binary())}
        )
        con.register("new_pieces", new)
        con.execute("INSERT INTO pieces SELECT gid, ST_GeomFromWKB(wkb) FROM new_pieces")
        con.unregister("new_pieces")
    (count,) = fetch_one(con, "SELECT count(*) FROM pieces")
    return PieceCounts(len(sizes), int(count))


def shapes_sql(level: str, duplicates: bool) -> str:
    """One row per gid: GEOID, names and polygon (rows sharing a GEOID unioned)."""
    names = _names(level)
    if not duplicates:
        return f"SELECT gid, GEOID{names}, geom FROM poly"
    anames = "".join(f", min({c}) AS {c}" for c in GEOGRAPHY[level].name_columns)
    return f"""
        SELECT gid, GEOID{names}, geom FROM poly
        WHERE gid IN (SELECT gid FROM poly GROUP BY gid HAVING count(*) = 1)
        UNION ALL
        SELECT gid, min(GEOID) AS GEOID{anames}, ST_Union_Agg(geom) AS geom FROM poly
        WHERE gid IN (SELECT gid FROM poly GROUP BY gid HAVING count(*) > 1)
        GROUP BY gid
    """
