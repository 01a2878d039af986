"""Coiled software environments: names follow the reference's rules; ``create`` and the build
lookup run against Coiled's API faked at its two calls (tests/coiled_software_api.py)."""

import pytest
from coiled_software_api import installed

from ocr_deploy.plan import software_env_name
from ocr_deploy.software_env import create_software_env, main
from ocr_resources.coiled_software import SoftwareBuildError, latest_build, software_build


@pytest.mark.parametrize(
    ("source", "name"),
    [
        ("main", "ocr-main"),
        ("123", "ocr-123"),
        ("v1.1.0", "ocr-v1-1-0"),
        ("Feature/Add  Wind--Kernels!", "ocr-feature-add-wind-kernels"),
        ("under_score", "ocr-under_score"),
        ("--x--", "ocr-x"),
        ("", "ocr-unnamed"),
        ("!!!", "ocr-unnamed"),
    ],
)
def test_names(source, name):
    assert software_env_name(source) == name


@pytest.fixture
def software_api(monkeypatch):
    yield from installed(monkeypatch)


def test_create_prints_the_name_and_the_build_it_made(software_api, capsys):
    main(["create", "pr-42"])
    assert capsys.readouterr().out == "ocr-pr-42 build 101\n"
    [call] = software_api.create_calls
    assert (call["name"], call["arm"], call["include_local_code"]) == ("ocr-pr-42", True, True)
    assert "dask" in " ".join(call["pip"])
    # the build a cluster of this process then names is the one just made
    assert software_build("ocr-pr-42") == "101"


def test_a_rebuild_is_a_new_build_of_the_same_name(software_api, capsys):
    assert create_software_env("main") == ("ocr-main", "101")
    assert create_software_env("main") == ("ocr-main", "102")


@pytest.mark.parametrize(
    ("alias", "message"),
    [
        (None, "Coiled has no software environment 'ocr-main'"),
        ({"latest_spec": None}, "has no build on Coiled"),
        ({"latest_spec": {"latest_build": None}}, "has no build on Coiled"),
        ({"latest_spec": {"latest_build": {"id": 7, "state": "queued"}}}, "7 .* is 'queued'"),
    ],
)
def test_latest_build_refuses_what_a_cluster_cannot_run(alias, message):
    with pytest.raises(SoftwareBuildError, match=message) as err:
        latest_build(alias, "ocr-main")
    assert "python -m ocr_deploy.software_env create main" in str(err.value)


def test_latest_build_of_a_finished_build():
    alias = {"latest_spec": {"latest_build": {"id": 7, "state": "built"}}}
    assert latest_build(alias, "ocr-main") == "7"
    queued = {"latest_spec": {"latest_build": {"id": 8, "state": "queued"}}}
    assert latest_build(queued, "ocr-main", built=False) == "8"
