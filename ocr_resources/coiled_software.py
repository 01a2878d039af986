"""Which build of a Coiled software environment a cluster runs (the compute resource asks it
before starting a cluster; ``ocr_deploy.software_env`` creates the environments).

One name can be rebuilt (a re-run deploy, a release tag moved), so a cluster's identity takes
the *build*: ``software_build`` resolves the finished build a new cluster of that name gets.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping


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
