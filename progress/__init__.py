"""Followers of a run's progress stream: an async reader, an SSE endpoint, and `python -m progress follow`."""
