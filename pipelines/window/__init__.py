"""The 5-minute window-market model: labels, scoring rows, walk-forward training and its registry entry."""

# Defaults of `model.WindowModelConfig`, here so the serving tier can name the model without importing
# the training code (optuna and the fitting helpers behind it).
MODEL_NAME = "alphatide-window"
SYMBOL = "BTC/USDT"  # the reference prints the windows resolve on; the model is trained on its bars
