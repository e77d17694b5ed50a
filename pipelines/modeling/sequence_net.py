"""The sequence tower's network and settings: `SequenceTowerConfig`, the patch-embedding `_Net` and the
`SelectiveSSM` cell (architecture in `pipelines.modeling.sequence`, which re-exports these names).
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

from pipelines.features import FEATURE_COLUMNS

CONTEXT_COLUMNS = ("ctx_trend", "ctx_volatility", "ctx_liquidity", "ctx_persistence")


class SequenceTowerConfig(BaseModel):
    """Every number of the sequence tower; frozen, unknown fields rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    window: int = Field(200, ge=2, le=2000, description="Bars per input window (the SPEC's last 200 bars).")
    patch: int = Field(5, ge=1, le=100, description="Bars per patch; window must be a multiple of it.")
    embed: int = Field(16, ge=2, le=512, description="Patch embedding width.")
    cell: Literal["lstm", "selective_ssm"] = Field(
        "lstm", description="Sequence layer: the LSTM baseline or the Mamba-style selective SSM (stretch)."
    )
    hidden: int = Field(24, ge=2, le=512, description="LSTM hidden size (SSM inner width).")
    ssm_state: int = Field(8, ge=1, le=64, description="State size per channel of the selective SSM.")
    epochs: int = Field(2, ge=1, le=100)
    batch_size: int = Field(256, ge=8, le=65536)
    lr: float = Field(3e-3, gt=0, le=1, description="Adam learning rate.")
    weight_decay: float = Field(0.0, ge=0, le=1)
    max_train_windows: int = Field(30_000, ge=16, description="Training windows sampled (seeded) from the train rows.")
    seed: int = 42
    torch_threads: int = Field(
        1,
        ge=1,
        le=64,
        description="torch intra-op threads while fitting/scoring. 1 by default: on a shared 2-core machine "
        "2 OpenMP threads spin against other processes and cost ~3x the CPU time.",
    )
    inference_batch: int = Field(8192, ge=16, le=1_000_000, description="Windows per scoring batch.")
    input_clip: float = Field(5.0, gt=0, description="Scaled inputs are clipped to +- this many std.")
    target_clip: float = Field(5.0, gt=0, description="Standardized targets are clipped to +- this.")
    feature_columns: tuple[str, ...] = Field(FEATURE_COLUMNS, min_length=1)
    target_column: str = Field("forward_return", description="Next-bar return (fraction) of each row.")
    scale_column: str = Field("atr_pct", description="Volatility known at t used to risk-adjust returns.")
    last_return_column: str = Field("roc_1", description="The bar's own return: sign for persistence.")
    liquidity_column: str = Field("volume_regime", description="Next bar's value is the liquidity target.")

    @model_validator(mode="after")
    def _window_is_whole_patches(self) -> SequenceTowerConfig:
        if self.window % self.patch:
            raise ValueError(f"window ({self.window}) must be a multiple of patch ({self.patch})")
        if len(set(self.feature_columns)) != len(self.feature_columns):
            raise ValueError("feature_columns holds duplicates")
        return self


class SelectiveSSM(nn.Module):
    """A Mamba-style selective state-space layer (Gu & Dao, 2023, the S6 recurrence), scanned sequentially.

    Per channel c of the inner width and state n: h_t = exp(delta_t,c * A_c,n) h_{t-1} + delta_t,c B_t,n x_t,c
    and y_t,c = sum_n C_t,n h_t,n + D_c x_t,c, gated by silu(z_t). delta, B and C depend on the input
    (that is the "selective" part: the layer chooses per step what to remember); A = -exp(A_log) < 0
    keeps the recurrence stable. No causal convolution: the patch embedding already mixes nearby bars.
    The scan is a plain loop over the (few) patch steps; returns the last step's output (batch, inner).
    """

    def __init__(self, d_model: int, d_inner: int, d_state: int) -> None:
        super().__init__()
        self.in_proj = nn.Linear(d_model, 2 * d_inner)
        self.delta_proj = nn.Linear(d_inner, d_inner)
        self.bc_proj = nn.Linear(d_inner, 2 * d_state, bias=False)
        # S4D-real initialisation: A_c,n = -(n + 1)
        self.A_log = nn.Parameter(torch.log(torch.arange(1, d_state + 1, dtype=torch.float32)).repeat(d_inner, 1))
        self.D = nn.Parameter(torch.ones(d_inner))
        self.d_state = d_state

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """(batch, steps, d_model) -> (batch, d_inner): the output at the last step."""
        x_all, z_all = self.in_proj(u).chunk(2, dim=-1)
        x_all = nn.functional.silu(x_all)
        delta_all = nn.functional.softplus(self.delta_proj(x_all))  # (batch, steps, inner)
        b_all, c_all = self.bc_proj(x_all).split(self.d_state, dim=-1)  # (batch, steps, state) each
        a = -torch.exp(self.A_log)  # (inner, state)
        h = torch.zeros(u.shape[0], a.shape[0], self.d_state, dtype=u.dtype, device=u.device)
        for t in range(u.shape[1]):
            delta = delta_all[:, t, :, None]  # (batch, inner, 1)
            h = torch.exp(delta * a) * h + delta * x_all[:, t, :, None] * b_all[:, t, None, :]
        y = (h * c_all[:, -1, None, :]).sum(-1) + self.D * x_all[:, -1]
        return y * nn.functional.silu(z_all[:, -1])  # type: ignore[no-any-return]


class _Net(nn.Module):
    """Patch embedding -> LSTM (or selective SSM) -> 4 context outputs."""

    def __init__(self, channels: int, config: SequenceTowerConfig) -> None:
        super().__init__()
        self.patch = config.patch
        self.steps = config.window // config.patch
        self.channels = channels
        self.cell = config.cell
        self.embed = nn.Linear(config.patch * channels, config.embed)
        if config.cell == "lstm":
            self.lstm = nn.LSTM(config.embed, config.hidden, batch_first=True)
        else:
            self.ssm = SelectiveSSM(config.embed, config.hidden, config.ssm_state)
        self.head = nn.Linear(config.hidden, len(CONTEXT_COLUMNS))

    def from_embedded(self, embedded: torch.Tensor) -> torch.Tensor:
        """(batch, steps, embed) patch embeddings (after GELU) -> (batch, 4)."""
        if self.cell == "lstm":
            out, _ = self.lstm(embedded)
            last = out[:, -1, :]
        else:
            last = self.ssm(embedded)
        return self.head(last)  # type: ignore[no-any-return]

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        """(batch, window, channels) oldest bar first -> (batch, 4)."""
        batch = windows.shape[0]
        patches = windows.reshape(batch, self.steps, self.patch * self.channels)
        return self.from_embedded(nn.functional.gelu(self.embed(patches)))
