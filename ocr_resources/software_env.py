"""The Coiled software environment of a deployment: its name and how it is created.

Names follow the reference: ``ocr-<slug>`` (``ocr_core.deploy_plan.software_env_name``); the
deploy plan chooses the source, one per build (``ocr-<pr or branch>-<sha7>``, ``ocr-<tag>``).

    python -m ocr_resources.software_env name <ref>      # print the name
    python -m ocr_resources.software_env create <ref>    # create it on Coiled (ARM), print the name
"""

from __future__ import annotations

import sys
from pathlib import Path

from ocr_core.deploy_plan import software_env_name

PROJECT_DIR = Path(__file__).resolve().parent.parent


def create_software_env(source: str) -> str:
    """Create (or update) the environment from the frozen lock file, with this package."""
    import coiled

    name = software_env_name(source)
    pip = [
        line.strip()
        for line in (PROJECT_DIR / "requirements.lock").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    coiled.create_software_environment(
        name=name, pip=pip, arm=True, include_local_code=True, region_name="us-west-2"
    )
    return name


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] not in ("name", "create"):
        raise SystemExit("usage: python -m ocr_resources.software_env (name|create) <ref>")
    print(software_env_name(args[1]) if args[0] == "name" else create_software_env(args[1]))


if __name__ == "__main__":
    main()
