"""Support for the ComputeResource tests: the functions run as tasks, real local clusters
recorded, and Coiled with only ``coiled.Cluster`` and the software environment API
(tests/coiled_software_api.py) replaced.

The fake ``coiled.Cluster`` checks its keyword arguments against the installed coiled signature,
records them, and attaches to a real ``distributed.LocalCluster`` per cluster name (as Coiled
attaches to an existing cluster of the same name), whose workers get ``worker_options`` as
Coiled's do, so the function really runs. The test modules import the fixtures by name.
"""

from __future__ import annotations

import inspect
import logging
import os
import threading

import numpy as np
import pytest
from coiled_software_api import installed

from ocr_resources.compute import PROFILES

# AWS's documented sizes (vCPUs, GiB), written out again so a change must be deliberate.
EXPECTED_VMS = {
    "m8g.2xlarge": (8, 32),
    "m8g.4xlarge": (16, 64),
    "m8g.16xlarge": (64, 256),
    "c8g.12xlarge": (48, 96),
    "r8g.4xlarge": (16, 128),
}


# --- functions run as tasks (module level, so they pickle into worker processes) ------------


def where_am_i() -> tuple[int, str]:
    return os.getpid(), threading.current_thread().name


def weighted_sum(values, *, weight, key="default-key", retries=0):
    """``key``/``retries`` collide with ``Client.submit`` keywords and must still reach us."""
    return float(np.sum(np.asarray(values) * weight)), key, retries


def fail(region_id: str):
    raise ValueError(f"region {region_id}: input raster has no valid pixels")


def scheduler_address() -> str:
    from distributed import get_worker

    return get_worker().scheduler.address


# --- local platform --------------------------------------------------------------------------


def _tcp_listeners() -> set[tuple[str, int]]:
    """(host, port) of every TCP socket this process listens on."""
    import psutil

    return {
        (c.laddr.ip, c.laddr.port)
        for c in psutil.Process().net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN
    }


@pytest.fixture
def local_clusters(monkeypatch):
    """Real LocalClusters, with each instance and its arguments recorded."""
    import distributed

    made = []

    class RecordingLocalCluster(distributed.LocalCluster):
        def __init__(self, **kwargs):
            made.append((self, kwargs))
            super().__init__(**kwargs)
            port = self.scheduler_info["services"]["dashboard"]  # the scheduler's HTTP server
            self.http_hosts = {host for host, p in _tcp_listeners() if p == port}

    monkeypatch.setattr(distributed, "LocalCluster", RecordingLocalCluster)
    return made


# --- coiled platform, control plane faked at coiled.Cluster ----------------------------------


class FakeCoiledCluster:
    """Stands in for ``coiled.Cluster``: same keyword names, attach-by-name, real Dask inside."""

    signature: inspect.Signature
    calls: list[dict]
    backends: dict  # cluster name -> LocalCluster
    clients: list
    closes: list[dict]
    submits: list[dict]

    def __init__(self, **kwargs):
        type(self).signature.bind(None, **kwargs)  # TypeError on a name coiled does not accept
        type(self).calls.append(kwargs)
        from distributed import LocalCluster

        name = kwargs["name"]
        if name not in self.backends:
            self.backends[name] = LocalCluster(
                n_workers=1,
                threads_per_worker=2,
                processes=False,
                dashboard_address=None,  # pyright: ignore[reportArgumentType] (None: none)
                scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                silence_logs=logging.ERROR,
                **kwargs.get("worker_options", {}),
            )
        self._backend = self.backends[name]
        self.shutdown_on_close = kwargs.get("shutdown_on_close")

    def get_client(self):
        """A real client of the cluster, its ``submit`` keyword arguments recorded."""
        client = self._backend.get_client()
        self.clients.append(client)
        submit = client.submit

        def recording_submit(*args, **kwargs):
            type(self).submits.append(kwargs)
            return submit(*args, **kwargs)

        client.submit = recording_submit
        return client

    def close(self, force_shutdown: bool = False, reason: str | None = None):
        self.closes.append({"force_shutdown": force_shutdown, "reason": reason})
        if force_shutdown or self.shutdown_on_close in (True, None):
            self._backend.close()


@pytest.fixture
def fake_coiled(monkeypatch):
    import coiled

    fake = type(
        "Fake",
        (FakeCoiledCluster,),
        {
            "signature": inspect.signature(coiled.Cluster.__init__),
            "calls": [],
            "backends": {},
            "clients": [],
            "closes": [],
            "submits": [],
        },
    )
    monkeypatch.setattr(coiled, "Cluster", fake)
    yield fake
    for backend in fake.backends.values():
        backend.close()


@pytest.fixture
def software_api(monkeypatch):
    yield from installed(monkeypatch)


@pytest.fixture
def test_log(caplog):
    caplog.set_level(logging.INFO, logger="ocr-test-compute")
    return logging.getLogger("ocr-test-compute")


def expected_kwargs(asset: str, environment: str = "qa", name_suffix: str = "") -> dict:
    p = PROFILES[asset]
    _, memory_gib = EXPECTED_VMS[p.vm_type]
    kwargs = {
        "name": f"ocr-{environment}-{p.cluster_group}{name_suffix}",
        "worker_vm_types": [p.vm_type],
        "scheduler_vm_types": [p.scheduler_vm_type],
        "n_workers": list(p.n_workers) if isinstance(p.n_workers, tuple) else p.n_workers,
        "region": "us-west-2",
        "spot_policy": "spot_with_fallback",
        "tags": {
            "Project": "OCR",
            "Environment": environment,
            "ClusterGroup": p.cluster_group,
            "Asset": asset,
        },
        "worker_options": {"resources": {"MEMORY": memory_gib - 4}},
        "arm": True,
        "idle_timeout": "20 minutes",
        "shutdown_on_close": False,
    }
    if p.disk_gb is not None:
        kwargs["worker_disk_size"] = p.disk_gb
    return kwargs


def new_process() -> None:
    """Forget the software builds resolved so far, as a new process would."""
    from ocr_resources.coiled_software import software_build

    software_build.cache_clear()
