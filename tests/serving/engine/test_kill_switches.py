"""Every kill switch of SPEC 10 at the runtime level: the engine measures the inputs and obeys the verdict.

The pure guard is tested in tests/pipelines/trading/test_killswitch.py; here each scenario drives the
engine (paper broker) into the condition and asserts what the runtime does: no entry, flatten, cancel,
reduce, alert, or call the serving tier's action listeners.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal

import sqlalchemy as sa

from pipelines.trading.config import DeploymentConfig, KillSwitchConfig, PaperConfig, TradingConfig
from pipelines.trading.killswitch import Action, Switch
from pipelines.trading.orders import OrderState
from serving.engine.broker import PaperBroker
from serving.engine.events import HealthEvent
from tests.serving.engine.conftest import SYMBOLS, Harness, graduated


def set_paper_balances(h: Harness, **amounts: str) -> None:
    """What the (paper) venue holds now; the next reconciliation adopts it (the venue wins)."""
    broker = h.engine.broker
    assert isinstance(broker, PaperBroker)
    state = broker.export_state()
    state.update(amounts)
    broker.restore_state(state)
    h.engine.reconcile(h.clock.now)


def entry_blocked(h: Harness, symbol: str, switch: Switch, **features: object) -> None:
    before = len(h.orders(symbol))
    h.book(symbol, "100.00", "100.01")
    h.signal(symbol, **features)  # type: ignore[arg-type]
    assert len(h.orders(symbol)) == before, f"an order was placed: {h.engine.decisions[-1]}"
    last = h.engine.decisions[-1]
    assert last.action == "blocked", last
    assert h.engine.last_verdict is not None and switch in h.engine.last_verdict.active


def entry_allowed(h: Harness, symbol: str, **features: object) -> Decimal:
    before = len(h.orders(symbol))
    h.book(symbol, "100.00", "100.01")
    h.signal(symbol, **features)  # type: ignore[arg-type]
    orders = h.orders(symbol)
    assert len(orders) == before + 1, h.engine.decisions[-1]
    return orders[-1].order.size


def alerted(h: Harness, switch: Switch) -> bool:
    return any(a.kind == f"kill_switch:{switch.value}" for a in h.store.alerts())


def losing_round_trip(h: Harness, symbol: str) -> None:
    h.open_long(symbol)
    h.clock.advance(1)
    h.book(symbol, "98.90", "98.91")  # -1.1%: hard stop (majors 0.8%)
    h.advance(0.1)
    h.trade(symbol, "98.92", "100")
    assert symbol not in h.engine.positions


def test_daily_loss_stops_entries(paper: Callable[..., Harness]) -> None:
    h = paper(graduated())
    set_paper_balances(h, USDT="9400")  # -6% on the day
    entry_blocked(h, "BTC/USDT", Switch.DAILY_LOSS)
    assert alerted(h, Switch.DAILY_LOSS)


def test_phase_daily_loss_budget_stops_entries(paper: Callable[..., Harness]) -> None:
    h = paper()  # phase 1: $10 daily loss budget
    set_paper_balances(h, USDT="9989.50")
    entry_blocked(h, "BTC/USDT", Switch.PHASE_DAILY_LOSS)


def test_max_drawdown_flattens_and_halts_until_resumed(paper: Callable[..., Harness]) -> None:
    h = paper(graduated())
    h.open_long("BTC/USDT")
    h.book("ETH/USDT", "100.00", "100.01")
    set_paper_balances(h, USDT="7000")  # equity ~7400 vs peak ~10000: -26%
    h.clock.advance(5)
    h.book("BTC/USDT", "100.00", "100.01")
    h.engine.tick()  # the sweep evaluates the switches and acts
    exits = [s for s in h.orders("BTC/USDT") if s.purpose == "exit"]
    assert exits and exits[-1].order.is_live, "flatten must start an exit"
    assert h.engine.guard.state.halted
    entry_blocked(h, "ETH/USDT", Switch.MAX_DRAWDOWN)
    status = h.engine.resume()
    assert status.halted is False and status.peak_equity == h.engine.equity()
    verdict = h.engine.evaluate_risk(h.clock.now, act=True)
    assert Switch.MAX_DRAWDOWN not in verdict.active and Switch.DAILY_LOSS in verdict.active


def test_consecutive_losses_pause_entries_for_an_hour(paper: Callable[..., Harness]) -> None:
    h = paper(graduated())
    for _ in range(3):
        losing_round_trip(h, "BTC/USDT")
    assert h.engine.guard.state.consecutive_losses == 3
    entry_blocked(h, "ETH/USDT", Switch.CONSECUTIVE_LOSSES)
    h.clock.advance(3601)
    entry_allowed(h, "ETH/USDT")


def test_long_losing_streak_halves_sizes(paper: Callable[..., Harness]) -> None:
    h = paper(graduated(consecutive_losses_pause=1, consecutive_losses_pause_seconds=1, consecutive_losses_reduce=2))
    baseline = entry_allowed(h, "ETH/USDT")
    for _ in range(2):
        losing_round_trip(h, "BTC/USDT")
        h.clock.advance(2)
    halved = entry_allowed(h, "SOL/USDT")
    verdict = h.engine.last_verdict
    assert verdict is not None and Switch.CONSECUTIVE_LOSSES_REDUCE in verdict.active
    assert verdict.size_multiplier == 0.5
    # half the size, on an equity a little lower after two losses
    assert baseline / 2 * Decimal("0.99") < halved < baseline / 2


def test_three_losing_days_pause_entries(paper: Callable[..., Harness]) -> None:
    h = paper(graduated())
    cash = Decimal(10_000)
    for _ in range(3):
        cash -= 10
        set_paper_balances(h, USDT=str(cash))
        midnight = (h.clock.now + timedelta(days=1)).replace(hour=0, minute=0, second=1)
        h.clock.now = midnight
        h.engine.tick()
    assert h.engine.guard.state.losing_days == 3
    entry_blocked(h, "BTC/USDT", Switch.LOSING_DAYS)
    assert len([a for a in h.store.alerts() if a.kind == "daily_pnl"]) == 3  # the daily PnL summary


def test_random_walk_hurst_blocks_only_that_symbol(paper: Callable[..., Harness]) -> None:
    h = paper(graduated())
    entry_blocked(h, "BTC/USDT", Switch.HURST_RANDOM_WALK, hurst=0.5)
    entry_allowed(h, "ETH/USDT", hurst=0.7)


def test_calibration_error_halves_sizes_and_asks_for_a_retrain(paper: Callable[..., Harness]) -> None:
    h = paper(graduated())
    baseline = entry_allowed(h, "BTC/USDT")
    h.engine.handle(HealthEvent(calibration_error=0.2))
    assert entry_allowed(h, "ETH/USDT") == baseline / 2
    assert any(action is Action.RETRAIN for action, _ in h.actions)


def test_feature_drift_halves_sizes_and_asks_for_a_retrain(paper: Callable[..., Harness]) -> None:
    h = paper(graduated())
    baseline = entry_allowed(h, "BTC/USDT")
    h.engine.handle(HealthEvent(drift_p_value=0.001))
    assert entry_allowed(h, "ETH/USDT") == baseline / 2
    assert any(action is Action.RETRAIN for action, _ in h.actions)


def test_symbol_concentration_stops_adding_to_that_symbol(paper: Callable[..., Harness]) -> None:
    h = paper(graduated())
    h.open_long("BTC/USDT")
    verdict = h.engine.evaluate_risk(h.clock.now, act=True)
    assert "BTC/USDT" in verdict.blocked_symbols and Switch.SYMBOL_CONCENTRATION in verdict.active
    entry_allowed(h, "ETH/USDT")


def test_leverage_above_limit_reduces_the_largest_position(paper: Callable[..., Harness]) -> None:
    h = paper(graduated())
    h.book("BTC/USDT", "100.00", "100.01")
    set_paper_balances(h, USDT="-500", BTC="10")  # 1000 exposure on 500 equity: leverage 2
    assert h.engine.positions["BTC/USDT"].size == Decimal(10)
    h.clock.advance(5)
    h.book("BTC/USDT", "100.00", "100.01")
    h.engine.tick()
    assert [s.purpose for s in h.orders("BTC/USDT")] == ["exit"]
    entry_blocked(h, "ETH/USDT", Switch.LEVERAGE)


def test_abnormal_spread_and_thin_volume_block_entry(paper: Callable[..., Harness]) -> None:
    h = paper(graduated())
    entry_blocked(h, "BTC/USDT", Switch.ABNORMAL_SPREAD, spread=0.004, spread_norm=0.001)
    entry_blocked(h, "ETH/USDT", Switch.THIN_VOLUME, volume=10.0, volume_norm=100.0)
    entry_allowed(h, "SOL/USDT", spread=0.001, spread_norm=0.001, volume=100.0, volume_norm=100.0)


def test_more_than_five_zombie_orders_cancel_everything(paper: Callable[..., Harness]) -> None:
    # A paper venue that takes 10 s to acknowledge: every order is a zombie after the 5 s ack timeout.
    h = paper(TradingConfig(paper=PaperConfig(latency_ms=10_000), kill=graduated().kill))
    for symbol in SYMBOLS[:6]:
        entry_allowed(h, symbol)
    h.advance(6)
    assert alerted(h, Switch.ZOMBIE_ORDERS)
    assert h.engine.works == {}
    assert all(s.order.state is OrderState.CANCEL_REQUESTED for s in h.orders())
    h.advance(11)
    assert all(s.order.state is OrderState.CANCELLED for s in h.orders())


def test_slow_inference_and_memory_ask_the_serving_tier_to_degrade_and_shed(paper: Callable[..., Harness]) -> None:
    h = paper(graduated())
    h.engine.handle(HealthEvent(inference_p99_ms=25.0, memory_bytes=2**30))
    h.advance(5)
    asked = {action for action, _ in h.actions}
    assert {Action.DEGRADE_TO_TABULAR, Action.SHED_CACHES} <= asked
    entry_allowed(h, "BTC/USDT")  # neither blocks entries


def test_store_errors_pause_entries_and_no_order_is_sent_unrecorded(paper: Callable[..., Harness]) -> None:
    h = paper(graduated())
    with h.store._engine.begin() as conn:  # the orders table disappears under the running engine
        conn.execute(sa.text("DROP TABLE engine_orders"))
    for symbol in SYMBOLS[:4]:
        h.book(symbol, "100.00", "100.01")
        h.signal(symbol)
    broker = h.engine.broker
    assert isinstance(broker, PaperBroker)
    h.advance(0.1)
    assert broker.open_orders() == []  # write-ahead failed: nothing went to the venue
    assert all(w.work.children[-1].state is OrderState.REJECTED for w in h.engine.works.values())
    h.book("ADA/USDT", "100.00", "100.01")
    h.signal("ADA/USDT")
    assert h.engine.decisions[-1].action == "blocked"
    assert h.engine.last_verdict is not None and Switch.STORE_ERRORS in h.engine.last_verdict.active


def test_live_versus_simulated_pnl_gap_alerts(paper: Callable[..., Harness]) -> None:
    h = paper(graduated())
    h.engine.handle(HealthEvent(live_pnl=Decimal(100), simulated_pnl=Decimal(50)))
    h.advance(5)
    assert alerted(h, Switch.PNL_GAP)


def test_pause_file_and_api_kill_stop_entries_at_once(paper: Callable[..., Harness]) -> None:
    h = paper(graduated())
    h.engine.pause_file.parent.mkdir(parents=True, exist_ok=True)
    h.engine.pause_file.touch()
    entry_blocked(h, "BTC/USDT", Switch.MANUAL)
    h.engine.pause_file.unlink()
    entry_allowed(h, "BTC/USDT")

    h.engine.kill("operator")
    entry_blocked(h, "ETH/USDT", Switch.MANUAL)
    h.engine.resume()
    entry_allowed(h, "ETH/USDT")


def test_kill_switches_never_block_exits(paper: Callable[..., Harness]) -> None:
    h = paper(graduated())
    h.open_long("BTC/USDT")
    h.engine.kill("operator")
    h.clock.advance(1)
    h.book("BTC/USDT", "98.90", "98.91")  # hard stop
    assert [s.purpose for s in h.orders("BTC/USDT")][-1] == "exit"


def test_kill_state_survives_a_restart(paper: Callable[..., Harness]) -> None:
    h = paper(TradingConfig(kill=KillSwitchConfig(deployment=DeploymentConfig(active_phase=None))))
    h.engine.kill("operator")
    assert h.store.get_state("manual_kill") is True


def test_alerts_are_posted_to_the_webhook(paper: Callable[..., Harness]) -> None:
    import json
    import threading
    import time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    received: list[dict[str, str]] = []

    class Sink(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        h = paper(graduated(), alert_webhook_url=f"http://127.0.0.1:{server.server_address[1]}/alerts")
        h.engine.kill("operator")
        deadline = time.monotonic() + 20
        wanted = {"manual_kill", "kill_switch:manual"}
        while not wanted <= {r["kind"] for r in received} and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        server.shutdown()
        server.server_close()
    kinds = {r["kind"] for r in received}
    assert {"manual_kill", "kill_switch:manual"} <= kinds


def resting_entry(h: Harness, symbol: str) -> None:
    h.book(symbol, "100.00", "100.01")
    h.signal(symbol)
    h.advance(0.1)  # paper latency: the post-only buy rests at the venue
    [stored] = h.orders(symbol)
    assert stored.order.is_live and stored.purpose == "entry"


def no_fill_after(h: Harness, symbol: str) -> None:
    h.advance(0.1)  # the cancel lands
    h.trade(symbol, "99.90", "10")  # the market trades through the entry's price
    assert symbol not in h.engine.positions
    assert h.orders(symbol)[-1].order.state is OrderState.CANCELLED
    assert h.engine.works == {}


def test_api_kill_cancels_resting_entries_and_nothing_fills_after(paper: Callable[..., Harness]) -> None:
    # Arrange: a position (its exit must keep working) and a resting entry in another symbol.
    h = paper(graduated())
    h.open_long("ETH/USDT")
    resting_entry(h, "BTC/USDT")

    # Act
    h.engine.kill("operator")

    # Assert: the entry is gone at once; exits still work.
    assert h.orders("BTC/USDT")[-1].order.state is OrderState.CANCEL_REQUESTED
    no_fill_after(h, "BTC/USDT")
    h.clock.advance(1)
    h.book("ETH/USDT", "98.90", "98.91")  # hard stop
    assert [s.purpose for s in h.orders("ETH/USDT")][-1] == "exit"


def test_pause_file_cancels_resting_entries_at_the_next_tick(paper: Callable[..., Harness]) -> None:
    h = paper(graduated())
    resting_entry(h, "BTC/USDT")
    h.engine.pause_file.parent.mkdir(parents=True, exist_ok=True)
    h.engine.pause_file.touch()
    h.advance(0.1)  # well inside the 5 s sweep interval: the new pause file is acted on at once
    assert h.orders("BTC/USDT")[-1].order.state in (OrderState.CANCEL_REQUESTED, OrderState.CANCELLED)
    no_fill_after(h, "BTC/USDT")


def test_a_halting_switch_cancels_resting_entries(paper: Callable[..., Harness]) -> None:
    h = paper(graduated())
    resting_entry(h, "BTC/USDT")
    set_paper_balances(h, USDT="9000")  # -10% on the day: daily loss stops entries
    h.advance(5)  # the sweep evaluates the switches and acts
    assert h.engine.last_verdict is not None and Switch.DAILY_LOSS in h.engine.last_verdict.active
    no_fill_after(h, "BTC/USDT")
