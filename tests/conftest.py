"""Shared fixtures: a real S3 API (moto server on loopback) with fake credentials, and the
demo inputs generated once per session through the real ``demo_inputs`` asset."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

# The code location (`defs`) and the CLI read the environment: throwaway folders, never ./data.
_SESSION_DIR = Path(tempfile.mkdtemp(prefix="ocr-tests-"))
os.environ["OCR_STORAGE_ROOT"] = str(_SESSION_DIR / "default-root")
os.environ["DAGSTER_HOME"] = str(_SESSION_DIR / "dagster-home")
for _var in ("OCR_ENVIRONMENT", "OCR_VERSION", "OCR_INPUT_ROOT", "OCR_GRID", "OCR_PLATFORM"):
    os.environ.pop(_var, None)
(_SESSION_DIR / "dagster-home").mkdir()

LOOPBACK = "127.0.0.1"

FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    # Never read the developer's real profiles or ask an instance-metadata endpoint.
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def _moto_command(port: int) -> list[str]:
    exe = Path(sys.executable).with_name("moto_server")
    if exe.exists():
        return [str(exe), "-H", LOOPBACK, "-p", str(port)]
    return [sys.executable, "-m", "moto.server", "-H", LOOPBACK, "-p", str(port)]


def _wait_until_answers(url: str, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"moto server exited early with code {proc.returncode}")
        try:
            with opener.open(url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"moto server at {url} did not answer within {timeout} s")


@pytest.fixture(scope="session")
def s3_server():
    """Endpoint URL of a moto S3 server on loopback; fake AWS credentials for the session."""
    port = _free_port()
    endpoint = f"http://{LOOPBACK}:{port}"
    with pytest.MonkeyPatch.context() as mp:
        for key, value in FAKE_AWS_ENV.items():
            mp.setenv(key, value)
        mp.delenv("AWS_PROFILE", raising=False)
        mp.setenv("NO_PROXY", ",".join(filter(None, [os.environ.get("NO_PROXY"), LOOPBACK])))
        mp.setenv("no_proxy", ",".join(filter(None, [os.environ.get("no_proxy"), LOOPBACK])))
        proc = subprocess.Popen(
            _moto_command(port),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=os.environ.copy(),
        )
        try:
            _wait_until_answers(endpoint + "/", proc)
            yield endpoint
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def s3_client(s3_server):
    import boto3

    return boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")


@pytest.fixture
def s3_bucket(s3_client) -> str:
    """A fresh, uniquely named bucket on the moto server, as ``s3://bucket``."""
    name = f"ocr-test-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=name)
    return f"s3://{name}"


@pytest.fixture(scope="session")
def demo_inputs_root(tmp_path_factory) -> Path:
    """The demo inputs (fewer buildings than the default, for speed), read-only for tests."""
    import dagster as dg

    from ocr_assets.inputs import demo_inputs
    from ocr_resources import InputCatalogResource

    root = tmp_path_factory.mktemp("demo-inputs")
    result = dg.materialize(
        [demo_inputs],
        resources={"catalog": InputCatalogResource(root=str(root))},
        run_config={"ops": {"demo_inputs": {"config": {"n_buildings": 12_000}}}},
    )
    assert result.success
    return root


@pytest.fixture
def inputs_copy(demo_inputs_root, tmp_path) -> Path:
    """A writable copy of the demo inputs, for tests that alter them."""
    import shutil

    dst = tmp_path / "inputs"
    shutil.copytree(demo_inputs_root, dst)
    return dst
