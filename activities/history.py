"""The `history_limits` local activity: the worker's history settings, recorded once in each run's history."""

from __future__ import annotations

from temporalio import activity

from config.settings import Settings
from models.history import HistoryLimits


class HistoryActivities:
    """Hands a workflow the limits configured in this worker's environment (workflows may not read it)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    @activity.defn(name="history_limits")
    async def history_limits(self) -> HistoryLimits:
        """The offload switch, continue-as-new threshold and summary threshold (HISTORY_*, CONTEXT_SUMMARY_TOKENS)."""
        return self._settings.history
