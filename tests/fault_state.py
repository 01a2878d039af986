"""The fault suite's record and the published state it compares (tests/fault_suite.py).

``published`` digests every output as readers resolve it now; ``orphans`` lists what a
finished run must not leave behind; ``compare`` counts outputs lost or corrupted.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

REGIONS = ("y2_x1", "y2_x2", "y2_x3")  # contiguous: one partition range holds them


@dataclass
class Case:
    category: str
    name: str
    passed: bool = False
    lost: int = 0
    corrupted: int = 0
    stuck: int = 0
    orphans: int = 0
    note: str = ""


@dataclass
class Category:
    name: str
    cases: list[Case] = field(default_factory=list)

    def add(self, case: Case) -> Case:
        self.cases.append(case)
        return case


# --- the published state --------------------------------------------------------------------
def _digest_local(path: Path) -> str | None:
    """Content digest of a file or a folder (relative names and bytes); None if absent."""
    if not path.exists():
        return None
    if path.is_file():
        return hashlib.sha256(path.read_bytes()).hexdigest()
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(f.relative_to(path).as_posix().encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


def _digest_s3(storage, uri: str) -> str | None:
    fs = storage.filesystem()
    base = storage.fs_path(uri).rstrip("/")
    if fs.isfile(base):
        return hashlib.sha256(fs.cat_file(base)).hexdigest()
    keys = sorted(fs.find(base)) if fs.exists(base) else []
    if not keys:
        return None
    h = hashlib.sha256()
    for key in keys:
        h.update(key[len(base) + 1 :].encode() + b"\0" + fs.cat_file(key))
    return h.hexdigest()


def published(storage) -> dict[str, str | None]:
    """Every published output as readers resolve it now: output name -> content digest
    (the risk raster: the region arrays on ``main``)."""
    from ocr_core import raster_store
    from ocr_core.grid import DEMO

    outputs = {
        **{f"region {r}": storage.region_geoparquet_uri(r) for r in REGIONS},
        "consolidated": storage.consolidated_buildings_uri,
        "hive": storage.current_dir(storage.partitioned_buildings_uri),
        "summary": storage.current_dir(storage.summary_stats_dir),
        "analysis": storage.current_dir(storage.region_analysis_dir),
        **{f"pmtiles {n}": storage.pmtiles_uri(n) for n in ("buildings", "building_centroids")},
        "pmtiles regions": storage.pmtiles_uri("regions"),
        "pyramid": storage.current_dir(storage.pyramid_uri),
    }
    digest = (
        (lambda u: _digest_s3(storage, u)) if storage.is_s3 else (lambda u: _digest_local(Path(u)))
    )
    state = {name: digest(uri) for name, uri in outputs.items()}
    for region in REGIONS:
        try:
            arrays = raster_store.read_region(storage, DEMO, region)
        except raster_store.RasterStoreError:
            state[f"raster {region}"] = None
            continue
        h = hashlib.sha256()
        for var in sorted(arrays):
            h.update(arrays[var].tobytes())
        state[f"raster {region}"] = h.hexdigest()
    return state


def orphans(storage) -> list[str]:
    """What a finished run must not leave: stage folders, hidden files in the published
    trees, S3 keys of folder datasets that no pointer names, unfinished multipart uploads."""
    from ocr_core import publish

    found = [str(p) for p in publish.staging_root(storage).glob("*")]
    if not storage.is_s3:
        for top in ("output", "intermediate"):
            base = Path(storage.root) / top
            found += [str(p) for p in base.rglob(".*")] if base.exists() else []
        return found
    fs = storage.filesystem()
    for uri in (
        storage.partitioned_buildings_uri,
        storage.summary_stats_dir,
        storage.region_analysis_dir,
        storage.pyramid_uri,
    ):
        pointer = publish.read_pointer(storage, uri) or {}
        keep = {pointer.get("version"), pointer.get("previous"), publish.POINTER}
        base = storage.fs_path(uri).rstrip("/")
        keys = fs.find(base) if fs.exists(base) else []
        found += [k for k in keys if k[len(base) + 1 :].split("/", 1)[0] not in keep]
    client = publish.s3_client(storage)
    bucket = storage.root[len("s3://") :].split("/", 1)[0]
    found += [u["Key"] for u in client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]
    return found


def compare(before: dict, after: dict, new: dict | None = None) -> tuple[int, int]:
    """(lost, corrupted) outputs of ``after``: each must be as ``before`` or, for the outputs
    ``new`` names, its new complete version."""
    lost = corrupted = 0
    for name, old in before.items():
        now = after.get(name)
        allowed = {old, (new or {}).get(name, old)}
        if now is None and old is not None:
            lost += 1
        elif now not in allowed:
            corrupted += 1
    return lost, corrupted
