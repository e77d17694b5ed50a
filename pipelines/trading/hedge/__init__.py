"""The two-venue delta-neutral hedge (SPEC 13): pure cycle state machine, sizing phases, records.

`machine.HedgeMachine` drives one `cycle.Cycle`; `quote.plan_quote` decides whether to open one;
`phases` is the progressive sizing; `records` / `store` are the per-cycle records and the
volume/points tracker. The engine-facing strategy is `serving.strategies.hedge.HedgeStrategy`.
"""
