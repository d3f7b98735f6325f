"""Failures a caller caused are one line; anything else keeps the stack trace that explains it."""

from __future__ import annotations

from temporalio.api.failure.v1 import Failure

from config.settings import Settings
from models.errors import InvalidInput, NotAnApprover
from payloads.converter import data_converter


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
