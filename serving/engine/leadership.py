"""Serving replicas: exactly one process runs the trading engine; the others wait on standby.

With ``ALPHATIDE_ENGINE__LEADER__ENABLED=true`` (`pipelines.config_leader.LeaderConfig`),
`serving.engine.trading_lifespan` enters `leader_lifespan` instead of starting the engine at once:

- it tries the lease (`serving.engine.leader_lease.PostgresLease`) once at startup, then a daemon thread
  tries it every ``poll_interval_s`` (standby) or checks it is still held (active);
- on acquiring it the process is ``starting``: it waits one poll interval (a previous holder that lost
  its lock connection but still runs stops within one of its own polls), builds the engine and runs
  `engine.start()` (recovery from the shared trading store: open orders and positions, the clean start,
  reconciliation), publishes it as ``app.state.trading_engine``, runs the ``on_active`` hooks (the health
  monitor, alerting and the stream's engine sink of `serving.lifespan`), and is ``active``;
- on losing the lease (its connection died) it stops trading at once: ``on_standby`` hooks,
  ``app.state.trading_engine = None``, `engine.shutdown()`; then it is a standby again;
- a standby serves `/signal` and the read-only endpoints from the same stores; `/health` and
  `/trading/status` report ``engine`` = ``standby`` and who holds the lease.

The stream keeps feeding whatever is active through `FollowerSink` (`follow_leader`): events reach the
engine while this process leads and are dropped on standby.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, Literal

from serving.engine.leader_lease import LeaderLease, PostgresLease

log = logging.getLogger("alphatide.engine.leader")

State = Literal["standby", "starting", "active", "stopped"]
Role = Literal["active", "starting", "standby", "off"]
Hook = Callable[[], None]


class Leadership:
    """The lease's state machine (see the module docstring). `step()` is one poll (tests call it directly).

    `promote()` builds and starts the engine and returns it; `demote(engine)` stops it.
    """

    def __init__(
        self,
        lease: LeaderLease,
        promote: Callable[[], Any],
        demote: Callable[[Any], None],
        *,
        poll_interval_s: float = 1.0,
        grace_s: float = 0.0,
    ) -> None:
        self.lease = lease
        self._promote, self._demote = promote, demote
        self.poll_interval_s = poll_interval_s
        self.grace_s = grace_s  # after acquiring: time for a previous holder that is still alive to notice
        self.state: State = "standby"
        self.engine: Any = None
        self.holder: str | None = None
        self.takeovers = 0
        self._retry_at = 0.0  # monotonic time before which a standby does not try the lease (after a failed start)
        self._on_active: list[Hook] = []
        self._on_standby: list[Hook] = []
        self._transition = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- hooks ---------------------------------------------------------------------------------
    def add_hooks(self, on_active: Hook, on_standby: Hook) -> None:
        """Run `on_active` whenever this process becomes active (now, if it already is), `on_standby` on loss."""
        with self._transition:
            self._on_active.append(on_active)
            self._on_standby.append(on_standby)
            if self.state == "active":
                on_active()

    # ---- the loop ------------------------------------------------------------------------------
    def step(self) -> State:
        with self._transition:
            if self.state == "standby" and not self._stop.is_set() and time.monotonic() >= self._retry_at:
                if self.lease.try_acquire():
                    self._become_active()
            elif self.state == "active" and not self.lease.check():
                log.error("leader lease lost: stopping the trading engine (another replica may take over)")
                self._become_standby()
            self.holder = self.lease.holder() if self.state != "stopped" else None
            return self.state

    def _become_active(self) -> None:
        self.state = "starting"
        log.warning("leader lease acquired: starting the trading engine (recovery, clean start, reconcile)")
        if self._stop.wait(self.grace_s):  # a previous holder still running stops within one of its polls
            self.lease.release()
            self.state = "standby"
            return
        started = time.monotonic()
        try:
            self.engine = self._promote()
        except Exception:  # the venue or the store is down: give the lease to a replica that can trade
            log.exception("the trading engine could not start; releasing the leader lease")
            self.engine = None
            self.lease.release()
            self.state = "standby"
            self._retry_at = time.monotonic() + 5 * self.poll_interval_s  # let another replica try first
            return
        self.state = "active"
        self.takeovers += 1
        log.warning("trading engine active (built and recovered in %.2f s)", time.monotonic() - started)
        for hook in self._on_active:
            _run_hook(hook, "on_active")

    def _become_standby(self) -> None:
        engine, self.engine = self.engine, None
        self.state = "standby"
        for hook in self._on_standby:
            _run_hook(hook, "on_standby")
        if engine is not None:
            try:
                self._demote(engine)
            except Exception:
                log.exception("stopping the trading engine after the lease was lost failed")

    def start(self) -> Leadership:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="alphatide-leader", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        if self.state == "standby":
            _warm_up()
        while not self._stop.wait(self.poll_interval_s):
            try:
                self.step()
            except Exception:  # keep polling: a failed poll is a standby that tries again
                log.exception("leader lease poll failed")

    def stop(self) -> None:
        """Stop polling; an active process stops its engine, then releases the lease."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
            self._thread = None
        with self._transition:
            if self.state == "active":
                self._become_standby()
            self.lease.release()
            self.state = "stopped"
            self.holder = None


def _warm_up() -> None:
    """A standby imports what building the engine needs (ccxt alone takes seconds on a loaded machine)."""
    try:
        for module in ("serving.engine.live_broker", "serving.strategies.registry"):  # ccxt, the strategies
            importlib.import_module(module)
    except Exception:  # the takeover imports them again and reports the error there
        log.exception("warming up the engine's imports failed")


def _run_hook(hook: Hook, name: str) -> None:
    try:
        hook()
    except Exception:
        log.exception("leadership %s hook failed", name)


class FollowerSink:
    """The stream's engine input that follows leadership: forwards to the active sink, drops on standby."""

    def __init__(self) -> None:
        self.target: Any = None
        self.dropped_on_standby = 0

    def submit(self, event: Any) -> bool:
        target = self.target
        if target is None:
            self.dropped_on_standby += 1
            return False
        return bool(target.submit(event))


def follow_leader(app: Any, attach: Callable[[], Any], detach: Callable[[], None] | None) -> Any:
    """What the stream feeds: `attach()`'s sink (one process), or a `FollowerSink` when replicas share a lease.

    With a lease, `attach` runs each time this process becomes active and `detach` each time it stops.
    """
    leadership: Leadership | None = getattr(app.state, "leadership", None)
    if leadership is None:
        return attach()
    sink = FollowerSink()

    def on_active() -> None:
        sink.target = attach()

    def on_standby() -> None:
        sink.target = None
        if detach is not None:
            detach()

    leadership.add_hooks(on_active, on_standby)
    return sink


@asynccontextmanager
async def leader_lifespan(
    app: Any, settings: Any, build: Callable[[], Any], lease: LeaderLease | None = None
) -> AsyncIterator[Leadership]:
    """The engine of a replica (`build()` returns an unstarted engine); `app.state.leadership` is published."""
    cfg = settings.engine.leader
    if lease is None:
        dsn = cfg.lock_dsn(settings.engine.dsn)
        assert dsn is not None  # validated by LeaderConfig.check
        lease = PostgresLease(dsn, cfg.name, connect_timeout_s=cfg.connect_timeout_s, dead_peer_s=cfg.dead_peer_s)

    def promote() -> Any:
        built = time.monotonic()
        engine = build()
        log.info("trading engine built in %.2f s; recovering", time.monotonic() - built)
        try:
            engine.start()
        except Exception:
            engine.shutdown()
            raise
        app.state.trading_engine = engine
        return engine

    def demote(engine: Any) -> None:
        app.state.trading_engine = None
        engine.shutdown()

    leadership = Leadership(lease, promote, demote, poll_interval_s=cfg.poll_interval_s, grace_s=cfg.poll_interval_s)
    app.state.trading_engine = None
    app.state.leadership = leadership
    await asyncio.to_thread(leadership.step)  # the first replica up leads from its start
    leadership.start()
    try:
        yield leadership
    finally:
        await asyncio.to_thread(leadership.stop)
        app.state.leadership = None


def engine_role(app_state: Any) -> tuple[Role, str | None]:
    """(role, lease holder) for /health and /trading/status: active, starting, standby or off."""
    leadership: Leadership | None = getattr(app_state, "leadership", None)
    if leadership is not None:
        return ("off" if leadership.state == "stopped" else leadership.state), leadership.holder
    return ("active" if getattr(app_state, "trading_engine", None) is not None else "off"), None
