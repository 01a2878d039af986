"""Write, audit, publish: every published output is built where readers don't look, checked
there, and only then made visible in one atomic step.

A step opens a ``Stage`` (a locked scratch folder), writes each output it publishes into it
(``stage.file(uri)``, ``stage.folder(uri)``), runs that output's blocking checks on the staged
copies, and calls ``stage.publish()`` only if they pass. A failed check, an error or a killed
process leave every published output byte-identical.

Where staging lives: for a local root, ``{root}/staging/{namespace}/`` — beside the outputs on
the same filesystem, so publishing is a rename, and never inside a published folder; for an S3
root, local scratch (``$TMPDIR/ocr-staging``), uploaded at publication. Every stage folder
holds an ``flock`` on its ``.lock`` file for its writer's life: a folder whose lock is free was
left by a killed process, and the next stage opened under the same area removes it.

How each kind of output is published:

- a file, locally: ``os.replace`` of the staged file over the target (atomic);
- a file on S3: one PUT of the finished object (an object is never visible half-written);
  multipart uploads a killed writer left on that key are aborted first;
- a folder, locally: ``renameat2(RENAME_EXCHANGE)`` swaps the staged folder and the published
  one in one step (a reader opening it sees the whole old or the whole new folder, never a
  missing one or a mix); the old copy, now in the stage, is removed with it, so a reader still
  inside the old folder may see its files go and must reopen. Filesystems without the exchange fall
  back to two renames, and the stage records the target so the next sweep restores a folder a
  kill left missing between them;
- a folder on S3 (no rename there): versioned subfolders behind a pointer. The files go to
  ``{uri}/{version}/``, then the pointer object ``{uri}/CURRENT`` (one PUT) names that
  version; readers resolve it with ``current_dir``. The previous version stays for readers
  still on it; older versions and what killed uploads left are removed after the swap.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import logging
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ocr_core import faults
from ocr_core.storage import Storage

log = logging.getLogger(__name__)

POINTER = "CURRENT"
LOCK = ".lock"
TARGET = ".target"  # the published path a two-rename fallback was replacing
PREVIOUS = "previous"  # where the fallback parks the old folder during the swap
NEW = ".new-"  # a stage folder being made: locked before it takes its name
DEAD_UNLOCKED_S = 60  # a half-made stage folder is dead after this many seconds
_RENAME_EXCHANGE = 2


class PublishError(RuntimeError):
    """An output could not be published; the published copy is unchanged."""


# --- staging area -------------------------------------------------------------------------------
def staging_root(storage: Storage) -> Path:
    """The scratch area of this storage namespace (see module doc)."""
    if storage.is_s3:
        base = Path(tempfile.gettempdir()) / "ocr-staging"
        return base / storage.root[len("s3://") :].replace("/", "_") / storage.namespace
    return Path(storage.root) / "staging" / storage.namespace


def sweep(area: Path) -> list[str]:
    """Remove the stage folders under ``area`` whose writer is gone; return what was removed.

    A folder is dead when its lock can be taken (the writer's process ended, ``kill -9``
    included) or it has no lock; a half-made (hidden) one when it is also older than a minute.
    A dead folder of the two-rename fallback whose target is missing puts the old folder back
    first. Other writers open stages meanwhile, so an entry may vanish between the listing and
    its probe: that one is not this sweep's to remove.
    """
    removed: list[str] = []
    if not area.is_dir():
        return removed
    for entry in sorted(area.iterdir()):
        try:
            if not entry.is_dir() or _writer_alive(entry):
                continue
            _restore_interrupted_swap(entry)
        except FileNotFoundError:  # renamed by its writer or removed by another sweeper meanwhile
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(str(entry))
    return removed


def _writer_alive(entry: Path) -> bool:
    """Whether a live process holds the stage folder's lock (or may be creating it: a hidden
    folder younger than a minute)."""
    if entry.name.startswith(NEW) and time.time() - entry.stat().st_mtime <= DEAD_UNLOCKED_S:
        return True
    try:
        fh = open(entry / LOCK, "r+")  # noqa: SIM115 - held only while probing
    except FileNotFoundError:
        return False
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
    return False


def _restore_interrupted_swap(entry: Path) -> None:
    target_file, previous = entry / TARGET, entry / PREVIOUS
    if not (target_file.exists() and previous.exists()):
        return
    target = Path(target_file.read_text())
    if not target.exists():
        os.replace(previous, target)
        log.warning("restored %s, left missing by a killed publication", target)


# --- the stage ----------------------------------------------------------------------------------
@dataclass
class Stage:
    """One step's staged outputs: local paths to write, published together by ``publish``."""

    storage: Storage
    dir: Path
    outputs: list[tuple[str, str, Path]] = field(default_factory=list)  # (kind, uri, path)
    published: bool = False

    def file(self, uri: str, suffix: str = "") -> Path:
        """Local path to write the new content of the file ``uri`` to."""
        name = Path(uri).name
        path = self.dir / f"f{len(self.outputs)}-{name}{'' if name.endswith(suffix) else suffix}"
        self.outputs.append(("file", uri, path))
        return path

    def folder(self, uri: str) -> Path:
        """An empty local folder to build the new content of the folder ``uri`` in."""
        path = self.dir / f"d{len(self.outputs)}-{Path(uri).name}"
        path.mkdir()
        self.outputs.append(("folder", uri, path))
        return path

    def folder_uri(self, uri: str) -> str:
        """Where to build the folder ``uri`` in place of a local one: for an S3 root, its next
        version prefix (too big for local scratch, e.g. the CONUS pyramid); else ``folder``."""
        if not self.storage.is_s3:
            return str(self.folder(uri))
        version = _new_version()
        self.outputs.append(("version", uri, Path(version)))
        return f"{uri.rstrip('/')}/{version}"

    def publish(self) -> None:
        """Make every staged output visible, each in one atomic step, in staging order."""
        if self.published:
            raise PublishError("this stage was published already")
        for kind, uri, path in self.outputs:
            if kind != "version" and not path.exists():
                raise PublishError(f"nothing was staged for {uri}")
            faults.point("publish.before")
            if kind == "version":
                _point_to_version(self.storage, uri, path.name)
            elif kind == "file":
                _publish_file(self.storage, path, uri)
            elif self.storage.is_s3:
                _publish_folder_s3(self.storage, path, uri)
            else:
                _publish_folder_local(self, path, uri)
            faults.point("publish.after")
        self.published = True


@contextmanager
def stage(storage: Storage) -> Iterator[Stage]:
    """A locked scratch folder for one step's outputs, removed when the step ends.

    Opening one first sweeps what killed writers left in the same area.
    """
    area = staging_root(storage)
    area.mkdir(parents=True, exist_ok=True)
    sweep(area)
    # Made under a hidden name, locked, then renamed: a sweeper never sees it unlocked.
    new = Path(tempfile.mkdtemp(prefix=NEW, dir=area))
    with open(new / LOCK, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        folder = area / f"{time.strftime('%Y%m%dT%H%M%S')}-{new.name[len(NEW) :]}"
        os.rename(new, folder)
        st = Stage(storage, folder)
        try:
            yield st
        finally:
            if not st.published:
                for kind, uri, _ in st.outputs:
                    if kind == "version":  # a failed step's unpublished S3 version
                        prune_versions(storage, uri, keep=_pointed_versions(storage, uri))
            shutil.rmtree(folder, ignore_errors=True)


# --- publication ---------------------------------------------------------------------------------
def _publish_file(storage: Storage, path: Path, uri: str) -> None:
    if storage.is_s3:
        fs = storage.filesystem()
        key = storage.fs_path(uri)
        _abort_multipart(storage, key)
        faults.point("publish.upload")
        fs.put_file(str(path), key)
        return
    target = Path(uri)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(path, target)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux ``renameat2``); False if the filesystem can't."""
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd = -100
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EPERM, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _publish_folder_local(st: Stage, path: Path, uri: str) -> None:
    target = Path(uri)
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        os.replace(path, target)
        return
    if _exchange(path, target):
        faults.point("publish.exchanged")
        shutil.rmtree(path, ignore_errors=True)  # the old folder, now in the stage
        return
    log.warning("%s: no atomic folder exchange on this filesystem; two renames", target)
    (st.dir / TARGET).write_text(str(target))
    os.replace(target, st.dir / PREVIOUS)
    faults.point("publish.exchanged")
    os.replace(path, target)
    shutil.rmtree(st.dir / PREVIOUS, ignore_errors=True)
    (st.dir / TARGET).unlink()


def _abort_multipart(storage: Storage, key: str) -> None:
    """Abort unfinished multipart uploads of ``key`` (a killed upload's invisible leftovers)."""
    bucket, _, name = key.partition("/")
    client = s3_client(storage)
    uploads = client.list_multipart_uploads(Bucket=bucket, Prefix=name).get("Uploads", [])
    for up in uploads:
        if up["Key"] == name:
            client.abort_multipart_upload(Bucket=bucket, Key=name, UploadId=up["UploadId"])


def s3_client(storage: Storage):
    import boto3

    return boto3.client("s3", endpoint_url=storage.s3_endpoint_url, region_name=storage.s3_region)


def _new_version() -> str:
    return f"v{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{uuid.uuid4().hex[:8]}"


def read_pointer(storage: Storage, uri: str) -> dict | None:
    """The pointer document of an S3 folder dataset, None if it was never published."""
    fs = storage.filesystem()
    key = f"{storage.fs_path(uri).rstrip('/')}/{POINTER}"
    try:
        with fs.open(key, "rb") as f:
            return json.loads(f.read())
    except FileNotFoundError:
        return None


def current_dir(storage: Storage, uri: str) -> str:
    """Where readers find the published content of the folder dataset ``uri`` now."""
    if not storage.is_s3:
        return uri
    pointer = read_pointer(storage, uri)
    return f"{uri.rstrip('/')}/{pointer['version']}" if pointer else uri


def _publish_folder_s3(storage: Storage, path: Path, uri: str) -> None:
    fs = storage.filesystem()
    dest = storage.fs_path(uri).rstrip("/")
    old = read_pointer(storage, uri)
    version = _new_version()
    files = sorted(p for p in path.rglob("*") if p.is_file())
    rel = [p.relative_to(path).as_posix() for p in files]
    for local, name in zip(files, rel, strict=True):
        faults.point("publish.upload")
        fs.put_file(str(local), f"{dest}/{version}/{name}")
    _swap_pointer(storage, uri, version, old)


def _point_to_version(storage: Storage, uri: str, version: str) -> None:
    _swap_pointer(storage, uri, version, read_pointer(storage, uri))


def _swap_pointer(storage: Storage, uri: str, version: str, old: dict | None) -> None:
    """One PUT makes ``version`` the published one; then all but it and the last are removed."""
    fs = storage.filesystem()
    faults.point("publish.pointer")
    pointer = {"version": version, "previous": old["version"] if old else None}
    fs.pipe_file(f"{storage.fs_path(uri).rstrip('/')}/{POINTER}", json.dumps(pointer).encode())
    prune_versions(storage, uri, keep={version, *([old["version"]] if old else [])})


def _pointed_versions(storage: Storage, uri: str) -> set[str]:
    pointer = read_pointer(storage, uri) or {}
    return {v for v in (pointer.get("version"), pointer.get("previous")) if v}


def prune_versions(storage: Storage, uri: str, keep: set[str]) -> list[str]:
    """Delete the keys under the S3 folder dataset ``uri`` outside the ``keep`` versions and
    the pointer: older versions, what killed uploads left, files of the unversioned layout."""
    fs = storage.filesystem()
    dest = storage.fs_path(uri).rstrip("/")
    stale = [
        key
        for key in fs.find(dest)
        if key != f"{dest}/{POINTER}" and key[len(dest) + 1 :].split("/", 1)[0] not in keep
    ]
    delete_keys(storage, stale)
    return stale


def delete_keys(storage: Storage, keys: list[str]) -> None:
    """Delete S3 objects by exact key, 1000 a request (fsspec's ``rm`` would read ``[x]`` or
    ``*`` in a key as a pattern)."""
    client = s3_client(storage)
    for start in range(0, len(keys), 1000):
        batch = keys[start : start + 1000]
        bucket = batch[0].split("/", 1)[0]
        objects = [{"Key": k.split("/", 1)[1]} for k in batch]
        client.delete_objects(Bucket=bucket, Delete={"Objects": objects, "Quiet": True})
