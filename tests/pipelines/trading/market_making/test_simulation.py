"""The paper's simulation: deterministic per seed, its closed-form spread, and its published behaviour."""

from __future__ import annotations

import json

import pytest

from pipelines.cli import main
from pipelines.trading.market_making.config import PaperSimulationConfig
from pipelines.trading.market_making.simulation import PAPER_TABLES, simulate_paper, step_spreads


def test_the_simulation_is_deterministic_for_a_seed() -> None:
    cfg = PaperSimulationConfig(gamma=0.1, paths=200, seed=11)
    first, again = simulate_paper(cfg), simulate_paper(cfg)
    other = simulate_paper(cfg.model_copy(update={"seed": 12}))
    assert first == again
    assert other.inventory.profit_mean != first.inventory.profit_mean


def test_average_spread_is_the_closed_form_time_average() -> None:
    # gamma sigma^2 * mean(T - t_j) + (2/gamma) ln(1 + gamma/k), t_j = j dt for j < 200: mean(T - t_j) = 0.5025
    assert step_spreads(PaperSimulationConfig(gamma=0.1)).mean() == pytest.approx(
        0.4 * 0.5025 + 20 * 0.0645385211, abs=1e-9
    )
    result = simulate_paper(PaperSimulationConfig(gamma=0.1, paths=50))
    assert result.symmetric.spread == pytest.approx(result.inventory.spread)


@pytest.mark.parametrize("gamma", [0.1, 1.0])
def test_reproduces_the_journal_tables(gamma: float) -> None:
    result = simulate_paper(PaperSimulationConfig(gamma=gamma))
    paper = PAPER_TABLES["journal_2008"][gamma]
    for name, stats in (("inventory", result.inventory), ("symmetric", result.symmetric)):
        spread, profit, profit_std, _, q_std = paper[name]
        assert stats.spread == pytest.approx(spread, abs=0.02)
        assert stats.profit_mean == pytest.approx(profit, rel=0.03)  # MC error ~ std / sqrt(1000) ~ 0.5%
        assert stats.profit_std == pytest.approx(profit_std, rel=0.15)
        assert stats.q_std == pytest.approx(q_std, rel=0.15)


def test_the_inventory_strategy_has_less_risk_than_the_symmetric_one() -> None:
    for gamma in (0.01, 0.1, 0.5):
        result = simulate_paper(PaperSimulationConfig(gamma=gamma, paths=400))
        assert result.inventory.profit_std < result.symmetric.profit_std
        assert result.inventory.q_std < result.symmetric.q_std


def test_poisson_fills_earn_less_than_the_papers_linear_probability() -> None:
    linear = simulate_paper(PaperSimulationConfig(gamma=0.1, paths=400))
    poisson = simulate_paper(PaperSimulationConfig(gamma=0.1, paths=400, fill_model="poisson"))
    assert poisson.inventory.fills_mean < linear.inventory.fills_mean


def test_cli_simulate_prints_json_and_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["mm", "simulate", "--gamma", "0.1", "--paths", "100", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["gamma"] == 0.1 and payload["paths"] == 100
    assert set(payload["inventory"]) >= {"spread", "profit_mean", "profit_std", "q_mean", "q_std"}
    assert main(["mm", "simulate", "--gamma", "0.1", "--paths", "100"]) == 0
    table = capsys.readouterr().out
    assert "inventory" in table and "symmetric" in table and "paper 2008" in table
