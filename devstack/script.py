"""The scripted model's script: what the model answers, per agent or per prompt, in TOML (or JSON).

```toml
# A reply of the `support` agent per model call, in order: turn 1 answers its first call, and so on.
[[agents.support.turns]]
text = "Let me look that order up."
tool_calls = [{ tool = "order_total", arguments = { order_id = "A1" } }]

[[agents.support.turns]]
text = "Order A1 comes to 51 euros."

# Runs whose prompt matches (a Python regular expression, searched), whatever the agent; first match wins.
[[prompts]]
match = "(?i)refund"
agent = "support"                     # optional: only this agent's calls
turns = [
  { tool_calls = [{ tool = "crm__refund_order" }] },   # no arguments: made from the tool's JSON Schema
  { output = { refunded = true } },                      # a structured answer (sent as JSON text)
]
```

A turn is `text`, `output` (any JSON value, for agents with an `output_schema`) or `tool_calls`, or text
with tool calls. The n-th model call of a conversation gets turn n, counted from the model's replies
already in the conversation (so a retried call gets the same turn). `[[prompts]]` entries are tried
first, in file order, then `[agents.NAME]`. What the scripted model does with calls no entry matches,
and after an entry's last turn, is `devstack/dev_model.py`'s business. The same file drives the test kit.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from models.errors import ConfigError


class ScriptInvalid(ConfigError):
    """A script file that does not parse or validate; one line per problem, each naming the file and entry."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class ToolCallStep(BaseModel):
    """One tool call in a turn."""

    model_config = ConfigDict(extra="forbid")
    tool: str = Field(min_length=1)
    """The tool's name as the model is offered it (MCP tools: `<server>__<tool>`)."""
    arguments: dict[str, Any] | None = None
    """None: made from the tool's JSON Schema, as for an unscripted agent (devstack/example_values.py)."""


class Turn(BaseModel):
    """One reply of the model."""

    model_config = ConfigDict(extra="forbid")
    text: str = ""
    output: Any = None
    """A structured final answer, sent as its JSON text (for agents with an `output_schema`)."""
    tool_calls: list[ToolCallStep] = Field(default_factory=list)

    @model_validator(mode="after")
    def _says_something(self) -> Turn:
        if self.output is not None and self.text:
            raise ValueError("give text or output, not both")
        if not (self.text or self.output is not None or self.tool_calls):
            raise ValueError("give text, output or tool_calls")
        return self

    @property
    def answer(self) -> str:
        """The reply's text: `text`, or `output` as JSON."""
        return json.dumps(self.output) if self.output is not None else self.text


class AgentScript(BaseModel):
    """`[agents.NAME]`: the turns of every conversation of that agent."""

    model_config = ConfigDict(extra="forbid")
    turns: list[Turn] = Field(min_length=1)


class PromptScript(BaseModel):
    """`[[prompts]]`: the turns of conversations whose prompt matches."""

    model_config = ConfigDict(extra="forbid")
    match: str = Field(min_length=1)
    """A Python regular expression, searched in the run's prompt (the conversation's first user message)."""
    agent: str | None = None
    """Only this agent's conversations; None: any agent's."""
    turns: list[Turn] = Field(min_length=1)

    @field_validator("match")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a regular expression ({exc})") from None
        return value

    def matches(self, agent: str | None, prompt: str) -> bool:
        """Whether this entry answers `agent`'s conversation that began with `prompt`."""
        return (self.agent is None or self.agent == agent) and re.search(self.match, prompt) is not None


class Script(BaseModel):
    """A whole script file."""

    model_config = ConfigDict(extra="forbid")
    agents: dict[str, AgentScript] = Field(default_factory=dict)
    prompts: list[PromptScript] = Field(default_factory=list)

    def entry_for(self, agent: str | None, prompt: str) -> tuple[str, list[Turn]] | None:
        """The entry that answers this conversation, as (its name in messages, its turns); None if none does."""
        for number, entry in enumerate(self.prompts, 1):
            if entry.matches(agent, prompt):
                return f"[[prompts]] #{number}", entry.turns
        if agent is not None and agent in self.agents:
            return f"[agents.{agent}]", self.agents[agent].turns
        return None

    def unknown_agents(self, known: set[str]) -> list[str]:
        """Agents the script names that `known` lacks, each as `(entry, name)` text for a message."""
        named = [(f"[agents.{name}]", name) for name in self.agents]
        named += [(f"[[prompts]] #{n}", p.agent) for n, p in enumerate(self.prompts, 1) if p.agent is not None]
        return [f"{entry}: no agent named {name!r}" for entry, name in named if name not in known]


def load_script(path: str | Path, agents: set[str] | None = None) -> Script:
    """Read and validate a script (`.json`: JSON, anything else: TOML); `agents`: the names it may use.

    Raises ScriptInvalid with one line per problem, each `FILE: ENTRY: what is wrong`.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        raw = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except OSError as exc:
        raise ScriptInvalid([f"{path}: cannot read the script: {exc.strerror or exc}"]) from None
    except (ValueError, tomllib.TOMLDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise ScriptInvalid([f"{path}: not valid {'JSON' if path.suffix == '.json' else 'TOML'}: {exc}"]) from None
    try:
        script = Script.model_validate(raw)
    except ValidationError as exc:
        raise ScriptInvalid(
            [f"{path}: {where(e['loc'])}: {e['msg'].removeprefix('Value error, ')}" for e in exc.errors()]
        ) from None
    problems = script.unknown_agents(agents) if agents is not None else []
    if problems:
        known = ", ".join(sorted(agents or ()))
        raise ScriptInvalid([f"{path}: {p} (agents: {known})" for p in problems])
    return script


def where(loc: tuple[Any, ...]) -> str:
    """A validation error's location as the file writes it: `[agents.support] turns[2].tool_calls[1].tool`."""
    parts = list(loc)
    if parts[:1] == ["agents"] and len(parts) > 1:
        head, parts = f"[agents.{parts[1]}]", parts[2:]
    elif parts[:1] == ["prompts"] and len(parts) > 1 and isinstance(parts[1], int):
        head, parts = f"[[prompts]] #{parts[1] + 1}", parts[2:]
    else:
        return ".".join(str(p) for p in parts) or "(top level)"
    rest = ""
    for part in parts:
        if isinstance(part, int):
            rest += f"[{part + 1}]"  # counted from 1, as turns are
        else:
            rest += f".{part}" if rest else str(part)
    return f"{head} {rest}".strip()
