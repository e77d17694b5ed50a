"""Model towers of the walk-forward retrain (SPEC section 7): pure, tested building blocks.

- `calibration`: isotonic or Platt, whichever has the lower Brier on held-back validation data;
  `CalibratedClassifier` (CatBoost + calibrator) with directory save/load for serving.
- `tuning`: expanding, embargoed, never-shuffled time-series folds and Optuna tuning of CatBoost.
- `sequence`: the PyTorch sequence tower (LSTM over the last 200 bars) giving a 4-value context.
- `fusion`: P = w1 x P_tabular + w2 x f(context) + w3 x regime_boost, weights fitted per group.

Nothing here reads configuration files, the lake or MLflow; callers pass arrays/frames and log results.
"""
