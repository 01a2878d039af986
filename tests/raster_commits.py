"""The commit history of the risk repository, for tests that check a run committed nothing."""

from __future__ import annotations

from ocr_core.raster_store import open_repository
from ocr_core.storage import Storage


def region_commit_log(storage: Storage) -> list[tuple[str, str]]:
    """(snapshot id, message) of every commit on ``main``, newest first."""
    repo = open_repository(storage)
    return [(s.id, s.message) for s in repo.ancestry(branch="main")]
