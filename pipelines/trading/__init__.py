"""The money-critical trading core: pure decisions, sizing, exits, risk guards, orders, paper fills.

Everything in this package is pure: no network, no files, no database, no wall clock. Time enters as an
explicit timezone-aware UTC `datetime` argument (`now`), so every rule can be replayed and tested
scenario by scenario. Adapters (ccxt brokers, the stream, the API) live elsewhere and call into here.

Units, everywhere in this package unless a name says otherwise:
- returns, fees, spreads, slippage, thresholds: fractions (0.007 means 0.7%), as `float`;
- prices, sizes and notionals that can reach a venue: `decimal.Decimal`, never `float`;
- durations: seconds as `float` in configuration, `datetime.timedelta` in arithmetic.

Modules: `config` (every number, validated), `instruments` (tick/lot rounding, min notional),
`decision` (expected-value entry gate), `sizing` (adaptive Kelly), `exits` (exit rules),
`killswitch` (RiskGuard), `orders` (order lifecycle and working-order policy), `paper` (matching engine).
"""
