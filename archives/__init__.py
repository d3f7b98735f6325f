"""Run archives: the `archive_run` activity, the archive writer and its annotations, and `python -m archives`."""
