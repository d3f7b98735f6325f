"""The dev loop's scripted model: the user's script first, then the demo's roles, then every agent's tools once.

One model call (either provider's wire format, `devstack/model_call.py`) is answered by the first that applies:

1. **the user's script** (`devstack/script.py`): the first `[[prompts]]` entry whose pattern the prompt
   matches, else `[agents.NAME]` of the agent the call is for. The n-th call of a conversation gets turn n;
   after the last turn the model closes as in 3;
2. **the demo's roles** (`devstack/scripted_model.py`) for the built-in agents (`assistant`, `researcher`,
   the hybrid's `planner`, `budget` and `analysis`) and for context summaries: what `./scripts/demo` shows;
3. **any other agent**: its first call calls every tool it is offered once, in the order offered (handoff
   tools aside), with arguments made from each tool's JSON Schema (`devstack/example_values.py`); the next
   call answers with a line naming each tool's result, or, for an agent with an `output_schema`, with a JSON
   value made from that schema. So an unscripted agent exercises all its tools, approvals included.

A call is for the agent whose instructions its system prompt begins with (the longest such, as one agent's
instructions may begin with another's; the planner by the opening of its instructions, which go on to list
the specialists of the worker that sends them, quoting their descriptions).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from activities.summarise import SUMMARY_INSTRUCTIONS
from devstack.example_values import example_value
from devstack.model_call import ModelCall
from devstack.script import Script, Turn
from devstack.scripted_http import Fault, Reply, Responder, Step
from devstack.scripted_model import PLANNER_MARK, respond
from tools.agents_file import read_agents_file
from tools.catalog import REGISTRY
from tools.pinning import PLANNER, TRANSFER_PREFIX

log = logging.getLogger(__name__)

PREFIX = "(scripted model)"
"""Marks the replies the model makes up itself, so nobody mistakes them for a real model's."""
RESULT_CHARS = 80
"""How much of each tool result the closing line quotes."""


@dataclass(frozen=True)
class KnownAgent:
    """An agent the model can recognise: its name, what its system prompt contains, its output schema."""

    name: str
    fingerprint: str
    output_schema: dict[str, Any] | None = None


class AgentCatalog:
    """The agents a worker may run: the built-ins and the agents file's."""

    def __init__(self, agents: Iterable[KnownAgent]) -> None:
        self.agents = {a.name: a for a in agents}

    @classmethod
    def load(cls, agents_file: str | None = None) -> AgentCatalog:
        """The built-in agents and those `agents_file` defines (its problems are the worker's to report)."""
        known = [
            KnownAgent(a.name, PLANNER_MARK if a.name == PLANNER else a.instructions.strip(), a.output_schema)
            for a in REGISTRY.agents.values()
        ]
        if agents_file:
            parsed = read_agents_file(agents_file)
            for name, table in parsed.agents.items():
                known.append(KnownAgent(name, table.instructions.strip(), parsed.output_schemas.get(name)))
        return cls(known)

    @property
    def names(self) -> set[str]:
        """Every agent's name."""
        return set(self.agents)

    def identify(self, system: str) -> KnownAgent | None:
        """The agent whose instructions `system` begins with (what follows them: an output schema's note)."""
        system = system.lstrip()
        found = [a for a in self.agents.values() if a.fingerprint and system.startswith(a.fingerprint)]
        return max(found, key=lambda a: len(a.fingerprint), default=None)


BUILT_IN = frozenset(REGISTRY.agents)
"""The agents the demo's roles play."""


class DevModel:
    """Answers model calls as described above; `observe` hears one line per call saying who answered it."""

    def __init__(
        self, catalog: AgentCatalog, script: Script | None = None, observe: Callable[[str], None] | None = None
    ) -> None:
        self.catalog = catalog
        self.script = script or Script()
        self.observe = observe or (lambda line: None)

    def anthropic(self) -> Responder:
        """The responder for `FakeAnthropic`."""
        return lambda body: self.reply(ModelCall.from_anthropic(body))

    def openai(self) -> Responder:
        """The responder for `FakeOpenAI`."""
        return lambda body: self.reply(ModelCall.from_openai(body))

    def reply(self, call: ModelCall) -> Step:
        """The model's next turn; a bug here is an HTTP 500 the worker retries, not a dead server thread."""
        try:
            return self._reply(call)
        except Exception as exc:
            log.exception("the scripted model failed")
            self.observe(f"the scripted model failed: {type(exc).__name__}: {exc}")
            return Fault(500, f"scripted model: {type(exc).__name__}: {exc}")

    def _reply(self, call: ModelCall) -> Step:
        if call.system == SUMMARY_INSTRUCTIONS:
            self.observe("a context summary <- the demo's summariser")
            return respond(call.body)
        agent = self.catalog.identify(call.system)
        name = agent.name if agent else None
        who = name or "an unknown agent"
        entry = self.script.entry_for(name, call.prompt)
        if entry is not None:
            where, turns = entry
            if call.replies < len(turns):
                self.observe(f"{who} <- script {where} turn {call.replies + 1} of {len(turns)}")
                return scripted_turn(turns[call.replies], call)
            self.observe(f"{who} <- script {where} is done: closing answer")
            return closing(call, agent)
        if name in BUILT_IN:
            self.observe(f"{who} <- the demo's {name} role")
            return respond(call.body)
        if call.calls or not _callable(call):
            self.observe(f"{who} <- closing answer")
            return closing(call, agent)
        self.observe(f"{who} <- each of its tools once: {', '.join(t.name for t in _callable(call))}")
        return tools_once(call)


def scripted_turn(turn: Turn, call: ModelCall) -> Reply:
    """A script's turn as a reply; a tool call without arguments gets them from the offered tool's schema."""
    schemas = {t.name: t.schema for t in call.tools}
    calls = [
        (step.tool, step.arguments if step.arguments is not None else arguments_for(schemas.get(step.tool)))
        for step in turn.tool_calls
    ]
    return Reply(text=turn.answer, tool_calls=calls)


def tools_once(call: ModelCall) -> Reply:
    """Every offered tool (handoffs aside), once, in the order offered."""
    tools = _callable(call)
    calls = [(t.name, arguments_for(t.schema)) for t in tools]
    return Reply(text=f"{PREFIX} Calling {', '.join(t.name for t in tools)}.", tool_calls=calls)


def closing(call: ModelCall, agent: KnownAgent | None) -> Reply:
    """The final answer: JSON made from the agent's output schema, else a line naming each tool's result."""
    if agent is not None and agent.output_schema is not None:
        return Reply(text=json.dumps(example_value(agent.output_schema)))
    outcomes = []
    for made in call.calls:
        text, failed = call.result_text(made.get("id", ""))
        text = " ".join(text.split())
        text = text if len(text) <= RESULT_CHARS else text[: RESULT_CHARS - 3] + "..."
        outcomes.append(f"{made.get('name')} {'failed' if failed else 'returned'}: {text or '(nothing)'}")
    if not outcomes:
        return Reply(text=f"{PREFIX} Hello! I have no tools to call, so this is all I say.")
    return Reply(text=f"{PREFIX} " + "; ".join(outcomes) + ".")


def arguments_for(schema: dict[str, Any] | None) -> dict[str, Any]:
    """Arguments a tool's schema accepts: its required properties, each with a value of its type."""
    value = example_value(schema) if schema else {}
    return value if isinstance(value, dict) else {}


def _callable(call: ModelCall) -> list[Any]:
    return [t for t in call.tools if not t.name.startswith(TRANSFER_PREFIX)]
