"""The Coiled software environment of a deployment: its name, how it is created, and its build.

Names follow the reference: ``ocr-<slug>`` (``ocr_deploy.plan.software_env_name``); the
deploy plan chooses the source, one per build (``ocr-<pr or branch>-<sha7>``, ``ocr-<tag>``).
The build a cluster runs is resolved by ``ocr_resources.coiled_software``.

    python -m ocr_deploy.software_env name <ref>      # print the name
    python -m ocr_deploy.software_env create <ref>    # create it on Coiled (ARM), print
                                                      # "<name> build <build id>"
"""

from __future__ import annotations

import sys
from pathlib import Path

from ocr_deploy.plan import software_env_name
from ocr_resources.coiled_software import latest_build

# The frozen dependencies a software environment installs.
REQUIREMENTS_LOCK = Path(__file__).resolve().parent.parent / "requirements.lock"


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
