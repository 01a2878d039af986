"""When the commands reuse a running daemon (``ocr_assets.launch.daemon_running``), judged from
the heartbeats of a real instance: a busy daemon thread beating late must not make them start a
second daemon beside a healthy one, and a daemon that stopped beating is not running."""

from __future__ import annotations

import time

import dagster as dg
import pytest
from dagster._daemon.types import DaemonHeartbeat

from ocr_assets.launch import HEARTBEAT_FRESH_S, daemon_running


@pytest.fixture
def instance(tmp_path):
    with dg.instance_for_test(temp_dir=str(tmp_path)) as inst:
        yield inst


def _beat(instance, ages: dict[str, float]) -> None:
    now = time.time()
    for daemon_type, age in ages.items():
        instance.add_daemon_heartbeat(DaemonHeartbeat(now - age, daemon_type, "d1", None))


def test_one_late_thread_of_a_beating_daemon_is_still_a_running_daemon(instance):
    required = list(instance.get_required_daemon_types())
    assert len(required) > 1
    _beat(instance, {t: 1.0 for t in required} | {required[0]: HEARTBEAT_FRESH_S + 60})
    assert daemon_running(instance)


def test_a_daemon_that_stopped_beating_or_lacks_a_type_is_not_running(instance):
    required = list(instance.get_required_daemon_types())
    assert not daemon_running(instance)
    _beat(instance, {t: 1.0 for t in required[1:]})
    assert not daemon_running(instance)  # one required daemon never beat
    _beat(instance, {t: HEARTBEAT_FRESH_S + 1 for t in required})
    assert not daemon_running(instance)
