"""The service wiring: one Temporal plugin for the worker and every client, connecting, the activities."""
