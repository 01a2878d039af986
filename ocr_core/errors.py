"""Which input errors can heal by retrying, one-line summaries of any error, and picklable
stand-ins for errors a Dask task could not ship back with their type.

A region step is retried (linear backoff) only for failures that a later attempt can fix:
timeouts, throttling and dropped connections while opening or reading inputs. Everything
else about an input (missing, corrupt, unreadable, outside its schema) fails at once.
Third-party exception types are recognised by name, so nothing here imports botocore,
aiohttp, icechunk or obstore.
"""

from __future__ import annotations

from collections.abc import Iterator

# botocore exceptions that mean the request never completed (botocore.exceptions)
_BOTOCORE_TRANSIENT = {
    "ReadTimeoutError",
    "ConnectTimeoutError",
    "EndpointConnectionError",
    "ConnectionClosedError",
}
# S3 error codes (ClientError.response["Error"]["Code"]) that ask the caller to try again
_TRANSIENT_CODES = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestTimeout",
    "RequestTimeoutException",
    "InternalError",
    "ServiceUnavailable",
    "500",
    "503",
}
_TRANSIENT_STATUS = {500, 503}
# aiohttp (s3fs's transport): timeouts and dropped connections, but not TLS/certificate errors
_AIOHTTP_TRANSIENT = {"ServerTimeoutError", "ClientConnectionError", "ServerDisconnectedError"}
# icechunk and obstore report object-store failures in their message only
_MESSAGE_MARKERS = (
    "timeout",
    "timed out",
    "connection reset",
    "connection closed",
    "throttl",
    "slowdown",
    "slow down",
)


class InputDataError(ValueError):
    """An input dataset is missing or malformed; the message names it and the fix."""


class TransientInputError(RuntimeError):
    """Opening or reading an input failed in a way a retry can fix (timeout, throttling).

    Deliberately not an ``InputDataError``: the data may be fine, so the step is retried.
    """


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception reachable through ``__cause__`` / ``__context__``."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo.extend((e.__context__, e.__cause__))


def _names(exc: BaseException, module: str) -> set[str]:
    """Names of the classes in ``exc``'s MRO defined in ``module`` (or its submodules)."""
    return {c.__name__ for c in type(exc).__mro__ if c.__module__.split(".")[0] == module}


def _transient_one(e: BaseException) -> bool:
    if isinstance(e, TransientInputError | TimeoutError | ConnectionError):
        return True
    botocore = _names(e, "botocore")
    if botocore & _BOTOCORE_TRANSIENT:
        return True
    if "ClientError" in botocore:
        response = getattr(e, "response", None) or {}
        code = str(response.get("Error", {}).get("Code", ""))
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return code in _TRANSIENT_CODES or status in _TRANSIENT_STATUS
    aiohttp = _names(e, "aiohttp")
    if aiohttp & _AIOHTTP_TRANSIENT:
        return not any("SSL" in n or "Certificate" in n for n in aiohttp)
    if _names(e, "icechunk") or _names(e, "obstore"):
        message = str(e).lower()
        return any(marker in message for marker in _MESSAGE_MARKERS)
    return False


def is_transient(exc: BaseException) -> bool:
    """True if ``exc`` or an exception it was raised from is a timeout, throttling or a
    dropped connection: a retry can succeed. Callers decide first whether their own
    classification (e.g. ``InputDataError``) overrides a transient cause."""
    return any(_transient_one(e) for e in _chain(exc))


def summary(exc: BaseException, limit: int = 500) -> str:
    """``Type: first line of the message`` (icechunk's multi-line reports cut to their
    headline), at most ``limit`` characters."""
    lines = [line.strip().removeprefix("x ").strip() for line in str(exc).splitlines()]
    first = next((line for line in lines if line), "")
    text = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def first_line(text: str) -> str:
    """The first non-blank line of a message (a traceback's or a log event's), stripped."""
    return next((line.strip() for line in str(text).splitlines() if line.strip()), str(text))


def survives_pickling(exc: BaseException) -> bool:
    """Whether Dask can ship ``exc`` back as is (with its causes, as ``distributed`` does);
    otherwise it would arrive as a bare ``Exception(repr)`` and lose its type."""
    import pickle

    from tblib import pickling_support

    causes, e = [], exc
    while e.__cause__ is not None:
        causes.append(e.__cause__)
        e = e.__cause__
    pickling_support.install(exc, *causes)
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return False
    return True


def picklable_stand_in(exc: Exception) -> Exception:
    """A picklable exception with the same meaning for retries: ``TransientInputError`` for a
    transient error, else the nearest built-in base class of ``exc``, with its summary."""
    if is_transient(exc):
        return TransientInputError(summary(exc))
    base = next(c for c in type(exc).__mro__ if c.__module__ == "builtins")
    try:
        return base(summary(exc))
    except Exception:
        return RuntimeError(summary(exc))
