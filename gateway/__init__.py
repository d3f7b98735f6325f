"""The HTTP API for people and services without the Temporal SDK: runs, approvals, approval pages (`python -m gateway`)."""
