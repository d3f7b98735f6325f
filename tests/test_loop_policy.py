"""The one agent-loop policy all three loops call (pattern B's `SteeredLoop`, the Claude and Agents SDK engines), as
plain functions over typed values: no server, no SDK."""

from __future__ import annotations

import json

import pytest

from models.budget import estimate_call_input, estimate_tokens, input_estimate, usable_count
from models.conversation import Conversation, ToolCall, ToolOutcome, arguments_problem
from models.guardrails import GuardrailPolicy
from tools.catalog import REGISTRY
from tools.final_answer import Accepted, Rejected, SendBack, instructions_for, judge_answer
from tools.guardrails import CircuitBreakers, call_key
from tools.handoffs import black_box_refusal, refusal, summary_opening, work_so_far
from tools.next_step import EMPTY_REPLY_NUDGE, FinalText, Nudge, RunCalls, Stop, after_reply, refused_calls
from tools.registry import AgentProfile, check_call

SCHEMA = {"type": "object", "properties": {"total": {"type": "number"}}, "required": ["total"]}
ASSISTANT = REGISTRY.agents["assistant"]
FRONT = AgentProfile(name="front", instructions="Front.", tools=("calculator",), handoffs=("billing",))


def calc(expression: str, id: str = "c1") -> ToolCall:
    return ToolCall(id=id, name="calculator", arguments={"expression": expression})


# -- after a reply -----------------------------------------------------------------------------------------------


def test_after_a_reply_the_loop_runs_calls_answers_or_is_nudged():
    guard = CircuitBreakers(GuardrailPolicy())
    assert after_reply(guard, REGISTRY, ASSISTANT, "", [calc("1 + 1")]) == RunCalls([calc("1 + 1")])
    assert after_reply(guard, REGISTRY, ASSISTANT, "42", []) == FinalText("42")
    assert after_reply(guard, REGISTRY, ASSISTANT, "  ", []) == Nudge(EMPTY_REPLY_NUDGE)
    # Without breakers (loops recorded before them) an empty reply is an answer and nothing stops the loop.
    assert after_reply(None, REGISTRY, ASSISTANT, "", []) == FinalText("")


def test_replies_of_refused_calls_or_nothing_are_no_progress_and_the_third_stops_the_loop():
    guard = CircuitBreakers(GuardrailPolicy())
    unknown = ToolCall(id="x", name="delete_everything")
    assert after_reply(guard, REGISTRY, ASSISTANT, "", [unknown]) == RunCalls([unknown])
    assert after_reply(guard, REGISTRY, ASSISTANT, "", []) == Nudge()
    stop = after_reply(guard, REGISTRY, ASSISTANT, "", [calc("1 +", "a"), ToolCall(id="b", name="calculator")])
    assert isinstance(stop, RunCalls)  # `1 +` is valid arguments (it fails when it runs): progress
    assert [after_reply(guard, REGISTRY, ASSISTANT, "", [unknown]) for _ in range(3)][-1] == Stop(
        "max_idle_replies: 3 replies in a row made no progress (limit 3)"
    )
    assert Stop("max_idle_replies: 3 replies").rule == "max_idle_replies"


def test_a_handoff_the_agent_may_make_is_not_a_refused_call():
    calls = [ToolCall(id="t", name="transfer_to_billing"), ToolCall(id="u", name="transfer_to_payroll")]
    assert refused_calls(REGISTRY, FRONT, calls) == 1


# -- tool arguments ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ('{"expression": "1"}', None),
        ("", None),
        ('{"expression": ', "the arguments are not JSON (Expecting value at column 16)"),
        ('"6000 *"', "the arguments are a JSON string, not an object of named arguments"),
        ("[1]", "the arguments are a JSON array, not an object of named arguments"),
    ],
)
def test_tool_arguments_are_parsed_one_way_and_unreadable_ones_kept(raw, problem):
    assert arguments_problem(raw) == problem
    call = ToolCall.from_json("c1", "calculator", raw)
    assert call.problem == problem
    assert call.unreadable == (raw if problem else None)
    assert call.arguments == (json.loads(raw or "{}") if problem is None else {})


def test_a_call_with_unreadable_arguments_is_refused_with_the_problem_never_run_with_none():
    call = ToolCall.from_json("c1", "calculator", '"6000 *"')
    check = check_call(REGISTRY, ASSISTANT, call)
    assert check.tool is None and check.reason == "invalid_arguments"
    assert check.error is not None and check.error.startswith(
        "Invalid arguments for 'calculator': the arguments are a JSON string, not an object of named arguments. "
        "Expected schema:"
    )
    # The repeat breaker keys it by what was sent, so two different unreadable calls are two calls.
    assert call_key(call) == 'calculator:{"unparsed":"\\"6000 *\\""}'
    assert call_key(calc("1")) == 'calculator:{"expression":"1"}'


# -- the final answer --------------------------------------------------------------------------------------------


def test_a_final_answer_is_accepted_sent_back_once_then_rejected():
    assert judge_answer("plain text", None, "a", 0) == Accepted("plain text")
    assert judge_answer('```json\n{"total": 3}\n```', SCHEMA, "a", 1) == Accepted({"total": 3})
    sent_back = judge_answer('{"total": "x"}', SCHEMA, "a", 0)
    assert isinstance(sent_back, SendBack) and "'x' is not of type 'number'" in sent_back.problems
    assert sent_back.message.startswith("Your answer does not match the required output schema (total: 'x'")
    rejected = judge_answer('{"total": "x"}', SCHEMA, "a", 1)
    assert isinstance(rejected, Rejected)
    assert rejected.message == (
        "agent 'a' answered twice with output that does not match its output_schema: total: 'x' is not of type 'number'"
    )
    assert instructions_for("Be brief.", None) == "Be brief."
    assert instructions_for("Be brief.", SCHEMA).startswith("Be brief.\n\nYour final answer must be JSON only")


# -- the input estimate ------------------------------------------------------------------------------------------


def test_the_input_estimate_takes_the_best_source_a_loop_has():
    whole = {"system": "s" * 300}
    assert input_estimate(whole=whole, counted=7, measured=500, since=["x"]) == 7  # the provider's count
    assert input_estimate(whole=whole, measured=500, since=["x" * 30]) == 500 + estimate_tokens(["x" * 30])
    assert input_estimate(whole=whole, measured=500) == 500
    assert input_estimate(whole=whole) == estimate_tokens(whole)
    assert [usable_count(v) for v in (12, 0, -1, True, "12", None)] == [12, 0, None, None, None, None]


def test_a_workflow_estimates_from_the_last_measured_reply_or_the_whole_request():
    conversation = Conversation.start("hi")
    conversation.add_assistant_turn("", [calc("1 + 1")])
    conversation.add_tool_results([ToolOutcome(tool_call_id="c1", name="calculator", content="2")])
    tools = [{"name": "calculator"}]
    messages = [m.model_dump(mode="json") for m in conversation.messages]
    assert estimate_call_input(system="s", tools=tools, conversation=conversation) == estimate_tokens(
        {"system": "s", "tools": tools, "messages": messages}
    )
    since = [conversation.messages[-1].model_dump(mode="json")]
    assert estimate_call_input(system="s", tools=tools, conversation=conversation, context_tokens=100) == (
        100 + estimate_tokens(since)
    )


# -- handoffs ----------------------------------------------------------------------------------------------------


def test_a_handoff_is_refused_in_the_same_words_wherever_it_is_made():
    offered = "Error: agent 'front' cannot hand off to 'payroll' (it can hand off to: billing)."
    assert refusal(FRONT, "payroll") == offered
    assert black_box_refusal(FRONT, "payroll", pinned=True, target_model=None, engine="openai") == offered
    assert refusal(FRONT, "billing") is None
    assert black_box_refusal(FRONT, "billing", pinned=False, target_model=None, engine="anthropic") == (
        "Error: agent 'billing' was not pinned for this black box."
    )
    assert black_box_refusal(FRONT, "billing", pinned=True, target_model="openai:gpt-5", engine="anthropic") == (
        "Error: agent 'billing' runs on 'openai:gpt-5'; this black box runs on Claude and cannot hand off to "
        "another provider's agent."
    )
    assert "runs on the OpenAI Agents SDK" in (
        black_box_refusal(FRONT, "billing", pinned=True, target_model="anthropic:claude-sonnet-5-5", engine="openai")
        or ""
    )
    assert black_box_refusal(FRONT, "billing", pinned=True, target_model="openai:gpt-5", engine="openai") is None


def test_a_summary_handoff_gives_the_request_the_reason_the_work_and_the_last_words():
    conversation = Conversation.start("What is 2 * 21?")
    conversation.add_assistant_turn("Let me see.", [calc("2 * 21"), ToolCall(id="t", name="transfer_to_billing")])
    conversation.add_tool_results(
        [
            ToolOutcome(tool_call_id="c1", name="calculator", content="42"),
            ToolOutcome(tool_call_id="t", name="transfer_to_billing", content="Transferred to billing."),
        ]
    )
    work, last_text = work_so_far(conversation)
    assert (work, last_text) == (["calculator(expression='2 * 21') -> ok: 42"], "Let me see.")
    assert summary_opening("What is 2 * 21?", "front", "payment", work, last_text) == (
        "What is 2 * 21?\n\n(Handed over by agent front: payment. Work so far: calculator(expression='2 * 21') -> "
        "ok: 42. Its last message: Let me see.)"
    )
    assert summary_opening("Q", "front", "r", [], "").endswith("Work so far: nothing yet. Its last message: (none))")
