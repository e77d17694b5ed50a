"""The 5-minute window-market model: labels, scoring rows, walk-forward training and its registry entry."""
