"""Only failures that can heal are retried: timeouts, throttling and dropped connections.

Missing, unreadable or malformed inputs fail at once. Classification is checked on real
exception objects from botocore, aiohttp and icechunk; through Dask (types survive the trip);
and end to end in Dagster with errors injected at the narrowest boundary: icechunk's
``Repository.open`` and the filesystem that serves the buildings file.
"""

from __future__ import annotations

import threading
from pathlib import Path

import aiohttp
import dagster as dg
import icechunk
import pyarrow as pa
import pytest
from aiohttp.client_reqrep import ConnectionKey
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)
from fsspec.implementations.local import LocalFileSystem
from input_edits import region_resources, run_region_step

from ocr_assets.phase01_regions import process_region, retryable
from ocr_core.catalog import InputCatalog, spec
from ocr_core.errors import InputDataError, TransientInputError, is_transient, summary
from ocr_core.grid import RegionIdError
from ocr_core.schema import BUILDINGS
from ocr_core.schema import SCOTT_2024 as SCOTT
from ocr_core.storage import Storage
from ocr_resources import ComputeResource

REGION = "y3_x2"


def _client_error(code: str, status: int = 400) -> ClientError:
    response = {
        "Error": {"Code": code, "Message": f"{code} (test)"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, "GetObject")


def _chained(outer: Exception, inner: BaseException, via: str) -> Exception:
    try:
        try:
            raise inner
        except BaseException as e:
            if via == "cause":
                raise outer from e
            raise outer  # noqa: B904 - __context__ only, on purpose
    except Exception as e:
        return e


def _ssl_key() -> ConnectionKey:
    return ConnectionKey("s3.amazonaws.com", 443, True, True, None, None, None)


TRANSIENT = {
    "TimeoutError": TimeoutError("timed out"),
    "ConnectionResetError": ConnectionResetError(104, "Connection reset by peer"),
    "ConnectionError": ConnectionError("worker lost"),
    "botocore ReadTimeoutError": ReadTimeoutError(endpoint_url="https://s3.amazonaws.com/b/k"),
    "botocore ConnectTimeoutError": ConnectTimeoutError(endpoint_url="https://s3.amazonaws.com"),
    "botocore EndpointConnectionError": EndpointConnectionError(endpoint_url="https://x"),
    **{
        f"ClientError {code}": _client_error(code, status)
        for code, status in (
            ("SlowDown", 503),
            ("Throttling", 400),
            ("ThrottlingException", 400),
            ("RequestTimeout", 400),
            ("InternalError", 500),
            ("503", 503),
            ("500", 500),
        )
    },
    "aiohttp ServerTimeoutError": aiohttp.ServerTimeoutError("Timeout on reading data"),
    "aiohttp ClientConnectionError": aiohttp.ClientConnectionError("Connection closed"),
    "aiohttp ServerDisconnectedError": aiohttp.ServerDisconnectedError(),
    "icechunk timeout": icechunk.IcechunkError("x error fetching chunk: operation timed out"),
    "icechunk SlowDown": icechunk.IcechunkError("x S3 error: SlowDown: Please reduce"),
    "icechunk connection reset": icechunk.IcechunkError("x dispatch failure: connection reset"),
    "OSError from SlowDown (s3fs)": _chained(
        OSError("S3 error"), _client_error("SlowDown"), "cause"
    ),
    "RuntimeError during a timeout": _chained(RuntimeError("x"), TimeoutError(), "context"),
}

NOT_TRANSIENT = {
    "PermissionError": PermissionError(13, "Permission denied"),
    "FileNotFoundError": FileNotFoundError(2, "No such file"),
    "ValueError": ValueError("negative fractions"),
    "ClientError AccessDenied": _client_error("AccessDenied", 403),
    "ClientError NoSuchKey": _client_error("NoSuchKey", 404),
    "botocore NoCredentialsError": NoCredentialsError(),
    "aiohttp certificate error": aiohttp.ClientConnectorCertificateError(
        _ssl_key(), ValueError("certificate verify failed")
    ),
    "icechunk missing repository": icechunk.IcechunkError("x the repository doesn't exist"),
    "ArrowInvalid": pa.ArrowInvalid("Parquet magic bytes not found in footer"),
    "PermissionError from AccessDenied (s3fs)": _chained(
        PermissionError("Access Denied"), _client_error("AccessDenied", 403), "cause"
    ),
}


@pytest.mark.parametrize("name", list(TRANSIENT))
def test_transient_errors_are_recognised(name):
    assert is_transient(TRANSIENT[name])


@pytest.mark.parametrize("name", list(NOT_TRANSIENT))
def test_permanent_errors_are_not_transient(name):
    assert not is_transient(NOT_TRANSIENT[name])


def test_our_classification_wins_over_a_transient_cause():
    wrapped = _chained(InputDataError("bad input"), TimeoutError(), "cause")
    assert is_transient(wrapped) and not retryable(wrapped)
    assert retryable(TransientInputError("slow"))
    assert not retryable(RegionIdError("y9_x9"))
    for name in ("PermissionError", "FileNotFoundError", "ValueError", "ArrowInvalid"):
        assert not retryable(NOT_TRANSIENT[name]), name
    assert retryable(_client_error("SlowDown"))
    assert retryable(RuntimeError("a worker died"))  # unknown failures keep being retried


def test_summary_is_one_line():
    err = icechunk.IcechunkError("  x the repository doesn't exist\n  | \n  | context: …")
    assert summary(err) == "IcechunkError: the repository doesn't exist"
    assert summary(TimeoutError()) == "TimeoutError"


# ------------------------------------------------------------------------------ through Dask


class UnpicklableTimeout(TimeoutError):
    """Like some client libraries' errors: it holds its connection, so it cannot be pickled
    and Dask would hand back a bare ``Exception`` (retried or not by accident)."""

    def __init__(self, url: str):
        super().__init__(f"read timed out on {url}")
        self.connection = threading.Lock()


class UnpicklablePermissionError(PermissionError):
    def __init__(self, path: str):
        super().__init__(f"access denied to {path}")
        self.connection = threading.Lock()


def _raise(kind: str):
    if kind == "input":
        raise InputDataError("input dataset 'x' is bad")
    if kind == "boto":
        try:
            raise ReadTimeoutError(endpoint_url="https://s3.amazonaws.com/b/k")
        except ReadTimeoutError as exc:
            raise TransientInputError("input dataset 'x': read timed out") from exc
    if kind == "unpicklable-timeout":
        raise UnpicklableTimeout("https://x")
    raise UnpicklablePermissionError("s3://bucket/key")


@pytest.mark.parametrize(
    ("kind", "expected", "retry"),
    [
        ("input", InputDataError, False),
        ("boto", TransientInputError, True),
        ("unpicklable-timeout", TransientInputError, True),
        ("unpicklable-permission", PermissionError, False),
    ],
)
def test_exception_type_survives_dask(kind, expected, retry):
    with pytest.raises(expected) as info:
        ComputeResource().run(dg.AssetKey("region_risk"), _raise, kind)
    assert retryable(info.value) is retry
    if kind == "boto":
        assert isinstance(info.value.__cause__, ReadTimeoutError)
    if kind.startswith("unpicklable"):
        assert "Unpicklable" in str(info.value)  # the original type is named in the message


# ------------------------------------------------------------------------------ catalog


def _fail_open(monkeypatch, errors: list[BaseException]):
    """icechunk.Repository.open raises ``errors`` one per call, then opens normally."""
    real = icechunk.Repository.open.__func__
    calls = []

    def open_(cls, *args, **kwargs):
        calls.append(1)
        if errors:
            raise errors.pop(0)
        return real(cls, *args, **kwargs)

    monkeypatch.setattr(icechunk.Repository, "open", classmethod(open_))
    return calls


def test_open_timeout_is_transient_and_names_the_dataset(demo_inputs_root, monkeypatch):
    _fail_open(monkeypatch, [TimeoutError("connect timed out")])
    catalog = InputCatalog(Storage(str(demo_inputs_root)))
    with pytest.raises(TransientInputError, match=f"input dataset '{SCOTT}'.*TimeoutError"):
        catalog.open_zarr(SCOTT)
    assert "CRPS" in catalog.open_zarr(SCOTT)  # the next attempt opens it


def test_open_access_denied_is_an_input_error(demo_inputs_root, monkeypatch):
    _fail_open(monkeypatch, [_client_error("AccessDenied", 403)])
    catalog = InputCatalog(Storage(str(demo_inputs_root)))
    with pytest.raises(InputDataError, match=r"could not be opened.*AccessDenied"):
        catalog.open_zarr(SCOTT)


# ------------------------------------------------------------------------------ in Dagster


def _events(result, kind: str) -> list:
    return [e for e in result.all_events if e.event_type_value == kind]


def test_timeout_opening_a_store_is_retried_and_succeeds(demo_inputs_root, tmp_path, monkeypatch):
    calls = _fail_open(monkeypatch, [TimeoutError("connect timed out")])
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [process_region],
            partition_key=REGION,
            resources=region_resources(demo_inputs_root, tmp_path / "out"),
            instance=instance,
            raise_on_error=False,
        )
        logs = [e.user_message for e in instance.all_logs(result.run_id)]
    assert result.success
    assert [
        e.event_specific_data.seconds_to_wait for e in _events(result, "STEP_UP_FOR_RETRY")
    ] == [5]
    warning = next(m for m in logs if "attempt 1/3 failed" in m)
    assert "(TransientInputError: input dataset" in warning
    assert "TimeoutError: connect timed out" in warning and "retrying in 5 s" in warning
    assert len(calls) >= 7  # the failed open, then all 6 raster inputs on the second attempt


class FlakyLocalFileSystem(LocalFileSystem):
    """Local files, except that opening a file named ``target`` raises ``errors`` (one per
    open) before it opens normally: a network filesystem having a bad moment."""

    cachable = False

    def __init__(self, target: str, errors: list[BaseException], **kwargs):
        super().__init__(**kwargs)
        self.target, self.errors = target, errors

    def _open(self, path, mode="rb", *args, **kwargs):
        if "r" in mode and Path(path).name == self.target and self.errors:
            raise self.errors.pop(0)
        return super()._open(path, mode, *args, **kwargs)


def _serve_buildings_with(monkeypatch, errors: list[BaseException]) -> list[BaseException]:
    import fsspec

    fake = FlakyLocalFileSystem(Path(spec(BUILDINGS).prefix).name, errors)
    real = fsspec.filesystem
    monkeypatch.setattr(
        fsspec,
        "filesystem",
        lambda protocol, **kw: fake if protocol == "file" else real(protocol, **kw),
    )
    return errors


def _run_buildings(demo_inputs_root, tmp_path):
    """The region step; its risk half succeeds, so the buildings half meets the failure."""
    out = tmp_path / "out"
    result = run_region_step(demo_inputs_root, out, REGION)
    return result, Path(Storage(str(out)).region_geoparquet_uri(REGION))


def test_connection_reset_reading_buildings_is_retried(demo_inputs_root, tmp_path, monkeypatch):
    left = _serve_buildings_with(monkeypatch, [ConnectionResetError(104, "reset by peer")])
    result, parquet = _run_buildings(demo_inputs_root, tmp_path)
    assert result.success
    assert left == []
    assert len(_events(result, "STEP_UP_FOR_RETRY")) == 1
    assert parquet.exists()


def test_permission_denied_on_buildings_fails_at_once(demo_inputs_root, tmp_path, monkeypatch):
    _serve_buildings_with(monkeypatch, [PermissionError(13, "Permission denied")] * 5)
    result, parquet = _run_buildings(demo_inputs_root, tmp_path)
    assert not result.success
    assert _events(result, "STEP_UP_FOR_RETRY") == []
    (failure,) = _events(result, "STEP_FAILURE")
    message = failure.event_specific_data.error.message
    assert f"region_buildings for region {REGION}: input dataset {BUILDINGS!r}" in message
    assert "cannot be read: permission denied" in message and "grant" in message
    assert not parquet.exists()
