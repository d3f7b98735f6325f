"""`@tool`: a tool declared by one typed, documented function (built-in tools and users' TOOL_MODULES alike).

The function's name is the tool's name, its docstring the description, its type hints the arguments
(a pydantic model: defaults kept, `Annotated[..., Field(description=...)]` honoured, extra keys refused).
A parameter annotated `ToolContext` is injected at call time and is not part of the schema.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, get_type_hints, overload

import pydantic_core
from pydantic import BaseModel, ConfigDict, TypeAdapter, create_model

from tools.registry import CallInfo, Tool, default_retry

if TYPE_CHECKING:
    from tools.deps import ToolDeps

TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
"""What Anthropic and OpenAI accept as a tool name."""


class ToolDeclarationError(TypeError):
    """A `@tool` function that cannot become a tool; the message names the function and what to change."""


@dataclass(frozen=True)
class ToolContext:
    """What a tool function may ask for besides its arguments: annotate a parameter `ToolContext`."""

    idempotency_key: str
    """The same on every retry of this call: key side effects on it so they happen once."""
    deps: ToolDeps
    """The worker's tool dependencies (built once from its settings)."""
    agent: str
    """The name of the agent making the call."""


@overload
def tool(fn: Callable[..., Any], /) -> Tool: ...


@overload
def tool(
    *,
    effect: str = "write",
    requires_approval: bool = False,
    timeout_seconds: float = 30,
    max_attempts: int = 3,
    name: str | None = None,
) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    effect: str = "write",
    requires_approval: bool = False,
    timeout_seconds: float = 30,
    max_attempts: int = 3,
    name: str | None = None,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Declare the decorated function (sync or async) as a registry `Tool` with this policy."""

    def declare(function: Callable[..., Any]) -> Tool:
        return _declare(function, effect, requires_approval, timeout_seconds, max_attempts, name)

    return declare(fn) if fn is not None else declare


def _declare(
    fn: Callable[..., Any],
    effect: str,
    requires_approval: bool,
    timeout_seconds: float,
    max_attempts: int,
    name: str | None,
) -> Tool:
    where = f"@tool function {getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', fn)!s}"
    if not callable(fn) or isinstance(fn, Tool):
        raise ToolDeclarationError(f"{where}: @tool decorates a function")
    if effect not in ("read", "write"):
        raise ToolDeclarationError(f"{where}: effect must be 'read' or 'write', got {effect!r}")
    if not isinstance(timeout_seconds, int | float) or timeout_seconds <= 0:
        raise ToolDeclarationError(f"{where}: timeout_seconds must be a positive number, got {timeout_seconds!r}")
    if not isinstance(max_attempts, int) or max_attempts < 1:
        raise ToolDeclarationError(f"{where}: max_attempts must be an integer of at least 1, got {max_attempts!r}")
    tool_name = name or fn.__name__
    if not TOOL_NAME.match(tool_name):
        raise ToolDeclarationError(f"{where}: tool name {tool_name!r} must match {TOOL_NAME.pattern}")
    description = inspect.getdoc(fn)
    if not description:
        raise ToolDeclarationError(f"{where}: add a docstring; it is the description the model reads")
    args, context_param = _args_model(fn, tool_name, where)
    return Tool(
        name=tool_name,
        description=description,
        args=args,
        handler=_handler(fn, args, context_param),
        effect=effect,  # type: ignore[arg-type]  # checked above
        requires_approval=requires_approval,
        timeout=timedelta(seconds=timeout_seconds),
        retry=default_retry(max_attempts),
    )


def _args_model(fn: Callable[..., Any], tool_name: str, where: str) -> tuple[type[BaseModel], str | None]:
    """The pydantic model of `fn`'s parameters, and the name of its ToolContext parameter if any."""
    try:
        hints = _parameter_hints(fn)
    except Exception as exc:  # a forward reference that does not resolve at runtime
        raise ToolDeclarationError(f"{where}: cannot resolve its type hints ({type(exc).__name__}: {exc})") from None
    fields: dict[str, Any] = {}
    context_param = None
    for param in inspect.signature(fn).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD, param.POSITIONAL_ONLY):
            raise ToolDeclarationError(f"{where}: parameter {param.name!r}: only named parameters are supported")
        if param.name not in hints:
            raise ToolDeclarationError(f"{where}: parameter {param.name!r} needs a type hint")
        hint = hints[param.name]
        if hint is ToolContext:
            context_param = param.name
            continue
        try:
            TypeAdapter(hint).json_schema()
        except Exception as exc:
            raise ToolDeclarationError(
                f"{where}: parameter {param.name!r}: type {hint!r} is not supported ({type(exc).__name__})"
            ) from None
        fields[param.name] = (hint, ... if param.default is param.empty else param.default)
    model_name = "".join(part.capitalize() for part in re.split(r"[_-]", tool_name)) + "Args"
    try:
        model = create_model(
            model_name, __config__=ConfigDict(extra="forbid"), __doc__=f"Arguments of `{tool_name}`.", **fields
        )
        model.model_json_schema()
    except Exception as exc:
        raise ToolDeclarationError(f"{where}: its parameters do not make an args model ({exc})") from None
    return model, context_param


def _parameter_hints(fn: Callable[..., Any]) -> dict[str, Any]:
    """The parameters' resolved type hints; the return hint is not needed, so it may name anything."""
    holder = SimpleNamespace(
        __annotations__={k: v for k, v in getattr(fn, "__annotations__", {}).items() if k != "return"}
    )
    return get_type_hints(holder, globalns=getattr(fn, "__globals__", {}), include_extras=True)


def _handler(fn: Callable[..., Any], args_model: type[BaseModel], context_param: str | None) -> Any:
    """`handler(args, deps, call)` calling `fn` with the validated arguments (in a thread when `fn` is sync)."""
    names = list(args_model.model_fields)
    is_async = inspect.iscoroutinefunction(fn)

    async def handler(args: BaseModel, deps: ToolDeps, call: CallInfo) -> str:
        kwargs = {n: getattr(args, n) for n in names}
        if context_param is not None:
            kwargs[context_param] = ToolContext(idempotency_key=call.idempotency_key, deps=deps, agent=call.agent)
        result = await fn(**kwargs) if is_async else await asyncio.to_thread(fn, **kwargs)
        return render(result)

    handler.__name__ = handler.__qualname__ = f"{fn.__name__}_handler"
    handler.__doc__ = f"Handler of `{fn.__name__}`."
    return handler


def render(result: Any) -> str:
    """What the model is shown: text as it is, anything else (model, dict, list, number) as JSON."""
    if isinstance(result, str):
        return result
    if isinstance(result, BaseModel):
        result = result.model_dump(mode="json")
    return json.dumps(result, default=pydantic_core.to_jsonable_python)
