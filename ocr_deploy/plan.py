"""What a GitHub event deploys: one plan per event, for the deploy workflow's later jobs.

Pure: the event's name and payload in, a JSON-able ``DeployPlan`` out (``ocr-dagster deploy
plan`` prints it and writes it to ``$GITHUB_OUTPUT``). The rules follow the reference's deploy
workflow (docs/operations.md); where it is silent the choice is marked *chosen*.

- pull_request opened, reopened or synchronize with the label ``e2e`` or ``QA/QC`` (or
  ``[e2e]`` in its title or body): qa in the PR's own namespace ``qa/pr-N``, the 15 QA regions,
  wipe, statistics, no pyramid;
- pull_request labeled: the same, only when the label added is one of those (*chosen*: another
  label brings no new code);
- pull_request closed, merged or not, that carried those labels: no deployment, a wipe of
  ``qa/pr-N`` only;
- any other pull request or action (unlabeled, edited, ...): nothing (*chosen*: removing the
  label keeps the outputs until the PR closes);
- push to ``refs/heads/main``: staging, the 47 staging regions, wipe, statistics, pyramid; a
  push elsewhere or a deleted branch: nothing;
- release published with tag ``vX.Y.Z`` (or ``X.Y.Z``, as the reference strips the ``v``):
  production ``X.Y.Z``, regions ``"all"``, never wipe, statistics, pyramid; a pre-release too
  (*chosen*: it has its own versioned namespace and the site points at a version by hand);
- workflow_dispatch: the chosen environment (qa or staging, in its namespace ``qa`` or
  ``staging``), the chosen regions (ids separated by commas or spaces, ``all``, or
  ``all_region_ids``), wipe as chosen, statistics, pyramid;
- workflow_dispatch with ``production_tag``: a production rerun of that version with regions
  ``"missing"`` (only regions not committed yet, then every product), never wipe (``wipe``
  true is refused, *chosen*); the environment and region inputs are ignored.

Labels match without regard to case (*chosen*: GitHub treats ``E2E`` and ``e2e`` as one label).
A tag that is not SemVer, an unknown event, a region that is not valid on the grid or an
environment other than qa/staging in a dispatch raise ``PlanError`` with one line.
``software_env`` names one Coiled software environment per build: ``ocr-<source>-<sha7>`` from
the PR number or branch and the commit (*chosen*: a push never replaces the environment a
running deployment uses), ``ocr-<tag>`` for production (a rerun reuses its release's name).
"""

from __future__ import annotations

import re
from typing import TypedDict

from ocr_core.grid import RegionIdError, get_grid
from ocr_core.storage import SEMVER_RE, Storage

DEPLOY_LABELS = ("e2e", "qa/qc")  # compared lower case
DEPLOY_MARKER = "[e2e]"  # in a PR's title or body
PR_ACTIONS = ("opened", "reopened", "synchronize", "labeled")
DISPATCH_ENVIRONMENTS = ("qa", "staging")
ALL, MISSING = "all", "missing"


def _rows(spec: list[tuple[int, int, int]]) -> tuple[str, ...]:
    return tuple(f"y{row}_x{col}" for row, first, last in spec for col in range(first, last + 1))


# Rows y14-y12 × columns x3-x7 (Washington, Oregon, Idaho): the reference's QA regions.
QA_REGIONS = _rows([(14, 3, 7), (13, 3, 7), (12, 3, 7)])
# The reference's 47 staging regions: the QA ones and 32 more across CONUS.
STAGING_REGIONS = QA_REGIONS + _rows(
    [
        (8, 3, 6),
        (7, 4, 8),
        (6, 5, 9),
        (5, 7, 9),
        (9, 14, 17),
        (8, 14, 17),
        (7, 31, 32),
        (13, 24, 26),
        (12, 24, 25),
    ]
)


class DeployPlan(TypedDict):
    """What one event deploys; also the JSON the workflow's later jobs read (``plan=``)."""

    deploy: bool
    environment: str | None
    version: str | None  # production only
    pull_request: int | None  # a pull request's QA namespace only
    namespace: str | None
    regions: list[str] | str  # region ids, "all" or "missing"
    wipe: bool
    write_regional_stats: bool
    create_pyramid: bool
    software_env: str | None
    ref: str | None  # what to check out
    reason: str  # one line
    notes: list[str]


class PlanError(ValueError):
    """An event that cannot be planned; the message names the value and the expected form."""


def software_env_name(source: str) -> str:
    """``ocr-<slug>`` as the reference names Coiled software environments: lower case, runs of
    characters other than [a-z0-9_-] become '-', '-' trimmed at the ends and never doubled,
    empty -> 'unnamed'."""
    slug = re.sub(r"[^a-z0-9_-]+", "-", source.strip().lower())
    slug = re.sub(r"-{2,}", "-", slug).strip("-")
    return f"ocr-{slug or 'unnamed'}"


def plan(
    event_name: str,
    payload: dict,
    inputs: dict | None,
    *,
    sha: str | None = None,
    grid: str = "conus",
) -> DeployPlan:
    """The deployment an event asks for (see the module doc for the rules).

    ``inputs`` are a dispatch's inputs (default: the payload's ``inputs``); ``sha`` is the
    commit the workflow runs on (``GITHUB_SHA``; default: the payload's); region ids are
    checked and written canonically on ``grid``.
    """
    if event_name == "pull_request":
        return _pull_request(payload, sha, grid)
    if event_name == "push":
        return _push(payload, sha, grid)
    if event_name == "release":
        return _release(payload)
    if event_name == "workflow_dispatch":
        given = payload.get("inputs") if inputs is None else inputs
        return _dispatch(payload, given or {}, sha, grid)
    raise PlanError(
        f"event {event_name!r} is not one the deploy plan knows: use pull_request, push, "
        "release or workflow_dispatch"
    )


def github_output_lines(result: DeployPlan) -> list[str]:
    """The plan as ``key=value`` lines for ``$GITHUB_OUTPUT``: booleans ``true``/``false``,
    None empty, a region list space-separated (notes are left out); and the whole plan as one
    JSON line ``plan=…``, what the deploy jobs pass on to the environment's workflow."""
    import json

    lines = []
    for key, value in result.items():
        if key == "notes":
            continue
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif value is None:
            text = ""
        elif isinstance(value, list):
            text = " ".join(value)
        else:
            text = str(value)
        if "\n" in text or "\r" in text:
            raise PlanError(f"plan value {key}={text!r} spans lines; GitHub outputs need one")
        lines.append(f"{key}={text}")
    whole = {key: value for key, value in result.items() if key != "notes"}
    lines.append(f"plan={json.dumps(whole, separators=(',', ':'))}")
    return lines


# --- events --------------------------------------------------------------------------------
def _nothing(reason: str, ref: str | None = None) -> DeployPlan:
    return _result(deploy=False, environment=None, regions=[], reason=reason, ref=ref)


def _result(
    *,
    deploy: bool,
    environment: str | None,
    regions: list[str] | str,
    reason: str,
    ref: str | None,
    version: str | None = None,
    pull_request: int | None = None,
    wipe: bool = False,
    stats: bool = False,
    pyramid: bool = False,
    software_env: str | None = None,
    notes: list[str] | None = None,
) -> DeployPlan:
    namespace = None
    if environment is not None:
        namespace = Storage("", environment, version, pull_request=pull_request).namespace
    return DeployPlan(
        deploy=deploy,
        environment=environment,
        version=version,
        pull_request=pull_request,
        namespace=namespace,
        regions=regions,
        wipe=wipe,
        write_regional_stats=stats,
        create_pyramid=pyramid,
        software_env=software_env if deploy else None,
        ref=ref,
        reason=reason,
        notes=notes or [],
    )


def _pull_request(payload: dict, sha: str | None, grid: str) -> DeployPlan:
    pr = payload.get("pull_request") or {}
    number = int(payload.get("number") or pr.get("number") or 0)
    if number < 1:
        raise PlanError("pull_request event without a PR number (payload 'number')")
    action = payload.get("action", "")
    ref = sha or (pr.get("head") or {}).get("sha")
    labels = {str(label.get("name", "")).lower() for label in pr.get("labels") or []}
    text = f"{pr.get('title') or ''} {pr.get('body') or ''}"
    wanted = bool(labels & set(DEPLOY_LABELS)) or DEPLOY_MARKER in text.lower()
    if not wanted:
        return _nothing(f"pull request #{number} has no e2e or QA/QC label: nothing to deploy")
    if action == "closed":
        return _result(
            deploy=False,
            environment="qa",
            pull_request=number,
            regions=[],
            wipe=True,
            ref=ref,
            reason=f"pull request #{number} closed: wipe its QA namespace",
        )
    if action == "labeled":
        added = str((payload.get("label") or {}).get("name", "")).lower()
        if added not in DEPLOY_LABELS:
            return _nothing(
                f"pull request #{number}: label {added!r} added, no new code: nothing to deploy"
            )
    elif action not in PR_ACTIONS:
        return _nothing(f"pull request #{number} {action}: nothing to deploy")
    reason = f"pull request #{number} ({action}) is labelled for QA"
    return _build("qa", QA_REGIONS, grid, str(number), ref, reason, pull_request=number)


def _push(payload: dict, sha: str | None, grid: str) -> DeployPlan:
    ref_name = payload.get("ref", "")
    sha = sha or payload.get("after")
    if ref_name != "refs/heads/main" or payload.get("deleted"):
        return _nothing(f"push to {ref_name or 'an unknown ref'}: only main deploys (staging)")
    return _build("staging", STAGING_REGIONS, grid, "main", sha, "push to main deploys staging")


def _build(
    environment: str,
    regions: tuple[str, ...],
    grid: str,
    source: str,
    ref: str | None,
    reason: str,
    pull_request: int | None = None,
) -> DeployPlan:
    """A branch build's deployment of the environment's fixed regions: wiped first, with the
    statistics; the pyramid too, except for a pull request's QA namespace."""
    what = "the QA regions" if environment == "qa" else f"the {environment} regions"
    chosen, notes = _regions(regions, grid, what)
    return _result(
        deploy=True,
        environment=environment,
        pull_request=pull_request,
        regions=chosen,
        wipe=True,
        stats=True,
        pyramid=pull_request is None,
        software_env=_software_env(source, ref),
        ref=ref,
        reason=reason,
        notes=notes,
    )


def _release(payload: dict) -> DeployPlan:
    action = payload.get("action", "")
    tag = str((payload.get("release") or {}).get("tag_name") or "")
    if action != "published":
        return _nothing(f"release {tag} {action}: only a published release deploys")
    return _production(tag, "release tag", ALL, "release published")


def _dispatch(payload: dict, inputs: dict, sha: str | None, grid: str) -> DeployPlan:
    tag = str(inputs.get("production_tag") or "").strip()
    wipe = _switch(inputs, "wipe")
    if tag:
        if wipe:
            raise PlanError(
                f"production_tag {tag!r} with wipe: production is never wiped; rerun without wipe"
            )
        return _production(tag, "production_tag", MISSING, "manual production rerun")
    environment = str(inputs.get("environment") or "qa").strip()
    if environment not in DISPATCH_ENVIRONMENTS:
        raise PlanError(
            f"environment {environment!r}: a manual deployment goes to qa or staging "
            "(production: give production_tag)"
        )
    branch = str(payload.get("ref") or "").removeprefix("refs/heads/")
    given = str(inputs.get("region_ids") or "").replace(",", " ").split()
    if _switch(inputs, "all_region_ids") or [g.lower() for g in given] == [ALL]:
        regions, notes = ALL, []
    elif not given:
        raise PlanError("no regions: give region_ids (comma-separated) or all")
    else:
        regions, notes = _regions(given, grid, "region_ids")
    return _result(
        deploy=True,
        environment=environment,
        regions=regions,
        wipe=wipe,
        stats=True,
        pyramid=True,
        software_env=_software_env(branch, sha),
        ref=sha or payload.get("ref"),
        reason=f"manual deployment to {environment}",
        notes=notes,
    )


def _production(tag: str, what: str, regions: str, reason: str) -> DeployPlan:
    version = tag.removeprefix("refs/tags/").removeprefix("v")
    if not SEMVER_RE.match(version):
        raise PlanError(
            f"{what} {tag!r} is not a semantic version: expected vX.Y.Z, e.g. v1.2.3 "
            "(SemVer 2.0, optional -prerelease and +build)"
        )
    return _result(
        deploy=True,
        environment="production",
        version=version,
        regions=regions,
        stats=True,
        pyramid=True,
        software_env=software_env_name(tag.removeprefix("refs/tags/")),
        ref=tag,
        reason=f"{reason}: production {version}",
    )


# --- values --------------------------------------------------------------------------------
def _regions(ids, grid: str, what: str) -> tuple[list[str], list[str]]:
    try:
        return get_grid(grid).select_region_ids(ids)
    except RegionIdError as exc:
        raise PlanError(f"{what}: {exc}") from None


def _switch(inputs: dict, name: str) -> bool:
    """A dispatch's boolean input: the payload has "true"/"false", the inputs context bools."""
    value = inputs.get(name, False)
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "false", ""):
        return text == "true"
    raise PlanError(f"input {name}={value!r} is not a boolean: use true or false")


def _software_env(source: str, sha: str | None) -> str:
    return software_env_name(f"{source}-{sha[:7]}" if sha else source)
