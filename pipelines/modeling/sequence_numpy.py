"""The sequence tower's inference for one window in numpy, without torch (the serving process).

Same arithmetic as `SequenceTower.context` for the LSTM cell: scale each bar's features with the training
mean/std (clip, null -> 0, plus a null-mask channel), cut the `window` bars into patches (the last one
ending at the scored bar), GELU(linear) per patch, an LSTM over the patches (PyTorch gate order i, f, g, o),
and the linear head giving the 4 context values. tests/pipelines/modeling/test_fused.py checks it against
the torch tower. Importing torch would cost the serving process ~200 MB; numpy is already there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

NUMPY_FILE = "sequence_tower_numpy.npz"
_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)


def _erf(x: np.ndarray) -> np.ndarray:
    """Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7), enough for float32 activations."""
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = ((((_A[4] * t + _A[3]) * t + _A[2]) * t + _A[1]) * t + _A[0]) * t
    return sign * (1.0 - poly * np.exp(-a * a))  # type: ignore[no-any-return]


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + _erf(x / np.sqrt(2.0)))  # type: ignore[no-any-return]


@dataclass(frozen=True)
class NumpySequenceTower:
    """Scaling statistics and LSTM weights of a fitted `SequenceTower` (cell ``lstm``)."""

    columns: tuple[str, ...]
    means: np.ndarray
    stds: np.ndarray
    clip: float
    window: int
    patch: int
    weights: dict[str, np.ndarray]

    @classmethod
    def from_tower(cls, tower: Any) -> NumpySequenceTower:
        net = tower._require_fitted()
        if tower.config.cell != "lstm":
            raise ValueError("numpy inference covers the LSTM cell only")
        weights = {k: v.detach().cpu().numpy().astype(np.float64) for k, v in net.state_dict().items()}
        return cls(
            tuple(tower.columns), np.asarray(tower.means), np.asarray(tower.stds), tower.config.input_clip,
            tower.config.window, tower.config.patch, weights,
        )

    def scale(self, values: dict[str, float | None]) -> np.ndarray:
        """One bar's model inputs: scaled values then null masks (2 x columns), float64."""
        raw = np.array([values.get(c) for c in self.columns], dtype=np.float64)  # None -> nan
        finite = np.isfinite(raw)
        scaled = np.clip((np.where(finite, raw, 0.0) - self.means) / self.stds, -self.clip, self.clip)
        return np.concatenate([np.where(finite, scaled, 0.0), (~finite).astype(np.float64)])

    def context(self, window_inputs: np.ndarray) -> np.ndarray:
        """(window, channels) scaled inputs, oldest bar first -> the 4 context values."""
        w = self.weights
        steps = self.window // self.patch
        patches = window_inputs.reshape(steps, -1)
        embedded = _gelu(patches @ w["embed.weight"].T + w["embed.bias"])
        hidden = w["lstm.weight_hh_l0"].shape[1]
        h = np.zeros(hidden)
        c = np.zeros(hidden)
        x_part = embedded @ w["lstm.weight_ih_l0"].T + w["lstm.bias_ih_l0"] + w["lstm.bias_hh_l0"]
        w_hh = w["lstm.weight_hh_l0"]
        for t in range(steps):  # PyTorch gate order: input, forget, cell, output
            gates = x_part[t] + w_hh @ h
            gate = 1.0 / (1.0 + np.exp(-gates))
            c = gate[hidden : 2 * hidden] * c + gate[:hidden] * np.tanh(gates[2 * hidden : 3 * hidden])
            h = gate[3 * hidden :] * np.tanh(c)
        return w["head.weight"] @ h + w["head.bias"]  # type: ignore[no-any-return]

    def save(self, directory: Path) -> None:
        meta = {"columns": list(self.columns), "clip": self.clip, "window": self.window, "patch": self.patch}
        arrays = {f"w__{k}": v for k, v in self.weights.items()} | {"means": self.means, "stds": self.stds}
        np.savez(directory / NUMPY_FILE, meta=np.array(json.dumps(meta)), **arrays)  # type: ignore[arg-type]

    @classmethod
    def load(cls, directory: Path) -> NumpySequenceTower:
        with np.load(directory / NUMPY_FILE) as data:
            meta = json.loads(str(data["meta"]))
            weights = {k.removeprefix("w__"): data[k] for k in data.files if k.startswith("w__")}
            return cls(
                tuple(meta["columns"]), data["means"], data["stds"], float(meta["clip"]), int(meta["window"]),
                int(meta["patch"]), weights,
            )
