"""Releasing new worker code safely: the replay gate, the patch-retirement report, the rollout (docs/deployments.md)."""
