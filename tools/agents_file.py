"""The agents file (`AGENTS_FILE`): users' agents and MCP servers in TOML, parsed and checked with every problem kept.

```toml
[agents.support]
description = "Answers questions about orders"
instructions = "You help customers with their orders."
tools = ["calculator", "mcp:crm", "mcp:billing/refund"]
output_schema = "schemas/refund.json"      # or an inline table

[mcp_servers.crm]
command = ["python", "crm_server.py"]      # or url = "http://127.0.0.1:9100/mcp"
```

Each problem is one message naming the file, the table (and its line), the agent, tool or server.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import jsonschema
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from models.guardrails import GuardrailPolicy
from models.run import check_model_name
from models.tooling import DEFAULT_MAX_TOOL_CALLS_PER_TURN
from tools.mcp_config import McpServerConfig
from tools.output_check import schema_problems

NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


class AgentTable(BaseModel):
    """One `[agents.NAME]` table."""

    model_config = ConfigDict(extra="forbid")
    description: str = ""
    """One line, shown to the hybrid planner."""
    instructions: str = Field(min_length=1)
    model: str | None = None
    tools: list[str] = Field(default_factory=list)
    read_only: bool = False
    max_turns: int = Field(default=10, ge=1, le=1000)
    max_tool_calls_per_turn: int = Field(default=DEFAULT_MAX_TOOL_CALLS_PER_TURN, ge=1, le=1000)
    """Tool calls of one model reply that run; the rest go back to the model as errors."""
    guardrails: GuardrailPolicy = Field(default_factory=GuardrailPolicy)
    """`[agents.NAME.guardrails]`: circuit breakers and screening (models/guardrails.py)."""
    handoffs: list[str] = Field(default_factory=list, max_length=50)
    """Agents (of this file or built in) this one may hand the conversation to."""
    handoff_context: Literal["full", "summary", "none"] = "full"
    output_schema: str | dict[str, Any] | None = None
    """A JSON Schema file (relative to the agents file) or an inline table."""

    @field_validator("model")
    @classmethod
    def _model(cls, value: str | None) -> str | None:
        return check_model_name(value)


@dataclass
class AgentsFile:
    """What parsed: each agent's table and resolved output schema, and each server's config; problems beside."""

    path: Path
    text: str = ""
    agents: dict[str, AgentTable] = field(default_factory=dict)
    output_schemas: dict[str, dict[str, Any]] = field(default_factory=dict)
    servers: dict[str, McpServerConfig] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def folder(self) -> Path:
        """Where relative paths in the file start."""
        return self.path.parent

    def problem(self, table: str | None, message: str) -> None:
        """Record one problem, prefixed with the file and (when known) the table and its line."""
        where = str(self.path)
        if table is not None:
            line = table_line(self.text, table)
            where += f": [{table}]" + (f" (line {line})" if line else "")
        self.problems.append(f"{where}: {message}")


def table_line(text: str, table: str) -> int | None:
    """The line of `[table]`'s header (tomllib reports lines only for syntax errors)."""
    parts = [re.escape(p) for p in table.split(".")]
    dot = r"[ \t]*\.[ \t]*"
    header = re.compile(r"^[ \t]*\[[ \t]*" + dot.join(f'(?:{p}|"{p}")' for p in parts) + r"[ \t]*\]", re.MULTILINE)
    match = header.search(text)
    return text.count("\n", 0, match.start()) + 1 if match else None


def read_agents_file(path: str | Path) -> AgentsFile:
    """Parse and check the file on its own (no tools resolved yet); problems are in `.problems`."""
    parsed = AgentsFile(Path(path).resolve())
    try:
        parsed.text = parsed.path.read_text(encoding="utf-8")
    except OSError as exc:
        parsed.problem(None, f"cannot read the agents file: {exc.strerror or exc}")
        return parsed
    try:
        raw = tomllib.loads(parsed.text)
    except tomllib.TOMLDecodeError as exc:
        parsed.problem(None, f"TOML syntax error: {exc}")
        return parsed
    _parse_tables(parsed, raw)
    for name, agent in parsed.agents.items():
        if agent.output_schema is not None:
            schema = _output_schema(parsed, name, agent.output_schema)
            if schema is not None:
                parsed.output_schemas[name] = schema
    return parsed


def _parse_tables(parsed: AgentsFile, raw: dict[str, Any]) -> None:
    """Validate each table on its own, so one bad table does not hide the problems of the others."""
    for key in raw:
        if key not in ("agents", "mcp_servers"):
            parsed.problem(
                None, f"unknown top-level key {key!r} (expected [agents.NAME] and [mcp_servers.NAME] tables)"
            )
    sections: tuple[tuple[str, type[BaseModel], dict[str, Any]], ...] = (
        ("agents", AgentTable, parsed.agents),
        ("mcp_servers", McpServerConfig, parsed.servers),
    )
    for section, model, into in sections:
        tables = raw.get(section, {})
        if not isinstance(tables, dict):
            parsed.problem(None, f"{section} must be tables like [{section}.NAME]")
            continue
        for name, table in tables.items():
            where = f"{section}.{name}"
            what = "agent" if section == "agents" else "MCP server"
            if not NAME.match(name):
                parsed.problem(where, f"{what} name {name!r} must match {NAME.pattern}")
                continue
            if not isinstance(table, dict):
                parsed.problem(where, f"{what} {name!r} must be a table")
                continue
            try:
                into[name] = model.model_validate(table)
            except ValidationError as exc:
                for message in validation_messages(exc):
                    parsed.problem(where, f"{what} {name!r}: {message}")
                unknown = {str(e["loc"][0]) for e in exc.errors() if e["type"] == "extra_forbidden" and e["loc"]}
                known = {k: v for k, v in table.items() if k not in unknown}
                if unknown and len(unknown) == len(exc.errors()):
                    into[name] = model.model_validate(known)  # check the rest of the table too


def validation_messages(exc: ValidationError) -> list[str]:
    """One message per pydantic error: unknown keys named as such, the rest by their key."""
    messages = []
    for error in exc.errors():
        loc = ".".join(str(p) for p in error["loc"])
        if error["type"] == "extra_forbidden":
            messages.append(f"unknown key {loc!r}")
        elif loc:
            messages.append(f"{loc}: {error['msg']}")
        else:
            messages.append(error["msg"].removeprefix("Value error, "))
    return messages


def _output_schema(parsed: AgentsFile, agent: str, value: str | dict[str, Any]) -> dict[str, Any] | None:
    where = f"agents.{agent}"
    if isinstance(value, str):
        schema_path = parsed.folder / value
        try:
            schema = json.loads(schema_path.read_text(encoding="utf-8"))
        except OSError as exc:
            parsed.problem(where, f"agent {agent!r}: output_schema file {value!r}: {exc.strerror or exc}")
            return None
        except ValueError as exc:
            parsed.problem(where, f"agent {agent!r}: output_schema file {value!r} is not JSON: {exc}")
            return None
    else:
        schema = value
    if not isinstance(schema, dict):
        parsed.problem(where, f"agent {agent!r}: output_schema must be a JSON object (a JSON Schema)")
        return None
    try:
        jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator).check_schema(schema)
    except jsonschema.SchemaError as exc:
        at = "/".join(str(p) for p in exc.absolute_path) or "(root)"
        parsed.problem(where, f"agent {agent!r}: output_schema is not a valid JSON Schema at {at}: {exc.message}")
        return None
    # A $ref that does not resolve (or loops) would fail each of the agent's runs at its answer: refuse it now.
    unusable = schema_problems(schema)
    named = f"output_schema file {value!r}" if isinstance(value, str) else "output_schema"
    for problem in unusable:
        parsed.problem(where, f"agent {agent!r}: {named}: {problem}")
    return None if unusable else schema
