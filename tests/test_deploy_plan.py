"""The deploy plan of each GitHub event (the wipe of a namespace: tests/test_deploy_wipe.py).

Events are payload files shaped like the ones GitHub writes to ``$GITHUB_EVENT_PATH``; the
release, a bad tag and an unlabelled PR go through ``ocr-dagster deploy plan`` in a fresh
process, the rest through ``ocr_deploy.plan.plan``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_process import one_error_line, run_cli

from ocr_deploy.plan import DeployPlan, PlanError, plan

SHA = "4f1c2b3a9d8e7f60112233445566778899aabbcc"
REPO = {"id": 1, "name": "ocr-dagster", "full_name": "carbonplan/ocr-dagster"}
SENDER = {"login": "someone", "id": 2, "type": "User"}
# The reference's QA regions (rows y14-y12 × columns x3-x7), written out independently.
QA = [f"y{row}_x{col}" for row in (14, 13, 12) for col in range(3, 8)]


# --- payload files ---------------------------------------------------------------------------
def _label(name: str) -> dict:
    return {"id": hash(name) % 10**9, "name": name, "color": "ededed", "default": False}


def pull_request_event(
    action: str, labels=(), number=123, title="Wind kernel", body="", added=None
) -> dict:
    event = {
        "action": action,
        "number": number,
        "pull_request": {
            "number": number,
            "state": "closed" if action == "closed" else "open",
            "title": title,
            "body": body,
            "labels": [_label(n) for n in labels],
            "merged": action == "closed",
            "head": {"ref": "wind-kernel", "sha": SHA, "repo": REPO},
            "base": {"ref": "main", "sha": "0" * 40, "repo": REPO},
        },
        "repository": REPO,
        "sender": SENDER,
    }
    if added is not None:
        event["label"] = _label(added)
    return event


def push_event(ref="refs/heads/main", deleted=False) -> dict:
    return {
        "ref": ref,
        "before": "1" * 40,
        "after": "0" * 40 if deleted else SHA,
        "created": False,
        "deleted": deleted,
        "forced": False,
        "head_commit": None if deleted else {"id": SHA, "message": "Merge pull request #123"},
        "repository": REPO,
        "pusher": {"name": "someone"},
        "sender": SENDER,
    }


def release_event(tag: str, prerelease=False) -> dict:
    return {
        "action": "published",
        "release": {
            "id": 99,
            "tag_name": tag,
            "name": tag,
            "target_commitish": "main",
            "draft": False,
            "prerelease": prerelease,
        },
        "repository": REPO,
        "sender": SENDER,
    }


def dispatch_event(**inputs) -> dict:
    """As GitHub writes it: every input a string, booleans "true"/"false"."""
    given = {
        "region_ids": "y14_x5",
        "all_region_ids": "false",
        "wipe": "false",
        "environment": "qa",
        "production_tag": "",
    } | inputs
    return {
        "inputs": given,
        "ref": "refs/heads/main",
        "repository": REPO,
        "sender": SENDER,
        "workflow": ".github/workflows/deploy.yaml",
    }


def _file(tmp_path: Path, name: str, event: dict) -> Path:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(event, indent=2))
    return path


def _plan(tmp_path: Path, event_name: str, event: dict, **kw) -> DeployPlan:
    """The plan of the event as read back from its payload file."""
    payload = json.loads(_file(tmp_path, event_name, event).read_text())
    return plan(event_name, payload, None, **kw)


# --- the command line ------------------------------------------------------------------------
def _cli(tmp_path: Path, *args: str, **env: str):
    return run_cli(tmp_path, *args, strip=("OCR_", "GITHUB_"), OCR_GRID="conus", **env)


def test_cli_release_plans_production_of_its_version(tmp_path):
    event = _file(tmp_path, "release", release_event("v1.2.3"))
    outputs = tmp_path / "github_output"
    outputs.write_text("earlier=kept\n")
    proc = _cli(
        tmp_path,
        "deploy",
        "plan",
        GITHUB_EVENT_NAME="release",
        GITHUB_EVENT_PATH=str(event),
        GITHUB_OUTPUT=str(outputs),
        GITHUB_SHA=SHA,
    )
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) == 1
    result = json.loads(proc.stdout)
    assert result["deploy"] is True
    assert result["environment"] == "production"
    assert result["version"] == "1.2.3"
    assert result["namespace"] == "production/v1.2.3"
    assert result["regions"] == "all"
    assert result["wipe"] is False
    assert result["ref"] == "v1.2.3"
    assert result["software_env"] == "ocr-v1-2-3"
    lines = outputs.read_text().splitlines()
    assert lines[0] == "earlier=kept"  # appended, never overwritten
    written = dict(line.split("=", 1) for line in lines[1:])
    assert written["environment"] == "production" and written["version"] == "1.2.3"
    assert written["regions"] == "all" and written["wipe"] == "false"
    assert written["deploy"] == "true" and written["pull_request"] == ""
    assert json.loads(written["plan"]) == {k: v for k, v in result.items() if k != "notes"}


def test_cli_unlabelled_pull_request_deploys_nothing(tmp_path):
    event = str(_file(tmp_path, "pr", pull_request_event("opened", labels=["documentation"])))
    proc = _cli(tmp_path, "deploy", "plan", "--event-name", "pull_request", "--event-path", event)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["deploy"] is False and result["wipe"] is False
    assert result["regions"] == [] and result["namespace"] is None


def test_cli_release_tag_that_is_not_semver_is_one_line(tmp_path):
    event = str(_file(tmp_path, "release", release_event("release-7")))
    proc = _cli(tmp_path, "deploy", "plan", "--event-name", "release", "--event-path", event)
    line = one_error_line(proc)
    assert "'release-7'" in line and "vX.Y.Z" in line
    assert proc.stdout == ""


# --- pull requests ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("action", "labels", "added"),
    [("opened", ["e2e"], None), ("synchronize", ["QA/QC"], None), ("labeled", ["e2e"], "e2e")],
)
def test_labelled_pull_request_deploys_qa_in_its_own_namespace(tmp_path, action, labels, added):
    event = pull_request_event(action, labels=labels, added=added)
    result = _plan(tmp_path, "pull_request", event, sha=SHA)
    assert result["deploy"] is True and result["environment"] == "qa"
    assert result["namespace"] == "qa/pr-123" and result["pull_request"] == 123
    assert result["version"] is None
    assert result["regions"] == QA
    assert result["wipe"] is True
    assert result["write_regional_stats"] is True and result["create_pyramid"] is False
    assert result["software_env"] == "ocr-123-4f1c2b3"
    assert result["ref"] == SHA


def test_e2e_marker_in_the_body_deploys_like_a_label(tmp_path):
    event = pull_request_event("reopened", body="Checks the new kernel [E2E] please")
    assert _plan(tmp_path, "pull_request", event)["namespace"] == "qa/pr-123"


def test_unrelated_label_added_to_a_labelled_pull_request_redeploys_nothing(tmp_path):
    event = pull_request_event("labeled", labels=["e2e", "documentation"], added="documentation")
    result = _plan(tmp_path, "pull_request", event)
    assert result["deploy"] is False and result["wipe"] is False


def test_closed_labelled_pull_request_wipes_only_its_namespace(tmp_path):
    result = _plan(tmp_path, "pull_request", pull_request_event("closed", labels=["QA/QC"]))
    assert result["deploy"] is False and result["wipe"] is True
    assert result["environment"] == "qa" and result["namespace"] == "qa/pr-123"
    unlabelled = _plan(tmp_path, "pull_request", pull_request_event("closed", number=124))
    assert unlabelled["deploy"] is False and unlabelled["wipe"] is False


# --- pushes, releases ------------------------------------------------------------------------
def test_push_to_main_deploys_staging_regions_and_wipes(tmp_path):
    result = _plan(tmp_path, "push", push_event())
    assert result["deploy"] is True and result["environment"] == "staging"
    assert result["namespace"] == "staging" and result["version"] is None
    assert len(result["regions"]) == len(set(result["regions"])) == 47
    assert set(QA) < set(result["regions"]) and {"y7_x31", "y12_x25"} < set(result["regions"])
    assert result["wipe"] is True and result["create_pyramid"] is True
    assert result["software_env"] == "ocr-main-4f1c2b3" and result["ref"] == SHA


@pytest.mark.parametrize("event", [push_event("refs/heads/wind-kernel"), push_event(deleted=True)])
def test_push_elsewhere_deploys_nothing(tmp_path, event):
    assert _plan(tmp_path, "push", event)["deploy"] is False


def test_prerelease_deploys_its_own_version_never_wiping(tmp_path):
    result = _plan(tmp_path, "release", release_event("v2.0.0-rc.1", prerelease=True))
    assert result["namespace"] == "production/v2.0.0-rc.1" and result["wipe"] is False


# --- manual dispatch -------------------------------------------------------------------------
def test_dispatch_deploys_the_chosen_regions_written_canonically(tmp_path):
    event = dispatch_event(region_ids="y05_x14, y14_x5,y14_x5", wipe="true", environment="staging")
    result = _plan(tmp_path, "workflow_dispatch", event, sha=SHA)
    assert result["environment"] == "staging" and result["namespace"] == "staging"
    assert result["regions"] == ["y5_x14", "y14_x5"]
    assert result["notes"] == ["y05_x14 is y5_x14", "y14_x5 given twice; running it once"]
    assert result["wipe"] is True
    assert result["software_env"] == "ocr-main-4f1c2b3"


@pytest.mark.parametrize("inputs", [{"region_ids": "all"}, {"all_region_ids": "true"}])
def test_dispatch_of_all_regions(tmp_path, inputs):
    result = _plan(tmp_path, "workflow_dispatch", dispatch_event(**inputs))
    assert result["regions"] == "all" and result["wipe"] is False
    assert result["environment"] == "qa" and result["namespace"] == "qa"


def test_inputs_context_with_booleans_overrides_the_payload(tmp_path):
    payload = json.loads(_file(tmp_path, "dispatch", dispatch_event()).read_text())
    inputs = {"region_ids": "y13_x4", "wipe": True, "environment": "qa", "production_tag": ""}
    result = plan("workflow_dispatch", payload, inputs)
    assert result["regions"] == ["y13_x4"] and result["wipe"] is True


def test_dispatch_with_production_tag_reruns_missing_regions(tmp_path):
    event = dispatch_event(production_tag="v1.2.3", environment="staging")
    result = _plan(tmp_path, "workflow_dispatch", event)
    assert result["environment"] == "production" and result["version"] == "1.2.3"
    assert result["namespace"] == "production/v1.2.3"
    assert result["regions"] == "missing" and result["wipe"] is False
    assert result["ref"] == "v1.2.3" and result["software_env"] == "ocr-v1-2-3"


@pytest.mark.parametrize(
    ("inputs", "named"),
    [
        ({"production_tag": "v1.2.3", "wipe": "true"}, "never wiped"),
        ({"production_tag": "latest"}, "'latest'"),
        ({"region_ids": "y14_x5 y99_x1"}, "'y99_x1'"),
        ({"region_ids": " , "}, "no regions"),
        ({"environment": "production"}, "production_tag"),
        ({"wipe": "yes please"}, "wipe"),
    ],
)
def test_dispatch_that_cannot_work_is_refused(tmp_path, inputs, named):
    with pytest.raises(PlanError, match=named):
        _plan(tmp_path, "workflow_dispatch", dispatch_event(**inputs))


def test_regions_are_checked_on_the_configured_grid(tmp_path):
    with pytest.raises(PlanError, match=r"QA regions.*demo grid"):
        _plan(tmp_path, "pull_request", pull_request_event("opened", ["e2e"]), grid="demo")


def test_unknown_event_is_refused():
    with pytest.raises(PlanError, match="'schedule'"):
        plan("schedule", {"schedule": "0 0 * * *"}, None)
