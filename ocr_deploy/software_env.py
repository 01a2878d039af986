"""The Coiled software environment of a deployment: its name, how it is created, and its build.

Names follow the reference: ``ocr-<slug>`` (``ocr_deploy.plan.software_env_name``); the
deploy plan chooses the source, one per build (``ocr-<pr or branch>-<sha7>``, ``ocr-<tag>``).
One name can still be rebuilt (a re-run deploy, a release tag moved), so a cluster's identity
takes the *build*: ``software_build`` resolves the build a new cluster of that name would get.

    python -m ocr_deploy.software_env name <ref>      # print the name
    python -m ocr_deploy.software_env create <ref>    # create it on Coiled (ARM), print
                                                      # "<name> build <build id>"
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Mapping
from pathlib import Path

from ocr_deploy.plan import software_env_name

# The frozen dependencies a software environment installs (not from ocr_resources.settings:
# ocr_resources imports this module through its compute resource).
REQUIREMENTS_LOCK = Path(__file__).resolve().parent.parent / "requirements.lock"


class SoftwareBuildError(RuntimeError):
    """A software environment has no finished build to run; the message says how to fix it."""


def latest_build(alias: Mapping | None, name: str, *, built: bool = True) -> str:
    """The id of the latest build of ``alias``, a software environment as Coiled's v2 API
    returns it (``list_software_environments`` values, ``create_software_environment``'s
    result: ``latest_spec.latest_build.{id, state}``). ``built``: the build must be finished,
    since a cluster must not start on anything else."""
    fix = f"create it: python -m ocr_deploy.software_env create {name.removeprefix('ocr-')}"
    if not alias:
        raise SoftwareBuildError(f"Coiled has no software environment {name!r}: {fix}")
    build = (alias.get("latest_spec") or {}).get("latest_build") or {}
    if build.get("id") is None:
        raise SoftwareBuildError(f"software environment {name!r} has no build on Coiled: {fix}")
    if built and build.get("state") != "built":
        raise SoftwareBuildError(
            f"the latest build {build['id']} of software environment {name!r} is "
            f"{build.get('state')!r}, not built: wait for it, or {fix} again"
        )
    return str(build["id"])


@functools.cache
def software_build(name: str) -> str:
    """The finished latest build of software environment ``name`` (``[workspace/]name``), asked
    of Coiled once per process: every cluster this process starts or attaches to names it."""
    import coiled

    workspace, _, short = name.rpartition("/")
    aliases = coiled.list_software_environments(workspace=workspace or None)
    return latest_build(aliases.get(short), name)


def create_software_env(source: str) -> tuple[str, str]:
    """Create (or update) the environment from the frozen lock file, with this package; its
    name and the build id Coiled made (or kept, the spec unchanged) for it."""
    import coiled

    name = software_env_name(source)
    pip = [
        line.strip()
        for line in REQUIREMENTS_LOCK.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    # Waits for the build and raises coiled's BuildError if it fails, so the alias's state
    # (as of the request) need not be "built" here.
    alias = coiled.create_software_environment(
        name=name, pip=pip, arm=True, include_local_code=True, region_name="us-west-2"
    )
    return name, latest_build(alias, name, built=False)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] not in ("name", "create"):
        raise SystemExit("usage: python -m ocr_deploy.software_env (name|create) <ref>")
    if args[0] == "name":
        print(software_env_name(args[1]))
    else:
        name, build = create_software_env(args[1])
        print(f"{name} build {build}")


if __name__ == "__main__":
    main()
