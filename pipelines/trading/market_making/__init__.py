"""Avellaneda-Stoikov market making (SPEC 12): the model, its estimators, the paper's simulation and
the nightly calibration. Pure logic except `calibration` (reads the lake, writes one JSON table)."""
