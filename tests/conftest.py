"""Shared fixtures: a real S3 API (moto server on loopback) with fake credentials, and the
demo inputs generated once per session through the real ``demo_inputs`` asset."""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path

import pytest
from s3_server import s3_server_running

# The code location (`defs`) and the CLI read the environment: throwaway folders, never ./data.
_SESSION_DIR = Path(tempfile.mkdtemp(prefix="ocr-tests-"))
os.environ["OCR_STORAGE_ROOT"] = str(_SESSION_DIR / "default-root")
os.environ["DAGSTER_HOME"] = str(_SESSION_DIR / "dagster-home")
for _var in ("OCR_ENVIRONMENT", "OCR_VERSION", "OCR_INPUT_ROOT", "OCR_GRID", "OCR_PLATFORM"):
    os.environ.pop(_var, None)
(_SESSION_DIR / "dagster-home").mkdir()


@pytest.fixture(scope="session")
def s3_server():
    """Endpoint URL of a moto S3 server on loopback; fake AWS credentials for the session."""
    with s3_server_running() as endpoint:
        yield endpoint


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


@pytest.fixture(scope="session")
def demo_generation(tmp_path_factory):
    """One full demo generation (seed 2026, 60 000 buildings) for the demo-data tests."""
    from demo_generation import SEED, generate

    return generate(tmp_path_factory.mktemp("demo-generation"), SEED)


@pytest.fixture(scope="session")
def demo_catalog(demo_generation):
    """The catalog of ``demo_generation``."""
    return demo_generation[0]


@pytest.fixture(scope="session")
def demo_scott(demo_catalog):
    """The Scott 30 m store of ``demo_generation``, loaded."""
    from ocr_core.schema import SCOTT_2024

    return demo_catalog.open_zarr(SCOTT_2024).load()
