"""The product's one exception hierarchy: every error it raises on purpose is an `AgentServiceError`.

Each message says what is wrong and what to change, because the person reading it is a user
(an operator reading a worker's exit, a caller reading a failed run), not the author.
"""

from __future__ import annotations

from temporalio.exceptions import ApplicationError

from models.run import Usage


class AgentServiceError(Exception):
    """Base of every error this product raises on purpose."""


class ConfigError(AgentServiceError):
    """A setting is missing or malformed; the message names the variable (or file) and what it must be."""


class AgentsFileInvalid(ConfigError):
    """The agents file, TOOL_MODULES or an MCP server failed the start-up checks; one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        count = f"{len(self.problems)} problem" + ("s" if len(self.problems) != 1 else "")
        super().__init__(f"your agents and tools have {count}:\n" + "\n".join(f"  {p}" for p in self.problems))


class RunFailed(ApplicationError, AgentServiceError):
    """A run cannot go on: it fails at once (never a retried workflow task), with the class name as its type.

    Subclasses are listed in the worker's `workflow_failure_exception_types`, and are non-retryable
    application errors besides, so a caller sees `type` and message in the run's failure.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, type=type(self).__name__, non_retryable=True)


class InvalidInput(RunFailed):
    """The workflow input (or an agent it names) is wrong; the message names the field."""

    def __init__(self, message: str) -> None:
        super().__init__(f"invalid input: {message}")


class _SpentBeforeFailing(RunFailed):
    """A failure of an activity that may have paid for model calls first; `spent` is what its attempts reported."""

    def __init__(self, message: str, spent: Usage | None = None) -> None:
        super().__init__(message)
        self.spent = spent


class LlmCallFailed(_SpentBeforeFailing):
    """The model could not be reached after its retries, or refused the request."""


class AgentRunFailed(_SpentBeforeFailing):
    """A black-box agent failed after its retries."""


class PlanInvalid(RunFailed):
    """The hybrid's planner did not produce a valid plan within its attempts."""


class OutputInvalid(RunFailed):
    """An agent's final answer did not match its `output_schema`, also after being told what was wrong."""


class AgentOutputInvalid(RunFailed):
    """`OutputInvalid` inside a black box: the `invoke_agent` activity's failure, never retried (a retry would pay
    for the whole agent again); the run then fails `AgentRunFailed`. The rule and message are tools/final_answer.py's."""


class OutputSchemaUnusable(RunFailed):
    """An agent's `output_schema` cannot check any answer (a `$ref` that does not resolve, a `$ref` loop).

    Start-up checks refuse most such schemas; this is the run's failure for the rest, since no answer can pass.
    """


class ToolInputError(AgentServiceError):
    """A tool was used wrongly (bad expression, missing record): told to the model, never retried."""


class DecisionRefused(ApplicationError, AgentServiceError, ValueError):
    """An update `decide` that cannot be applied; the message says why.

    Callers see type `DecisionRefused` and, as the failure's first detail, `reason`: what kind of refusal
    it is (the gateway maps `unknown_request` to 404, `not_an_approver` to 403, `already_decided` and
    `expired` to 409).
    """

    reason = "refused"

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message, reason or self.reason, type="DecisionRefused", non_retryable=True)

    def __str__(self) -> str:
        return self.message


class UnknownRequest(DecisionRefused):
    """A decision names a request the run never opened (or none is pending)."""

    reason = "unknown_request"


class AlreadyDecided(DecisionRefused):
    """A decision for a request that is decided already, or expired (which counts as a rejection)."""

    reason = "already_decided"


class NotAnApprover(DecisionRefused):
    """A decision from someone the request's `approvers` does not list."""

    reason = "not_an_approver"


class BlobNotFound(AgentServiceError, KeyError):
    """A reference names bytes the store does not hold (wrong store configured, or data deleted)."""


class PayloadCodecError(AgentServiceError, ValueError):
    """A payload cannot be decoded here: missing key, tampered bytes, or a blob the store does not hold."""


class SpendLimitReached(AgentServiceError):
    """A model call's reservation was refused by a spend limit across runs (SPEND_LIMITS); the run ends
    `budget_exceeded` naming `limit`, or (`on_limit = "wait"`) waits `resets_in_seconds` for the window to reset."""

    def __init__(
        self,
        limit: str,
        on_limit: str,
        resets_in_seconds: float,
        remaining: dict[str, float | None],
        spent: Usage | None = None,
    ) -> None:
        super().__init__(f"spend limit reached: {limit}")
        self.limit = limit
        self.on_limit = on_limit
        self.resets_in_seconds = resets_in_seconds
        """From the refusing worker's clock (the run's own clock is the workflow's)."""
        self.remaining = remaining
        self.spent = spent
