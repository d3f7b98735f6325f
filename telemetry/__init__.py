"""Tracing set-up shared by the worker and every starter."""
