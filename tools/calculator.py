"""`calculator`: arithmetic over an AST whitelist, never `eval`."""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import Field

from models.errors import ToolInputError
from tools.decorator import tool

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_MAX_EXPONENT = 1000
_MAX_MAGNITUDE = 1e100


def evaluate(expression: str) -> float | int:
    """Evaluate + - * / // % ** and parentheses over numbers; anything else is a ToolInputError."""
    try:
        tree = _parse(expression.strip())
    except SyntaxError as exc:
        raise ToolInputError(f"not an arithmetic expression: {expression!r} ({exc.msg})") from None
    except (ValueError, RecursionError, MemoryError) as exc:  # NUL bytes, absurd nesting
        raise ToolInputError(f"not an arithmetic expression: {expression!r} ({type(exc).__name__})") from None
    try:
        return _eval(tree.body)
    except ZeroDivisionError:
        raise ToolInputError("division by zero") from None
    except OverflowError:  # e.g. 10.0 ** 400
        raise ToolInputError("result is out of range") from None
    except (ArithmeticError, ValueError, RecursionError) as exc:  # every numeric failure is the model's to fix
        raise ToolInputError(f"cannot compute {expression!r}: {exc or type(exc).__name__}") from None


def _parse(expression: str) -> ast.Expression:
    """`ast.parse`, retried past CPython 3.11's thread-unsafe AST depth check (gh-106905, fixed in 3.12).

    A traceback formatted on another thread parses its line too and can move the interpreter-wide counter mid-way;
    parsing is pure, so a retry gives the exact answer instead of failing the tool with a SystemError.
    """
    for attempt in range(3):
        try:
            return ast.parse(expression, mode="eval")
        except SystemError as exc:
            if "recursion depth mismatch" not in str(exc) or attempt == 2:
                raise
    raise AssertionError("unreachable")


def _eval(node: ast.AST) -> float | int:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        result: float | int = _UNARY[type(node.op)](_eval(node.operand))
        return result
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > _MAX_EXPONENT:
            raise ToolInputError(f"exponent {right} is too large (limit {_MAX_EXPONENT})")
        value: float | int | complex = _BINARY[type(node.op)](left, right)
        if isinstance(value, complex) or abs(value) > _MAX_MAGNITUDE:
            raise ToolInputError("result is out of range")
        return value
    raise ToolInputError(f"unsupported element {type(node).__name__}: only numbers, + - * / // % ** and parentheses")


def format_number(value: float | int) -> str:
    """Integers without a trailing .0, floats rounded to 10 significant places."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return str(int(value))
    return f"{value:.10g}" if isinstance(value, float) else str(value)


@tool(effect="read", timeout_seconds=10)  # fast and in-process: runs as a local activity (workflows/tool_plan.py)
def calculator(
    expression: Annotated[
        str, Field(min_length=1, max_length=500, description="Arithmetic, e.g. '6000 * 0.2' or '(3 + 4) ** 2'")
    ],
) -> str:
    """Evaluate an arithmetic expression exactly. Use it for every calculation."""
    return format_number(evaluate(expression))
