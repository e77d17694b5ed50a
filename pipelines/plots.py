"""Pictures of a retrain for MLflow (matplotlib, Agg backend: no display, safe in Airflow workers).

Each function returns a `matplotlib.figure.Figure`; the caller logs it (`mlflow.log_figure`) and closes it.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # before pyplot: workers have no display

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

RELIABILITY_BINS = 10


def reliability_diagram(y: np.ndarray, curves: dict[str, np.ndarray], bins: int = RELIABILITY_BINS) -> Figure:
    """Observed frequency of up-moves against the mean forecast per equal-width bin, one line per forecast
    (e.g. raw and calibrated), with the diagonal of perfect calibration and the bin counts below."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6, 7), height_ratios=(3, 1), sharex=True)
    edges = np.linspace(0.0, 1.0, bins + 1)
    top.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect")
    y = np.asarray(y, dtype=float)
    for name, p in curves.items():
        index = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
        mean_p, freq, counts = [], [], []
        for b in range(bins):
            mask = index == b
            if mask.any():
                mean_p.append(float(p[mask].mean()))
                freq.append(float(y[mask].mean()))
                counts.append(int(mask.sum()))
        top.plot(mean_p, freq, marker="o", label=name)
        bottom.bar(mean_p, counts, width=0.6 / bins, alpha=0.5, label=name)
    top.set_ylabel("observed frequency of up")
    top.set_title("Reliability (out of sample)")
    top.legend()
    bottom.set_xlabel("forecast P(up)")
    bottom.set_ylabel("rows")
    bottom.set_yscale("log")
    fig.tight_layout()
    return fig


def equity_curves(times_us: np.ndarray, curves: dict[str, np.ndarray]) -> Figure:
    """Realized equity over time (UTC), one line per strategy (model, random baseline)."""
    fig, ax = plt.subplots(figsize=(8, 4))
    for name, equity in curves.items():
        stamps = np.asarray(times_us[: len(equity)], dtype="datetime64[us]")
        ax.plot(stamps, equity, label=name, linewidth=1)
    ax.set_title("Backtest equity, out of sample (fees included)")
    ax.set_ylabel("equity (quote)")
    ax.legend()
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def feature_importance(ranked: Sequence[tuple[str, float]], top: int = 25) -> Figure:
    """Horizontal bars of the model's feature importance, largest on top."""
    shown = list(ranked)[:top][::-1]
    fig, ax = plt.subplots(figsize=(6, max(2.5, 0.3 * len(shown))))
    ax.barh([name for name, _ in shown], [value for _, value in shown])
    ax.set_title("CatBoost feature importance (served model)")
    ax.set_xlabel("importance (PredictionValuesChange)")
    fig.tight_layout()
    return fig


def close(figures: dict[str, Figure]) -> None:
    for figure in figures.values():
        plt.close(figure)
