"""The leader lease on the real local PostgreSQL: one holder at a time, released by kill -9 and by a lost
connection, and the leadership state machine on top of it (serving.engine.leader_lease, .leadership)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from pipelines.config import EngineConfig, load_settings
from pipelines.config_leader import LeaderConfig
from pipelines.errors import ConfigError
from serving.engine.leader_lease import APP_PREFIX, PostgresLease, lock_key
from serving.engine.leadership import FollowerSink, Leadership, follow_leader
from tests.conftest import PROJECT_ROOT
from tests.serving.engine.pg_database import terminate_backends, throwaway_database

pytestmark = pytest.mark.integration
NAME = "alphatide-engine-test"


@pytest.fixture
def dsn() -> Iterator[str]:
    with throwaway_database("alphatide_replicas_lease") as value:
        yield value


def _lease(dsn: str, name: str = NAME) -> PostgresLease:
    return PostgresLease(dsn, name, connect_timeout_s=3, dead_peer_s=4)


def _wait_acquired(lease: PostgresLease, timeout_s: float) -> float:
    start = time.monotonic()
    while not lease.try_acquire():
        assert time.monotonic() - start < timeout_s, f"not acquired within {timeout_s} s"
        time.sleep(0.05)
    return time.monotonic() - start


def test_one_holder_at_a_time_and_the_standby_names_it(dsn: str) -> None:
    first, second = _lease(dsn), _lease(dsn)
    try:
        assert first.try_acquire() and first.try_acquire()  # idempotent
        assert not second.try_acquire()
        assert second.holder() == first.me and first.me.startswith(APP_PREFIX)
        assert first.check() and not second.check()

        first.release()

        assert second.try_acquire() and second.check()
        assert not first.try_acquire()
    finally:
        first.release()
        second.release()


def test_other_names_and_other_databases_do_not_conflict(dsn: str) -> None:
    with throwaway_database("alphatide_replicas_lease") as other_db:
        leases = [_lease(dsn), _lease(dsn, "another-engine"), _lease(other_db)]
        try:
            assert [lease.try_acquire() for lease in leases] == [True, True, True]
        finally:
            for lease in leases:
                lease.release()
    assert lock_key(NAME) == lock_key(NAME) != lock_key("another-engine")


def test_kill_9_of_the_holder_frees_the_lock_within_10_s(dsn: str) -> None:
    code = (
        "import sys, time\n"
        "from serving.engine.leader_lease import PostgresLease\n"
        f"lease = PostgresLease(sys.argv[1], {NAME!r})\n"
        "print('HELD' if lease.try_acquire() else 'NOT', flush=True)\n"
        "time.sleep(600)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALPHATIDE_")}
    holder = subprocess.Popen(
        [sys.executable, "-c", code, dsn], cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, text=True
    )
    standby = _lease(dsn)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "HELD"
        assert not standby.try_acquire()
        assert (standby.holder() or "").endswith(f":{holder.pid}")

        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(10)
        waited = _wait_acquired(standby, timeout_s=10.0)

        assert standby.check()
        print(f"lock acquired {waited:.3f} s after the holder's kill -9")
    finally:
        if holder.poll() is None:
            holder.kill()
        standby.release()


def test_a_holder_whose_connection_is_terminated_sees_the_loss(dsn: str) -> None:
    first, second = _lease(dsn), _lease(dsn)
    try:
        assert first.try_acquire()
        assert terminate_backends(dsn, APP_PREFIX) == 1  # the holder's session only (second never connected)

        assert not first.check()
        assert second.try_acquire()
        assert not first.try_acquire()  # reconnects, and is now a standby
    finally:
        first.release()
        second.release()


class _Engine:
    """What promote builds: records its own start and stop (the real engine runs in test_replicas)."""

    def __init__(self, log: list[str], name: str) -> None:
        self.log, self.name = log, name
        self.events: list[object] = []
        log.append(f"start {name}")

    def submit(self, event: object) -> bool:
        self.events.append(event)
        return True

    def stop(self) -> None:
        self.log.append(f"stop {self.name}")


def _leadership(dsn: str, log: list[str], name: str) -> Leadership:
    return Leadership(_lease(dsn), lambda: _Engine(log, name), lambda engine: engine.stop(), poll_interval_s=0.05)


def test_leadership_promotes_one_process_and_hands_over_on_loss(dsn: str) -> None:
    log: list[str] = []
    a, b = _leadership(dsn, log, "a"), _leadership(dsn, log, "b")
    sink_a, sink_b = FollowerSink(), FollowerSink()
    a.add_hooks(lambda: setattr(sink_a, "target", a.engine), lambda: setattr(sink_a, "target", None))
    b.add_hooks(lambda: setattr(sink_b, "target", b.engine), lambda: setattr(sink_b, "target", None))
    try:
        assert (a.step(), b.step()) == ("active", "standby")
        assert b.holder == a.lease.me  # type: ignore[attr-defined]
        assert sink_a.submit("event") and not sink_b.submit("event")
        assert log == ["start a"]

        terminate_backends(dsn, APP_PREFIX)  # a's lock connection dies (b's standby session too)

        assert a.step() == "standby" and b.step() == "active"
        assert log == ["start a", "stop a", "start b"]
        assert sink_b.submit("event") and not sink_a.submit("event")
        assert a.step() == "standby" and a.holder == b.lease.me  # type: ignore[attr-defined]
    finally:
        a.stop()
        b.stop()
    assert log == ["start a", "stop a", "start b", "stop b"]
    assert a.state == b.state == "stopped"


def test_a_failed_start_gives_the_lease_back(dsn: str) -> None:
    def fail() -> object:
        raise RuntimeError("venue down")

    broken = Leadership(_lease(dsn), fail, lambda engine: None, poll_interval_s=60)
    other = _leadership(dsn, [], "other")
    try:
        assert broken.step() == "standby"
        assert other.step() == "active"
        other.stop()
        assert broken.step() == "standby" and broken.holder is None  # it waits before trying again
    finally:
        broken.stop()
        other.stop()


def test_the_lease_needs_postgresql() -> None:
    with pytest.raises(ConfigError, match="ALPHATIDE_ENGINE__LEADER__ENABLED=true needs PostgreSQL"):
        load_settings({"ALPHATIDE_ENGINE__LEADER__ENABLED": "true"})
    with pytest.raises(ConfigError, match="must be a postgresql"):
        load_settings({"ALPHATIDE_ENGINE__LEADER__DSN": "sqlite:///x.db"})
    pg = "postgresql://u:secret@127.0.0.1:5432/trading"
    settings = load_settings({"ALPHATIDE_ENGINE__LEADER__ENABLED": "true", "ALPHATIDE_ENGINE__DSN": pg})
    assert settings.engine.leader.lock_dsn(settings.engine.dsn) == pg
    assert "u:secret@" not in settings.model_dump_json()  # a SecretStr, masked
    assert EngineConfig().leader == LeaderConfig(enabled=False)  # embedded default: one process, always leader


def test_the_streams_sink_follows_the_lease(dsn: str) -> None:
    log: list[str] = []
    leadership = _leadership(dsn, log, "a")
    app = SimpleNamespace(state=SimpleNamespace(leadership=leadership))
    blocker = _lease(dsn)  # another replica holds the lease first
    try:
        assert blocker.try_acquire()
        sink = follow_leader(app, attach=lambda: leadership.engine, detach=lambda: log.append("detach"))
        assert leadership.step() == "standby" and not sink.submit("dropped")

        blocker.release()

        assert leadership.step() == "active" and sink.submit("kept")
        assert leadership.engine.events == ["kept"]
    finally:
        leadership.stop()
        blocker.release()
    assert log == ["start a", "detach", "stop a"] and not sink.submit("after stop")
    assert follow_leader(SimpleNamespace(state=SimpleNamespace()), attach=lambda: "engine", detach=None) == "engine"


def test_a_new_holder_waits_its_grace_before_it_starts_the_engine(dsn: str) -> None:
    log: list[str] = []
    patient = Leadership(_lease(dsn), lambda: _Engine(log, "p"), lambda engine: engine.stop(), grace_s=0.3)
    try:
        start = time.monotonic()
        assert patient.step() == "active"
        assert time.monotonic() - start >= 0.3 and log == ["start p"]
    finally:
        patient.stop()
