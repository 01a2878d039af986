"""Where outputs live and how they are written: the reference's layout, local or S3, atomic writes.

``Storage`` is a small picklable value, so the same object travels to Dask workers (local or
Coiled) that write outputs themselves. Layout per environment and version (ocr-pipeline §3.5),
derived in one place so no two settings can collide:

    {root}/output/fire-risk/tensor/{env}[/v{ver}]/ocr.icechunk
    {root}/intermediate/fire-risk/vector/{env}[/v{ver}]/geoparquet-regions/{region}.parquet
    {root}/intermediate/fire-risk/vector/{env}[/v{ver}]/region-summary-stats/
    {root}/intermediate/fire-risk/vector/{env}[/v{ver}]/tile-features/
    {root}/output/fire-risk/vector/{env}[/v{ver}]/{geoparquet,region-analysis,pmtiles}/
    {root}/output/fire-risk/pyramid/{env}[/v{ver}]/pyramid.zarr
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path


class StorageError(RuntimeError):
    """The storage root cannot be used; the message says why and what to change."""


@dataclass(frozen=True)
class Storage:
    root: str
    environment: str = "qa"
    version: str | None = None
    s3_endpoint_url: str | None = None
    s3_region: str = "us-west-2"
    # The setting the root came from, named in errors (not part of the location).
    variable: str = field(default="OCR_STORAGE_ROOT", compare=False)

    # --- layout ------------------------------------------------------------------------------
    @property
    def is_s3(self) -> bool:
        return self.root.startswith("s3://")

    @property
    def namespace(self) -> str:
        return f"{self.environment}/v{self.version}" if self.version else self.environment

    def join(self, *parts: str) -> str:
        return "/".join([self.root.rstrip("/"), *[p.strip("/") for p in parts if p]])

    @property
    def icechunk_uri(self) -> str:
        return self.join("output/fire-risk/tensor", self.namespace, "ocr.icechunk")

    @property
    def region_geoparquet_dir(self) -> str:
        return self.join("intermediate/fire-risk/vector", self.namespace, "geoparquet-regions")

    def region_geoparquet_uri(self, region_id: str) -> str:
        return f"{self.region_geoparquet_dir}/{region_id}.parquet"

    @property
    def summary_stats_dir(self) -> str:
        return self.join("intermediate/fire-risk/vector", self.namespace, "region-summary-stats")

    @property
    def vector_output_dir(self) -> str:
        return self.join("output/fire-risk/vector", self.namespace)

    @property
    def geoparquet_dir(self) -> str:
        return f"{self.vector_output_dir}/geoparquet"

    @property
    def region_analysis_dir(self) -> str:
        return f"{self.vector_output_dir}/region-analysis"

    @property
    def pmtiles_dir(self) -> str:
        return f"{self.vector_output_dir}/pmtiles"

    @property
    def consolidated_buildings_uri(self) -> str:
        return f"{self.geoparquet_dir}/consolidated-buildings.parquet"

    @property
    def partitioned_buildings_uri(self) -> str:
        return f"{self.geoparquet_dir}/buildings.parquet"

    def summary_stats_uri(self, level: str) -> str:
        """level: blocks, tracts, counties, states or nation."""
        return f"{self.summary_stats_dir}/{level}_summary_stats.parquet"

    def region_analysis_uri(self, name: str, ext: str) -> str:
        """name: block, counties, tracts, states or nation; ext: csv, geojson or parquet."""
        return f"{self.region_analysis_dir}/{name}/stats.{ext}"

    def pmtiles_uri(self, name: str) -> str:
        """name: buildings, building_centroids or regions."""
        return f"{self.pmtiles_dir}/{name}.pmtiles"

    @property
    def tile_features_dir(self) -> str:
        """Intermediate feature exports shared by the building tile steps."""
        return self.join("intermediate/fire-risk/vector", self.namespace, "tile-features")

    @property
    def pyramid_uri(self) -> str:
        return self.join("output/fire-risk/pyramid", self.namespace, "pyramid.zarr")

    # --- filesystem --------------------------------------------------------------------------
    def s3_options(self) -> dict:
        """fsspec/s3fs options (credentials come from the standard AWS chain)."""
        client_kwargs = {"region_name": self.s3_region}
        if self.s3_endpoint_url:
            client_kwargs["endpoint_url"] = self.s3_endpoint_url
        return {"client_kwargs": client_kwargs}

    def filesystem(self):
        if self.is_s3:
            import s3fs

            return s3fs.S3FileSystem(**self.s3_options(), use_listings_cache=False)
        import fsspec

        return fsspec.filesystem("file")

    def _fs_path(self, uri: str) -> str:
        return uri[len("s3://") :] if uri.startswith("s3://") else uri

    def exists(self, uri: str) -> bool:
        return self.filesystem().exists(self._fs_path(uri))

    def list_files(self, folder: str, suffix: str = "", recursive: bool = False) -> list[str]:
        """Files in ``folder`` (below it with ``recursive``) whose names end in ``suffix``,
        sorted, without hidden ones (the scratch files of atomic writes). A listing, never a
        pattern: a root may hold glob characters such as ``[x]`` or ``*``."""
        base = self._fs_path(folder).rstrip("/")
        if not self.is_s3:
            base = os.path.abspath(base)  # as fsspec names what it finds
        found = self.filesystem().find(base, maxdepth=None if recursive else 1)
        keep = sorted(
            p
            for p in found
            if p.startswith(base + "/")
            and p.endswith(suffix)
            and not any(part.startswith(".") for part in p[len(base) + 1 :].split("/"))
        )
        return [f"s3://{p}" for p in keep] if self.is_s3 else keep

    def read_bytes(self, uri: str) -> bytes:
        with self.filesystem().open(self._fs_path(uri), "rb") as f:
            return f.read()

    def check_reachable(self, writable: bool = True) -> None:
        """Fail fast, before any work, if the root cannot be used: an S3 bucket that cannot be
        listed, a local root that is a file or (``writable``) cannot be written."""
        if self.is_s3:
            bucket = self.root[len("s3://") :].split("/", 1)[0]
            try:
                fs = self.filesystem()
                fs.ls(bucket, refresh=True)
            except Exception as exc:  # any client error means the same to the user
                raise StorageError(
                    f"{self.variable}={self.root!r} cannot be reached ({type(exc).__name__}: "
                    f"{exc}): check {self.variable}, the AWS credentials and OCR_S3_ENDPOINT_URL"
                ) from exc
            return
        root = Path(self.root)
        if root.exists() and not root.is_dir():
            raise StorageError(
                f"{self.variable}={self.root!r} is a file, not a folder: point {self.variable} "
                "at a folder or an s3:// URL"
            )
        if not writable:
            return
        try:
            root.mkdir(parents=True, exist_ok=True)
            probe = root / f".write-probe-{uuid.uuid4().hex}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise StorageError(
                f"{self.variable}={self.root!r} cannot be written ({exc.strerror or exc}): point "
                f"{self.variable} at a writable folder or an s3:// URL"
            ) from exc

    # --- atomic writes -----------------------------------------------------------------------
    @contextmanager
    def atomic_local_file(self, uri: str, suffix: str = "") -> Iterator[Path]:
        """Yield a scratch path; on success it replaces ``uri`` whole, on error nothing changes.

        Local: a sibling temp file renamed over the target (same filesystem, atomic).
        S3: one PUT of the finished file; an object is never visible half-written.
        """
        if self.is_s3:
            with tempfile.TemporaryDirectory(prefix="ocr-") as tmp:
                path = Path(tmp) / f"out{suffix}"
                yield path
                self.filesystem().put_file(str(path), self._fs_path(uri))
            return
        target = Path(uri)
        target.parent.mkdir(parents=True, exist_ok=True)
        path = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex}{suffix}"
        try:
            yield path
            os.replace(path, target)
        finally:
            if path.exists():
                path.unlink()

    def write_bytes_atomic(self, uri: str, data: bytes) -> None:
        with self.atomic_local_file(uri) as path:
            path.write_bytes(data)

    @contextmanager
    def atomic_local_dir(self, uri: str) -> Iterator[Path]:
        """Yield a scratch folder that replaces the folder ``uri`` whole on success.

        Local: build beside the target, then swap it in with two renames (old copy removed
        after), so readers see the old or the new dataset, never a mix. S3 has no rename, so
        the folder is built in local scratch and published by ``_publish_dir_s3``: nothing is
        deleted before every new file is uploaded, and stale files are removed last.
        """
        if self.is_s3:
            with tempfile.TemporaryDirectory(prefix="ocr-") as tmp:
                path = Path(tmp) / "out"
                path.mkdir()
                yield path
                self._publish_dir_s3(path, uri)
            return
        target = Path(uri)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex}"
        staging.mkdir()
        try:
            yield staging
            old = target.parent / f".{target.name}.old-{uuid.uuid4().hex}"
            if target.exists():
                os.replace(target, old)
            os.replace(staging, target)
            shutil.rmtree(old, ignore_errors=True)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)

    def _publish_dir_s3(self, src: Path, uri: str) -> None:
        """Replace the objects under ``uri`` with the files of ``src``, never emptying it.

        1. Upload every data file to its final key (concurrent PUTs; each object appears whole,
           replacing the same-named object of the previous run).
        2. Upload metadata files last (``_common_metadata``, zarr's ``zarr.json`` / ``.z*``: see
           ``_is_metadata_file``), so they only ever describe data files already present.
        3. Delete the keys under ``uri`` that the new tree does not have (stale files).

        A concurrent reader sees the old folder, then a mix in which every key holds its old or
        its new content in full, plus the old run's extra keys until step 3, then the new
        folder; never an empty folder or a partial object. If an upload fails, step 3 is
        skipped and the mix stays until a rerun.
        """
        fs = self.filesystem()
        dest = self._fs_path(uri).rstrip("/")
        files = sorted(p for p in src.rglob("*") if p.is_file())
        rel = [p.relative_to(src).as_posix() for p in files]
        data = [(str(p), f"{dest}/{r}") for p, r in zip(files, rel, strict=True)]
        metadata = [pair for pair in data if _is_metadata_file(Path(pair[1]).name)]
        data = [pair for pair in data if pair not in metadata]
        for batch in (data, metadata):
            if batch:
                fs.put([lp for lp, _ in batch], [rp for _, rp in batch])
        new = {f"{dest}/{r}" for r in rel}
        stale = [key for key in fs.find(dest) if key not in new]
        if stale:
            fs.rm(stale)

    # --- icechunk ----------------------------------------------------------------------------
    def icechunk_storage(self, uri: str | None = None):
        """icechunk Storage for a repository URI (default: the risk raster repository)."""
        import icechunk

        uri = uri or self.icechunk_uri
        if uri.startswith("s3://"):
            bucket, _, prefix = uri[len("s3://") :].partition("/")
            kwargs = {"bucket": bucket, "prefix": prefix, "region": self.s3_region}
            if self.s3_endpoint_url:
                kwargs |= {
                    "endpoint_url": self.s3_endpoint_url,
                    "allow_http": self.s3_endpoint_url.startswith("http://"),
                    "force_path_style": True,
                }
            creds = _aws_env_credentials()
            if creds:
                kwargs |= creds
            else:
                kwargs["from_env"] = True
            return icechunk.s3_storage(**kwargs)
        # Commits to a local repository are serialized by the writers (raster_store takes a
        # file lock), so icechunk's per-repository concurrency warning is noise here.
        icechunk.set_logs_filter("error")
        return icechunk.local_filesystem_storage(uri)


def _is_metadata_file(name: str) -> bool:
    """Files that describe the others: parquet ``_common_metadata``/``_metadata``, zarr metadata."""
    return name.startswith(("_", ".")) or name == "zarr.json"


def _aws_env_credentials() -> dict:
    key, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    if not (key and secret):
        return {}
    creds = {"access_key_id": key, "secret_access_key": secret}
    if os.environ.get("AWS_SESSION_TOKEN"):
        creds["session_token"] = os.environ["AWS_SESSION_TOKEN"]
    return creds
