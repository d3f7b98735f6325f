"""Failures a caller caused are one line; anything else keeps the stack trace that explains it."""

from __future__ import annotations

import base64

from temporalio.api.failure.v1 import Failure
from temporalio.exceptions import ApplicationError

from config.settings import Settings
from models.errors import InvalidInput, NotAnApprover
from payloads.converter import data_converter
from payloads.failures import FAILURE_BYTES, chain


def failure_of(exc: BaseException, settings: Settings) -> Failure:
    try:
        raise exc
    except BaseException as raised:
        failure = Failure()
        converter = data_converter(settings)
        converter.failure_converter.to_failure(raised, converter.payload_converter, failure)
        return failure


def test_expected_failures_carry_no_stack_trace():
    settings = Settings.from_env({})
    assert failure_of(InvalidInput("prompt: too short"), settings).stack_trace == ""
    assert failure_of(NotAnApprover("mallory may not decide"), settings).stack_trace == ""


def test_other_failures_keep_theirs():
    failure = failure_of(ZeroDivisionError("division by zero"), Settings.from_env({}))
    assert "test_failures.py" in failure.stack_trace and failure.message == "division by zero"


def test_an_expected_failure_caused_by_a_bug_keeps_the_bug_s_trace():
    try:
        try:
            raise KeyError("missing")
        except KeyError as bug:
            raise InvalidInput("input: unreadable") from bug
    except InvalidInput as exc:
        failure = failure_of(exc, Settings.from_env({}))
    assert failure.stack_trace == "" and "test_failures.py" in failure.cause.stack_trace


# --- every failure fits the server's 4 KB retry limit, keeping where it was raised ----------------------


def deep_error(depth: int, message: str, cause: BaseException | None = None) -> BaseException:
    """An exception raised `depth` frames down (an SDK's plumbing), chained to `cause`.

    The calls alternate between two functions: Python's traceback folds a run of identical frames into one line.
    """

    def calls(n: int) -> None:
        if n:
            calls_on(n - 1)
        raise RuntimeError(message) from cause

    def calls_on(n: int) -> None:
        calls(n)

    try:
        calls(depth)
    except RuntimeError as exc:
        return exc
    raise AssertionError("unreachable")


def test_a_deep_chained_failure_fits_and_keeps_each_raise_site():
    exc = deep_error(40, "outer: the stream failed", deep_error(60, "inner: server_error"))
    failure = failure_of(exc, Settings.from_env({}))
    assert failure.ByteSize() <= FAILURE_BYTES < 4096  # the server keeps up to 4 KB for the next attempt
    for link in chain(failure):
        assert "raise RuntimeError(message) from cause" in link.stack_trace.splitlines()[-1]  # the innermost frame
    assert "outer lines cut to fit Temporal's failure size limit" in failure.stack_trace
    assert [link.message for link in chain(failure)] == ["outer: the stream failed", "inner: server_error"]


def test_a_small_failure_is_left_whole():
    exc = deep_error(2, "shallow")
    failure = failure_of(exc, Settings.from_env({}))
    assert "cut to fit" not in failure.stack_trace and failure.stack_trace.count(", in calls\n") == 3


async def test_an_encrypted_failure_is_fitted_before_it_is_encoded():
    env = {"PAYLOAD_ENCRYPTION_KEY": base64.b64encode(b"k" * 32).decode()}
    settings = Settings.from_env(env)
    exc = deep_error(40, "outer", deep_error(60, "inner"))
    failure = failure_of(exc, settings)
    assert failure.message == "Encoded failure" and failure.stack_trace == ""
    converter = data_converter(settings)
    assert converter.payload_codec is not None
    await converter.payload_codec.encode_failure(failure)  # encrypted, as the worker sends it
    assert failure.ByteSize() <= FAILURE_BYTES
    await converter.payload_codec.decode_failure(failure)
    decoded = converter.failure_converter.from_failure(failure, converter.payload_converter)
    assert str(decoded) == "RuntimeError: outer" and str(decoded.__cause__) == "RuntimeError: inner"
    assert isinstance(decoded, ApplicationError) and "cut to fit" in (
        decoded.failure.stack_trace if decoded.failure else ""
    )
