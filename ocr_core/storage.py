"""Where outputs live and how they are written: the reference's layout, local or S3, atomic writes.

``Storage`` is a small picklable value, so the same object travels to Dask workers (local or
Coiled) that write outputs themselves. Layout per environment and version (docs/data.md),
derived in one place so no two settings can collide:

    {root}/output/fire-risk/tensor/{env}[/v{ver}]/ocr.icechunk
    {root}/intermediate/fire-risk/vector/{env}[/v{ver}]/geoparquet-regions/{region}.parquet
    {root}/intermediate/fire-risk/vector/{env}[/v{ver}]/region-summary-stats/
    {root}/intermediate/fire-risk/vector/{env}[/v{ver}]/tile-features/
    {root}/output/fire-risk/vector/{env}[/v{ver}]/{geoparquet,region-analysis,pmtiles}/
    {root}/output/fire-risk/pyramid/{env}[/v{ver}]/pyramid.zarr
    {root}/staging/{env}[/v{ver}]/          stage folders of writes in progress (ocr_core.publish)

A QA pull request writes its own namespace ``qa/pr-{n}`` in place of ``{env}[/v{ver}]``, so
two PRs never overwrite each other; ``qa/pr-{n}`` and ``qa/v{ver}`` sit inside the folders of
``qa`` and are namespaces of their own (``NESTED_NAMESPACE_RE``; a wipe of ``qa`` keeps them).

On S3 a folder dataset (the hive GeoParquet, the statistics, the analysis files, the pyramid)
is published as versions behind a pointer: ``current_dir`` says where readers find it now.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

# Semantic Versioning 2.0.0, without a leading "v" (OCR_VERSION, release tags).
SEMVER_RE = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
# The name of a namespace folder inside an environment's folder: a pull request or a version.
NESTED_NAMESPACE_RE = re.compile(r"pr-[1-9][0-9]*|v" + SEMVER_RE.pattern[1:-1])

# The layout's top folders; each holds one folder per namespace.
TENSOR_PREFIX = "output/fire-risk/tensor"
INTERMEDIATE_VECTOR_PREFIX = "intermediate/fire-risk/vector"
VECTOR_PREFIX = "output/fire-risk/vector"
PYRAMID_PREFIX = "output/fire-risk/pyramid"
LAYOUT_PREFIXES = (TENSOR_PREFIX, INTERMEDIATE_VECTOR_PREFIX, VECTOR_PREFIX, PYRAMID_PREFIX)


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
    pull_request: int | None = None  # a QA pull request's own namespace, qa/pr-{n}

    # --- layout ------------------------------------------------------------------------------
    @property
    def is_s3(self) -> bool:
        return self.root.startswith("s3://")

    @property
    def namespace(self) -> str:
        if self.pull_request is not None:
            return f"{self.environment}/pr-{self.pull_request}"
        return f"{self.environment}/v{self.version}" if self.version else self.environment

    def with_namespace(self, namespace: str) -> Storage:
        """This root with ``namespace``, one of this environment's: ``qa``, ``qa/pr-12`` or
        ``qa/v1.2.3`` for qa; ValueError naming the forms for anything else."""
        name = namespace.strip().strip("/")
        env, _, rest = name.partition("/")
        pr = re.fullmatch(r"pr-([1-9][0-9]*)", rest)
        version = rest[1:] if rest.startswith("v") and SEMVER_RE.match(rest[1:]) else None
        if env != self.environment or (rest and pr is None and version is None):
            raise ValueError(
                f"namespace {namespace!r} is not one of {self.environment}'s: use "
                f"{self.environment}, {self.environment}/pr-N or {self.environment}/vX.Y.Z"
            )
        return replace(self, version=version, pull_request=int(pr.group(1)) if pr else None)

    @property
    def namespace_dirs(self) -> list[str]:
        """The folder of this namespace under each top folder of the layout."""
        return [self.join(prefix, self.namespace) for prefix in LAYOUT_PREFIXES]

    def join(self, *parts: str) -> str:
        return "/".join([self.root.rstrip("/"), *[p.strip("/") for p in parts if p]])

    @property
    def icechunk_uri(self) -> str:
        return self.join(TENSOR_PREFIX, self.namespace, "ocr.icechunk")

    @property
    def region_geoparquet_dir(self) -> str:
        return self.join(INTERMEDIATE_VECTOR_PREFIX, self.namespace, "geoparquet-regions")

    def region_geoparquet_uri(self, region_id: str) -> str:
        return f"{self.region_geoparquet_dir}/{region_id}.parquet"

    @property
    def summary_stats_dir(self) -> str:
        return self.join(INTERMEDIATE_VECTOR_PREFIX, self.namespace, "region-summary-stats")

    @property
    def vector_output_dir(self) -> str:
        return self.join(VECTOR_PREFIX, self.namespace)

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

    def published_summary_stats_uri(self, level: str) -> str:
        """The summary file readers use now (on S3, inside the folder's current version)."""
        return f"{self.current_dir(self.summary_stats_dir)}/{level}_summary_stats.parquet"

    def region_analysis_uri(self, name: str, ext: str) -> str:
        """name: block, counties, tracts, states or nation; ext: csv, geojson or parquet."""
        return f"{self.region_analysis_dir}/{name}/stats.{ext}"

    def pmtiles_uri(self, name: str) -> str:
        """name: buildings, building_centroids or regions."""
        return f"{self.pmtiles_dir}/{name}.pmtiles"

    @property
    def tile_features_dir(self) -> str:
        """Intermediate feature exports shared by the building tile steps."""
        return self.join(INTERMEDIATE_VECTOR_PREFIX, self.namespace, "tile-features")

    @property
    def pyramid_uri(self) -> str:
        return self.join(PYRAMID_PREFIX, self.namespace, "pyramid.zarr")

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

    def fs_path(self, uri: str) -> str:
        return uri[len("s3://") :] if uri.startswith("s3://") else uri

    def current_dir(self, uri: str) -> str:
        """Where the published content of the folder dataset ``uri`` is now (``publish``)."""
        from ocr_core.publish import current_dir

        return current_dir(self, uri)

    def exists(self, uri: str) -> bool:
        return self.filesystem().exists(self.fs_path(uri))

    def list_files(self, folder: str, suffix: str = "", recursive: bool = False) -> list[str]:
        """Files in ``folder`` (below it with ``recursive``) whose names end in ``suffix``,
        sorted, without hidden ones (the scratch files of atomic writes). A listing, never a
        pattern: a root may hold glob characters such as ``[x]`` or ``*``."""
        base = self.fs_path(folder).rstrip("/")
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
        return cast(bytes, self.filesystem().cat_file(self.fs_path(uri)))

    def file_version(self, uri: str) -> tuple[int, str]:
        """Size of the file ``uri`` and a tag that changes when it is replaced (the S3 ETag, the
        local modification time); FileNotFoundError if there is none."""
        info = self.filesystem().info(self.fs_path(uri))
        tag = str(info.get("ETag") or info.get("mtime")).strip('"')
        return int(info["size"]), f"{info['size']}-{tag}"

    def read_range(self, uri: str, start: int, end: int) -> bytes:
        """Bytes ``start`` to ``end`` (exclusive) of the file ``uri``: one ranged GET on S3."""
        return cast(bytes, self.filesystem().cat_file(self.fs_path(uri), start=start, end=end))

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

    # --- atomic writes (see ocr_core.publish) -----------------------------------------------
    @contextmanager
    def atomic_local_file(self, uri: str, suffix: str = "") -> Iterator[Path]:
        """Yield a staged path; on success it replaces ``uri`` whole, on error nothing changes.

        For outputs without checks of their own; audited outputs use ``publish.stage``.
        """
        from ocr_core.publish import stage

        with stage(self) as st:
            path = st.file(uri, suffix)
            yield path
            st.publish()

    def write_bytes_atomic(self, uri: str, data: bytes) -> None:
        with self.atomic_local_file(uri) as path:
            path.write_bytes(data)

    @contextmanager
    def atomic_local_dir(self, uri: str) -> Iterator[Path]:
        """Yield a staged folder that replaces the folder ``uri`` whole on success."""
        from ocr_core.publish import stage

        with stage(self) as st:
            path = st.folder(uri)
            yield path
            st.publish()

    # --- icechunk ----------------------------------------------------------------------------
    def icechunk_storage(self, uri: str | None = None):
        """icechunk Storage for a repository URI (default: the risk raster repository)."""
        import icechunk

        uri = uri or self.icechunk_uri
        if uri.startswith("s3://"):
            bucket, _, prefix = uri[len("s3://") :].partition("/")
            kwargs: dict[str, Any] = {"bucket": bucket, "prefix": prefix, "region": self.s3_region}
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


def _aws_env_credentials() -> dict:
    key, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    if not (key and secret):
        return {}
    creds = {"access_key_id": key, "secret_access_key": secret}
    if os.environ.get("AWS_SESSION_TOKEN"):
        creds["session_token"] = os.environ["AWS_SESSION_TOKEN"]
    return creds
