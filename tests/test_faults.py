"""The fault suite (``tests/fault_suite.py``) as part of the test run: every case passes and
no output is lost, corrupted, stuck or orphaned. ``./dev bench faults`` prints the same table."""

from __future__ import annotations

import uuid

from fault_suite import run_suite, table


def test_fault_suite(tmp_path, s3_server, s3_client, demo_inputs_root):
    bucket = f"ocr-faults-{uuid.uuid4().hex[:8]}"
    s3_client.create_bucket(Bucket=bucket)
    categories = run_suite(tmp_path, s3_server, f"s3://{bucket}", inputs=demo_inputs_root)
    report = table(categories)
    print(report)
    counts = {c.name: len(c.cases) for c in categories}
    assert all(counts[f"kill: {n}"] >= 10 for n in ("regions", "aggregation", "tiles")), counts
    assert counts["bad inputs"] >= 25, counts
    failed = [
        f"{c.category}: {c.name} — {c.note}"
        for cat in categories
        for c in cat.cases
        if not c.passed
    ]
    assert not failed, report
    assert report.splitlines()[-1].endswith("lost=0 corrupted=0 stuck=0 orphans=0"), report
