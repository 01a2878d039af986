"""The fault suite with its figures: ``./dev bench faults [--kills N] [--seed S]``.

Runs every category of ``tests/fault_suite.py`` (a fresh demo in a temporary folder, the S3
server on loopback) and prints cases tried, passed, outputs lost and corrupted, stuck runs and
orphan files per category; the last line reads
``faults: cases=N passed=N lost=N corrupted=N stuck=N orphans=N``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def main() -> int:
    import boto3
    from fault_suite import run_suite, table
    from s3_server import s3_server_running

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--kills", type=int, default=10, help="kill trials per kill category")
    parser.add_argument("--seed", type=int, default=10, help="seed of the random kill points")
    args = parser.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ocr-faults-") as tmp, s3_server_running() as url:
        bucket = f"ocr-faults-{uuid.uuid4().hex[:8]}"
        boto3.client("s3", endpoint_url=url, region_name="us-east-1").create_bucket(Bucket=bucket)
        categories = run_suite(Path(tmp), url, f"s3://{bucket}", args.kills, args.seed)
    print(f"\nfault suite, seed {args.seed}, {time.monotonic() - started:.0f} s\n")
    print(table(categories))
    return 0 if all(c.passed for cat in categories for c in cat.cases) else 1


if __name__ == "__main__":
    sys.exit(main())
