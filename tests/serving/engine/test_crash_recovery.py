"""Restart after `kill -9`: no orphan order at the venue and no position mismatch (SPEC 11).

The engine runs in a subprocess (live broker, real ccxt) against the fake venue in this process, is
SIGKILLed while orders rest and fills are landing, and a second process recovers from the same store.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest

from serving.engine.store import TradingStore
from tests.conftest import PROJECT_ROOT
from tests.fakes.trading_venue import FakeTradingVenue
from tests.serving.engine.conftest import venue_markets

pytestmark = pytest.mark.integration
DRIVER = "tests.serving.engine.crash_driver"


def _spawn(mode: str, home: Path, venue: FakeTradingVenue, strategies: str = "one") -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALPHATIDE_")}
    return subprocess.Popen(
        [sys.executable, "-m", DRIVER, mode, str(home), venue.base_url, strategies],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(proc: subprocess.Popen[str], word: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if word in line:
            return
        if proc.poll() is not None:
            raise AssertionError(f"driver exited {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}")
    raise AssertionError(f"driver did not print {word} within {timeout_s}s")


def test_kill_9_mid_run_then_restart_leaves_no_orphan_and_no_mismatch(tmp_path: Path) -> None:
    with FakeTradingVenue(venue_markets(), {"USDT": Decimal(10_000)}) as venue:
        for symbol in ("BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT"):
            venue.set_book(symbol, "100.00", "100.01")
        home = tmp_path / "home"

        # Run, let fills land (some seen by the engine, one not), then kill -9.
        proc = _spawn("run", home, venue)
        try:
            _wait_for(proc, "PLACED")
            venue.trade("BTC/USDT", "99.99", "0.03")
            venue.trade("ETH/USDT", "99.99", "1")
            time.sleep(0.5)  # the engine polls and records these
            venue.trade("SOL/USDT", "99.99", "0.05")  # lands just before the crash
            assert len(venue.open_orders()) >= 3
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
        assert proc.returncode == -signal.SIGKILL
        at_crash = {o.client_order_id for o in venue.orders.values()}

        # Restart from the same store.
        again = _spawn("recover", home, venue)
        _wait_for(again, "RECOVERED")
        assert again.wait(60) == 0, again.stderr.read() if again.stderr else ""

        # No orphan: nothing left open, and every order the venue ever saw is known locally.
        assert venue.open_orders() == []
        store = TradingStore.sqlite_file(home / "trading" / "engine.db")
        assert store.known_client_ids(sorted(at_crash)) == at_crash
        assert all(s.order.is_terminal for s in store.load_orders())
        # No position mismatch: the store agrees with the venue's balances, recovered from fills.
        positions = store.load_positions()
        for symbol in ("BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT"):
            base = symbol.split("/")[0]
            held = positions[symbol].size if symbol in positions else Decimal(0)
            assert held == venue.balance(base), symbol
        assert positions["SOL/USDT"].size == Decimal("0.05")  # the fill the dead process never saw
        assert not [a for a in store.alerts() if a.kind == "reconcile_mismatch"]


def test_kill_9_keeps_two_strategies_attribution(tmp_path: Path) -> None:
    with FakeTradingVenue(venue_markets(), {"USDT": Decimal(10_000)}) as venue:
        for symbol in ("BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT"):
            venue.set_book(symbol, "100.00", "100.01")
        home = tmp_path / "home"
        proc = _spawn("run", home, venue, "two")
        try:
            _wait_for(proc, "PLACED")
            venue.trade("BTC/USDT", "99.99", "1")  # fills both strategies' BTC entries
            venue.trade("ETH/USDT", "99.99", "1")
            time.sleep(0.5)
            venue.trade("SOL/USDT", "99.99", "0.05")  # lands just before the crash
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
        again = _spawn("recover", home, venue, "two")
        _wait_for(again, "RECOVERED")
        assert again.wait(60) == 0, again.stderr.read() if again.stderr else ""

        store = TradingStore.sqlite_file(home / "trading" / "engine.db")
        positions = store.load_all_positions()
        assert positions[("dir-a", "", "BTC/USDT")].size == Decimal("0.08")
        assert positions[("dir-b", "", "BTC/USDT")].size == Decimal("0.08")
        assert positions[("dir-a", "", "ETH/USDT")].size == Decimal("0.08")
        assert positions[("dir-a", "", "SOL/USDT")].size == Decimal("0.05")
        assert not any(key[0] == "dir-b" and key[2] != "BTC/USDT" for key in positions)
        assert venue.balance("BTC") == Decimal("0.16")
        by_strategy = {(s.strategy_id, s.order.symbol) for s in store.load_orders()}
        assert ("dir-b", "BTC/USDT") in by_strategy and ("dir-b", "ETH/USDT") not in by_strategy
        assert venue.open_orders() == []
        assert not [a for a in store.alerts() if a.kind == "reconcile_mismatch"]
