"""How an exception becomes a Temporal failure: one line for the caller's mistakes, a trace that fits otherwise.

Two rules:

- Failures a caller caused (`EXPECTED_FAILURES`) carry no stack trace. Their one-line message says all there is;
  the CLI and UI printed ~30 lines of SDK frames under `invalid input: prompt: ...`.
- Any other failure keeps its traces, cut to fit `FAILURE_BYTES`. Temporal keeps an activity attempt's failure for
  the next attempt (the UI's "last failure" of a retrying activity) only up to the server's
  `limit.mutableStateActivityFailureSize.error`, 4 KB by default, and replaces a larger one with the bare words
  "Failure exceeds size limit.". A black box's stream error carries two traces (the provider's, raised deep in
  the Agents SDK, and `invoke_agent`'s) and the spend so far, and sometimes crossed the line: a retrying black
  box then showed those words instead of `OpenaiStreamError`. Each link of the cause chain keeps its innermost
  frames (where it was raised); the worker's log has the whole trace.
"""

from __future__ import annotations

import threading

from temporalio.api.failure.v1 import Failure
from temporalio.converter import DefaultFailureConverter, PayloadConverter

from models.errors import DecisionRefused, RunFailed

EXPECTED_FAILURES = (RunFailed, DecisionRefused)
"""Failures that are the caller's answer (bad input, a spent budget, a refused decision)."""

FAILURE_BYTES = 3 * 1024
"""The most a failure, its causes and details included, may weigh: the server's 4 KB less room for what it adds."""

ENCODING_ROOM = 768
"""What moving message and trace into an encrypted payload adds (JSON escapes, the codec's envelope), at most."""

MIN_TRACE_LINES = 2
"""A trace is never cut below its last frame (two lines: where, and the line of code)."""


def cut_note(lines: int) -> str:
    """The line that replaces a trace's cut outer lines."""
    return f"  ... {lines} outer lines cut to fit Temporal's failure size limit (the worker log has them)"


def chain(failure: Failure) -> list[Failure]:
    """The failure and its causes, outermost first."""
    links = [failure]
    while links[-1].HasField("cause"):
        links.append(links[-1].cause)
    return links


def cut(trace: str, most: int) -> str:
    """`trace`'s innermost lines, under a note of how many were cut, in at most `most` bytes where it can."""
    if len(trace.encode()) <= most:
        return trace
    lines = trace.rstrip("\n").split("\n")
    room = most - len(cut_note(len(lines)).encode()) - 1
    kept: list[str] = []
    for line in reversed(lines):
        if len(kept) >= MIN_TRACE_LINES and sum(len(k.encode()) + 1 for k in kept) + len(line.encode()) > room:
            break
        kept.insert(0, line)
    while len(kept) > MIN_TRACE_LINES and not kept[0].startswith("  File "):
        kept.pop(0)  # start at a frame, not at its code line or at the blank line between two frames
    return "\n".join([cut_note(len(lines) - len(kept)), *kept])


def fit(failure: Failure, limit: int = FAILURE_BYTES) -> None:
    """Cut the chain's traces so the failure weighs at most `limit`, each link getting a fair share of the room.

    Short traces keep all they have, and what they leave goes to the long ones. Messages and details are not cut:
    a message is what a person reads first and details are data the workflow reads. A failure whose details alone
    are too big keeps the last frame of each trace.
    """
    links = chain(failure)
    traces = sum(len(link.stack_trace.encode()) for link in links)
    if failure.ByteSize() <= limit or not traces:
        return
    room = limit - (failure.ByteSize() - traces) - 8 * len(links)  # 8: a longer length prefix per link, at most
    for served, link in enumerate(sorted(links, key=lambda link: len(link.stack_trace.encode()))):
        link.stack_trace = cut(link.stack_trace, room // (len(links) - served))
        room -= len(link.stack_trace.encode())


def encode_attributes(failure: Failure, payload_converter: PayloadConverter) -> None:
    """Move each link's message and trace into its `encoded_attributes`, as the SDK's own encoding does."""
    for link in chain(failure):
        if not link.HasField("encoded_attributes"):
            attributes = {"message": link.message, "stack_trace": link.stack_trace}
            link.encoded_attributes.CopyFrom(payload_converter.to_payloads([attributes])[0])
            link.message, link.stack_trace = "Encoded failure", ""


class FittedFailures(DefaultFailureConverter):
    """The SDK's failure converter with the two rules above, and with message and trace encoded when `ENCODE`.

    The SDK converts each cause by calling `to_failure` again, and its own encoding (`encode_common_attributes`)
    runs inside each of those calls, before the whole chain exists to be fitted. So that encoding is off here: the
    outermost call fits the finished chain, then encodes it. The SDK's `from_failure` reads the result as its own.
    """

    ENCODE = False

    def __init__(self) -> None:
        super().__init__()
        self._converting = threading.local()  # workflows convert failures on their own threads

    def to_failure(self, exception: BaseException, payload_converter: PayloadConverter, failure: Failure) -> None:
        """See `DefaultFailureConverter.to_failure` (which calls back here for each cause)."""
        if isinstance(exception, EXPECTED_FAILURES):
            exception = exception.with_traceback(None)  # raised and caught already: nothing reads it after this
        if getattr(self._converting, "chain", False):
            super().to_failure(exception, payload_converter, failure)  # a cause: the outermost call fits it
            return
        self._converting.chain = True
        try:
            super().to_failure(exception, payload_converter, failure)
        finally:
            self._converting.chain = False
        fit(failure, FAILURE_BYTES - ENCODING_ROOM if self.ENCODE else FAILURE_BYTES)
        if self.ENCODE:
            encode_attributes(failure, payload_converter)


class EncodedFittedFailures(FittedFailures):
    """The same, with message and stack trace encoded (encryption on)."""

    ENCODE = True
