"""Spend limits across runs, seen from outside a worker: `python -m spend` and the gateway's `GET /v1/usage`."""
