"""Deterministic orchestration only: no I/O, no clock, no environment reads."""
