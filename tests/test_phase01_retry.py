"""Region failures are retried with a linear backoff of 5 s × attempt (the default delay),
then fail clearly."""

from pathlib import Path

import dagster as dg

from ocr_assets.phase01_regions import process_region
from ocr_resources import ComputeResource, InputCatalogResource, StorageResource


class FlakyCompute(ComputeResource):
    """Fails the first ``failures`` submissions (a lost worker), then runs normally."""

    counter_file: str
    failures: int = 1

    def run(self, asset, fn, *args, log=None, **kwargs):
        counter = Path(self.counter_file)
        seen = int(counter.read_text()) if counter.exists() else 0
        counter.write_text(str(seen + 1))
        if seen < self.failures:
            raise ConnectionError(f"worker lost while running {asset.to_user_string()} (simulated)")
        return super().run(asset, fn, *args, log=log, **kwargs)


def _materialize(inputs_root, out_root, compute):
    return dg.materialize(
        [process_region],
        partition_key="y3_x2",
        resources={
            "storage": StorageResource(root=str(out_root)),
            "catalog": InputCatalogResource(root=str(inputs_root)),
            "compute": compute,
        },
        raise_on_error=False,
    )


def _retry_waits(result) -> list[float]:
    return [
        e.event_specific_data.seconds_to_wait
        for e in result.all_events
        if e.event_type_value == "STEP_UP_FOR_RETRY"
    ]


def test_policy_is_linear_five_seconds():
    policy = process_region.op.retry_policy
    assert policy.max_retries == 2
    assert policy.delay == 5
    assert policy.backoff == dg.Backoff.LINEAR
    assert [policy.calculate_delay(n) for n in (1, 2)] == [5, 10]


def test_transient_failure_is_retried_then_succeeds(demo_inputs_root, tmp_path):
    compute = FlakyCompute(counter_file=str(tmp_path / "count"), failures=1)
    result = _materialize(demo_inputs_root, tmp_path / "out", compute)
    assert result.success
    assert _retry_waits(result) == [5]
    assert (tmp_path / "count").read_text() == "3"  # risk failed, risk, buildings


def test_persistent_failure_gives_a_clear_error_after_the_last_attempt(demo_inputs_root, tmp_path):
    compute = FlakyCompute(counter_file=str(tmp_path / "count"), failures=99)
    result = _materialize(demo_inputs_root, tmp_path / "out", compute)
    assert not result.success
    assert _retry_waits(result) == [5, 10]
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    error = failure.step_failure_data.error
    assert error is not None
    message = error.message
    assert "region_risk for region y3_x2 failed after 3 attempt(s)" in message
    assert "ConnectionError: worker lost" in message
    assert (tmp_path / "count").read_text() == "3"
    assert not (tmp_path / "out" / "output").exists()
