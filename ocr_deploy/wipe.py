"""Delete one namespace's outputs before a fresh deployment, or after its pull request closed.

A wipe removes what the layout (``ocr_core.storage``) puts in the namespace's folder under each
top folder — the risk raster, the region files, statistics, tile features, vector outputs, the
pyramid — and, for a local root, its stage area ``{root}/staging/{namespace}/``. Namespaces of
their own inside it (``qa/pr-12`` and ``qa/v1.0.0`` inside ``qa``) are kept, and nothing
outside it is touched. Production is never wiped: each release writes its own versioned
namespace, and a rerun of a release completes it instead of starting over. Entries are listed
and deleted by exact name, never by pattern, so a root with ``[x]`` or ``*`` in it is safe.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ocr_core.storage import NESTED_NAMESPACE_RE, Storage

PRODUCTION_REFUSED = (
    "refusing to wipe production: production is never wiped (each release has its own "
    "versioned namespace; rerun the release to complete it)"
)


class WipeError(ValueError):
    """A wipe that is refused; the message says why."""


def wipe_namespace(storage: Storage) -> list[str]:
    """Delete the namespace's own outputs; return what was removed (one entry per file or
    folder directly inside a namespace folder), sorted."""
    if storage.environment == "production":
        raise WipeError(PRODUCTION_REFUSED)
    if storage.is_s3:
        return _wipe_s3(storage)
    from ocr_core.publish import staging_root

    removed: list[str] = []
    for folder in [*storage.namespace_dirs, str(staging_root(storage))]:
        base = Path(folder)
        if not base.is_dir():
            continue
        for entry in sorted(base.iterdir()):
            if _nested_namespace(entry.name) and entry.is_dir() and not entry.is_symlink():
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed.append(str(entry))
        if not any(base.iterdir()):
            base.rmdir()
    return sorted(removed)


def _wipe_s3(storage: Storage) -> list[str]:
    from ocr_core.publish import delete_keys

    fs = storage.filesystem()
    removed: set[str] = set()
    for folder in storage.namespace_dirs:
        base = storage.fs_path(folder).rstrip("/")
        keys = []
        for key in fs.find(base):
            child = key[len(base) + 1 :].split("/", 1)
            if not key.startswith(base + "/") or (len(child) > 1 and _nested_namespace(child[0])):
                continue
            keys.append(key)
            removed.add(f"s3://{base}/{child[0]}")
        if keys:
            delete_keys(storage, keys)
    return sorted(removed)


def _nested_namespace(name: str) -> bool:
    return NESTED_NAMESPACE_RE.fullmatch(name) is not None
