"""The sequence tower (SPEC section 7): an LSTM over the last `window` bars giving a 4-value context.

Cost (``python -m bench.towers``, shared 51-pair 5m sample, default config, 1 torch thread, CPU time):
`SequenceTower.fit` on 30k sampled windows x 2 epochs ~7 s; `SequenceTower.context` ~16 us per scored
row (the 8 test weeks of all 51 pairs, 925k rows: ~15 s). The selective-SSM cell: fit ~10 s, context
~2.4x the LSTM's. Wall time is 2-3x that when the machine is shared.

Architecture (CPU-sized):

1. Inputs: the feature columns of each bar, standardized with the mean/std of the *training* rows
   (rows before ``train_end``; later rows are scaled with those same figures: no look-ahead), clipped to
   +-`input_clip`, float32. A null becomes 0 after scaling and a mask channel (1 = was null) tells the
   model so. Columns null on every training row are dropped (they carry nothing).
2. Patching: the window of ``window`` bars is cut into ``window / patch`` consecutive patches of
   ``patch`` bars (the last one ends at the bar being scored); a linear layer + GELU embeds each patch.
   Every bar still enters the model; the LSTM runs ``window / patch`` steps instead of ``window``.
3. An LSTM over the patch embeddings (or, with ``cell="selective_ssm"``, the Mamba-style `SelectiveSSM`,
   the SPEC's stretch); its last hidden state feeds a linear layer with 4 outputs, the context. Each
   output is trained (MSE, standardized targets) on a quantity of the *next* bar:

   - ``ctx_trend``: next-bar return / ``scale_column`` (ATR %, known at t): risk-adjusted direction;
   - ``ctx_volatility``: log |next-bar return|: the size of the next move;
   - ``ctx_liquidity``: log of the next bar's ``liquidity_column`` (volume_regime = volume 20 / volume 60):
     relative trading activity;
   - ``ctx_persistence``: next-bar return / ATR % x sign(last bar's return ``last_return_column``):
     positive when moves continue (momentum), negative when they revert.

   So each context value is the model's forecast of a standardized next-bar quantity (0 = its training
   mean, units of its training standard deviation).

Causality: the context at a bar uses that bar's features and the ``window - 1`` bars before it in the same
symbol (features at a bar are known at its close), and parameters fitted on rows before ``train_end``.
Rows are the symbol's bars in ``ts`` order; the data is assumed gap-free (as the lake's candles are).

Inference shares work between overlapping windows: the patch embedding of every bar is computed once
(a causal convolution) and each window gathers ``window / patch`` of them, so the cost per scored row is
the LSTM's ``window / patch`` small steps.

Layout: the settings (`SequenceTowerConfig`) and the network (`_Net`, `SelectiveSSM`) are in
`pipelines.modeling.sequence_net`, re-exported here; this module holds the tower (scaling, targets,
fit, context, save/load).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch
from torch import nn

from pipelines.modeling.sequence_net import CONTEXT_COLUMNS, SelectiveSSM, SequenceTowerConfig, _Net

__all__ = ["CONTEXT_COLUMNS", "SelectiveSSM", "SequenceTower", "SequenceTowerConfig"]

WEIGHTS_FILE = "sequence_tower.pt"
STATE_FILE = "sequence_tower.json"
_FORMAT_VERSION = 1
_LOG_ABS_FLOOR = 1e-5  # |return| floor inside the log of the volatility target (1 bp / 10)


def _finite(column: str) -> pl.Expr:
    """The column as Float64 with NaN and +-inf turned into null (features promise neither; a guard)."""
    value = pl.col(column).cast(pl.Float64)
    return pl.when(value.is_finite()).then(value)


@contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@dataclass(frozen=True)
class _Prepared:
    """A frame turned into model inputs: rows sorted by (symbol, ts)."""

    frame: pl.DataFrame  # symbol, ts (+ whatever fit needs), sorted
    inputs: np.ndarray  # (rows, channels) float32
    position: np.ndarray  # index of each row within its symbol (0 = first bar)


class SequenceTower:
    """Fit on history, then give `CONTEXT_COLUMNS` per (symbol, ts). See the module docstring."""

    def __init__(self, config: SequenceTowerConfig | None = None) -> None:
        self.config = config or SequenceTowerConfig()
        self.columns: tuple[str, ...] = ()  # feature columns actually used (non-null in training)
        self.means = np.zeros(0)
        self.stds = np.ones(0)
        self.target_means = np.zeros(len(CONTEXT_COLUMNS))
        self.target_stds = np.ones(len(CONTEXT_COLUMNS))
        self.train_end: datetime | None = None
        self.net: _Net | None = None
        self.fit_seconds = 0.0
        self.n_train_windows = 0
        self.epoch_losses: list[float] = []

    # ---------------------------------------------------------------- inputs
    def _prepare(
        self, frame: pl.DataFrame, extra: tuple[str, ...] = (), *, keep: pl.Expr | None = None
    ) -> _Prepared:
        """Sort by (symbol, ts), optionally keep rows matching ``keep``, scale into float32 inputs.

        ``position`` is counted before ``keep`` filters, so it is the row's index in its symbol's history.
        """
        missing = [c for c in ("symbol", "ts", *self.columns, *extra) if c not in frame.columns]
        if missing:
            raise ValueError(f"frame lacks columns {missing}")
        cfg = self.config
        data = (
            frame.select("symbol", "ts", *dict.fromkeys((*self.columns, *extra)))
            .sort("symbol", "ts")
            .with_columns(pl.int_range(pl.len()).over("symbol").alias("_position"))
        )
        duplicated = (pl.col("symbol") == pl.col("symbol").shift(1)) & (pl.col("ts") == pl.col("ts").shift(1))
        if data.select(duplicated.any()).item():
            raise ValueError("frame holds duplicate (symbol, ts) rows")
        if keep is not None:
            data = data.filter(keep)
        values = [
            ((_finite(c) - mean) / std)
            .clip(-cfg.input_clip, cfg.input_clip)
            .fill_null(0.0)
            .cast(pl.Float32)
            .alias(f"_v{i}")
            for i, (c, mean, std) in enumerate(zip(self.columns, self.means, self.stds, strict=True))
        ]
        masks = [
            _finite(c).is_null().cast(pl.Float32).alias(f"_m{i}")
            for i, c in enumerate(self.columns)
        ]
        inputs = np.ascontiguousarray(data.select(values + masks).to_numpy(), dtype=np.float32)
        position = data["_position"].to_numpy().astype(np.int64)
        return _Prepared(frame=data.drop("_position"), inputs=inputs, position=position)

    def _fit_scaler(self, frame: pl.DataFrame, train_rows: pl.Expr) -> None:
        cfg = self.config
        train = frame.filter(train_rows)
        known = train.select([_finite(c).count().alias(c) for c in cfg.feature_columns]).row(0, named=True)
        usable = [c for c in cfg.feature_columns if known[c] > 0]
        if not usable:
            raise ValueError("every feature column is null (or NaN/inf) on the training rows")
        stats = train.select(
            [_finite(c).mean().alias(f"m_{c}") for c in usable] + [_finite(c).std().alias(f"s_{c}") for c in usable]
        ).row(0)
        means = np.array(stats[: len(usable)], dtype=np.float64)
        stds = np.array(stats[len(usable) :], dtype=np.float64)
        stds = np.where(np.isfinite(stds) & (stds > 0), stds, 1.0)
        self.columns = tuple(usable)
        self.means, self.stds = means, stds

    def _targets(self, prepared: _Prepared) -> np.ndarray:
        """(rows, 4) raw targets (before standardization), NaN where unknown."""
        cfg = self.config
        f = prepared.frame
        ret = f[cfg.target_column].cast(pl.Float64).to_numpy()
        scale = f[cfg.scale_column].cast(pl.Float64).to_numpy()
        last = f[cfg.last_return_column].cast(pl.Float64).to_numpy()
        nxt = f.select(pl.col(cfg.liquidity_column).cast(pl.Float64).shift(-1).over("symbol")).to_series().to_numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.where(np.isfinite(scale) & (scale > 0), scale, np.nan)
            adjusted = ret / scale
            targets = np.column_stack(
                [
                    adjusted,
                    np.log(np.abs(ret) + _LOG_ABS_FLOOR),
                    np.log(np.where(nxt > 0, nxt, np.nan)),
                    adjusted * np.sign(last),
                ]
            )
        targets[~np.isfinite(targets)] = np.nan
        return targets

    # ---------------------------------------------------------------- fit
    def fit(self, frames: pl.DataFrame, train_end: datetime) -> SequenceTower:
        """Fit scaler and network on rows with ``ts < train_end``; returns self.

        ``frames``: one row per (symbol, bar) with ``symbol``, ``ts`` (UTC), the configured feature
        columns, ``target_column`` (next-bar return of the row, a label: it looks ahead by design),
        ``scale_column``, ``last_return_column`` and ``liquidity_column``. The caller sets ``train_end``
        so that training labels do not reach into the period the tower is later scored on (the embargo).
        Windows ending at sampled training rows (seeded, at most ``max_train_windows``) are used; a window
        needs ``window - 1`` earlier bars of the same symbol. Deterministic for a given config.
        """
        cfg = self.config
        started = time.perf_counter()
        needed = (cfg.target_column, cfg.scale_column, cfg.last_return_column, cfg.liquidity_column)
        missing = [c for c in ("symbol", "ts", *cfg.feature_columns, *needed) if c not in frames.columns]
        if missing:
            raise ValueError(f"frames lacks columns {missing}")
        self._fit_scaler(frames, pl.col("ts") < train_end)
        # only rows before train_end are ever read (as window history or as targets)
        prepared = self._prepare(frames, extra=needed, keep=pl.col("ts") < train_end)
        raw_targets = self._targets(prepared)
        means = np.nanmean(raw_targets, axis=0)
        stds = np.nanstd(raw_targets, axis=0)
        if not (np.all(np.isfinite(means)) and np.all(np.isfinite(stds))):
            raise ValueError("a context target is unknown on every training row (check the return/scale columns)")
        stds = np.where(stds > 0, stds, 1.0)
        targets = np.clip((raw_targets - means) / stds, -cfg.target_clip, cfg.target_clip).astype(np.float32)
        self.target_means, self.target_stds = means, stds
        candidates = np.flatnonzero((prepared.position >= cfg.window - 1) & np.isfinite(targets[:, 0]))
        if len(candidates) < 2:
            raise ValueError(
                f"only {len(candidates)} training rows have a full window of {cfg.window} bars before {train_end}"
            )
        rng = np.random.default_rng(cfg.seed)
        if len(candidates) > cfg.max_train_windows:
            candidates = np.sort(rng.choice(candidates, size=cfg.max_train_windows, replace=False))
        net = self._train(prepared.inputs, targets, candidates)
        self.net = net
        self.train_end = train_end
        self.n_train_windows = len(candidates)
        self.fit_seconds = time.perf_counter() - started
        return self

    def _train(self, inputs_array: np.ndarray, targets: np.ndarray, candidates: np.ndarray) -> _Net:
        """Train a fresh network on the windows ending at rows ``candidates`` of ``inputs_array`` against
        the standardized ``targets`` (NaN = unknown, left out of the loss); records `epoch_losses`.
        Seeded from the config, the caller's torch random state untouched."""
        cfg = self.config
        offsets = np.arange(-cfg.window + 1, 1)
        inputs = torch.from_numpy(inputs_array)
        target_tensor = torch.from_numpy(targets)

        # fork_rng: seeding here must not reset the caller's global torch random state
        with _torch_threads(cfg.torch_threads), torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            net = _Net(inputs_array.shape[1], cfg)
            optimizer = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
            generator = torch.Generator().manual_seed(cfg.seed)
            ends = torch.from_numpy(candidates)
            self.epoch_losses = []
            net.train()
            for _ in range(cfg.epochs):
                order = ends[torch.randperm(len(ends), generator=generator)]
                total, count = 0.0, 0
                for batch_start in range(0, len(order), cfg.batch_size):
                    batch_ends = order[batch_start : batch_start + cfg.batch_size]
                    windows = inputs[batch_ends[:, None] + torch.from_numpy(offsets)[None, :]]
                    goal = target_tensor[batch_ends]
                    known = torch.isfinite(goal)
                    predicted = net(windows)
                    loss = ((predicted - torch.nan_to_num(goal)) ** 2 * known).sum() / known.sum().clamp(min=1)
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                    total += float(loss.detach()) * len(batch_ends)
                    count += len(batch_ends)
                self.epoch_losses.append(total / max(count, 1))
            net.eval()
        return net

    # ---------------------------------------------------------------- inference
    def _require_fitted(self) -> _Net:
        if self.net is None:
            raise RuntimeError("SequenceTower is not fitted: call fit() or load() first")
        return self.net

    def _patch_embeddings(self, net: _Net, inputs: np.ndarray, position: np.ndarray) -> torch.Tensor:
        """GELU(embed(patch ending at each row)) for every row (rows without a full patch: garbage, unused)."""
        cfg = self.config
        channels = inputs.shape[1]
        weight = net.embed.weight.detach()  # (embed, patch * channels), input ordered oldest bar first
        x = torch.from_numpy(inputs)
        out = net.embed.bias.detach().expand(len(inputs), -1).clone()
        for i in range(cfg.patch):
            lag = cfg.patch - 1 - i  # patch slot i holds the bar `lag` rows before the patch's end
            part = x @ weight[:, i * channels : (i + 1) * channels].T
            if lag:
                out[lag:] += part[:-lag]
            else:
                out += part
        del position  # rows too early in their symbol are never gathered (see context)
        return nn.functional.gelu(out)

    def context(self, frame: pl.DataFrame, *, start: datetime | None = None) -> pl.DataFrame:
        """Context per row: ``symbol``, ``ts``, `CONTEXT_COLUMNS` (Float64), sorted by symbol then ts.

        A row gets values when it has ``window - 1`` earlier bars of its symbol in ``frame`` (and, when
        ``start`` is given, ``ts >= start``; earlier rows still serve as window history); otherwise
        null. ``frame`` needs ``symbol``, ``ts`` and the feature columns the tower was fitted with. The
        value at a row never depends on later rows.
        """
        net = self._require_fitted()
        cfg = self.config
        keep = None
        if start is not None:
            # rows from `window - 1` bars before each symbol's first scored row: history enough, no more
            first = pl.col("_position").filter(pl.col("ts") >= start).min().over("symbol")
            keep = pl.col("_position") >= first - (cfg.window - 1)
        prepared = self._prepare(frame, keep=keep)
        eligible = prepared.position >= cfg.window - 1
        if start is not None:
            eligible &= (prepared.frame["ts"] >= start).to_numpy()
        rows = np.flatnonzero(eligible)
        result = np.full((len(prepared.inputs), len(CONTEXT_COLUMNS)), np.nan)
        if len(rows):
            steps = cfg.window // cfg.patch
            patch_ends = np.arange(-(steps - 1) * cfg.patch, 1, cfg.patch)  # oldest patch first
            with _torch_threads(cfg.torch_threads), torch.inference_mode():
                embedded = self._patch_embeddings(net, prepared.inputs, prepared.position)
                for batch_start in range(0, len(rows), cfg.inference_batch):
                    batch = torch.from_numpy(rows[batch_start : batch_start + cfg.inference_batch])
                    gathered = embedded[batch[:, None] + torch.from_numpy(patch_ends)[None, :]]
                    result[rows[batch_start : batch_start + len(batch)]] = net.from_embedded(gathered).numpy()
        scored = prepared.frame.select("symbol", "ts").with_columns(
            [pl.Series(name, result[:, k], dtype=pl.Float64).fill_nan(None) for k, name in enumerate(CONTEXT_COLUMNS)]
        )
        if start is None:
            return scored
        every_row = frame.select("symbol", "ts").sort("symbol", "ts")
        return every_row.join(scored, on=["symbol", "ts"], how="left", maintain_order="left")

    # ---------------------------------------------------------------- persistence
    def _state(self) -> dict[str, Any]:
        return {
            "format_version": _FORMAT_VERSION,
            "config": self.config.model_dump(mode="json"),
            "columns": list(self.columns),
            "means": self.means.tolist(),
            "stds": self.stds.tolist(),
            "target_means": self.target_means.tolist(),
            "target_stds": self.target_stds.tolist(),
            "train_end": self.train_end.isoformat() if self.train_end else None,
            "n_train_windows": self.n_train_windows,
            "epoch_losses": self.epoch_losses,
        }

    def state_dict(self) -> dict[str, Any]:
        """``{"state": JSON-able config/scaler/target statistics, "weights": torch state_dict}``."""
        return {"state": self._state(), "weights": self._require_fitted().state_dict()}

    def save(self, directory: str | Path) -> Path:
        """Write ``sequence_tower.json`` (config, scaler) and ``sequence_tower.pt`` (weights) into directory."""
        net = self._require_fitted()
        target = Path(directory)
        target.mkdir(parents=True, exist_ok=True)
        torch.save(net.state_dict(), target / WEIGHTS_FILE)
        (target / STATE_FILE).write_text(json.dumps(self._state()))
        return target

    @classmethod
    def load(cls, directory: str | Path) -> SequenceTower:
        """Inverse of `save`; missing files raise FileNotFoundError naming them."""
        source = Path(directory)
        for name in (STATE_FILE, WEIGHTS_FILE):
            if not (source / name).is_file():
                raise FileNotFoundError(f"sequence tower directory {source} lacks {name}")
        state = json.loads((source / STATE_FILE).read_text())
        config = SequenceTowerConfig.model_validate(state["config"])
        tower = cls(config)
        tower.columns = tuple(state["columns"])
        tower.means = np.asarray(state["means"], dtype=np.float64)
        tower.stds = np.asarray(state["stds"], dtype=np.float64)
        tower.target_means = np.asarray(state["target_means"], dtype=np.float64)
        tower.target_stds = np.asarray(state["target_stds"], dtype=np.float64)
        tower.train_end = datetime.fromisoformat(state["train_end"]) if state["train_end"] else None
        tower.n_train_windows = int(state["n_train_windows"])
        tower.epoch_losses = [float(v) for v in state["epoch_losses"]]
        net = _Net(2 * len(tower.columns), config)
        net.load_state_dict(torch.load(source / WEIGHTS_FILE, weights_only=True))
        net.eval()
        tower.net = net
        return tower
