"""What every route shares: JSON errors, the caller from its bearer token, bodies checked against a model."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse

from gateway.tokens import Caller, TokenBook

M = TypeVar("M", bound=BaseModel)

MAX_JSON_DEPTH = 64
"""Deepest nesting of arrays and objects a body may have: far beyond any real input, and well inside what
pydantic, the payload converter and the workflow's own checks handle without hitting recursion limits."""


class ApiError(Exception):
    """An HTTP error with a message a caller can act on (and, for bad input, the field)."""

    def __init__(self, status: int, detail: str, field: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.field = field

    def response(self) -> JSONResponse:
        """The error as JSON (401 also says which scheme to use)."""
        body: dict[str, Any] = {"detail": self.detail}
        if self.field is not None:
            body["field"] = self.field
        headers = {"WWW-Authenticate": "Bearer"} if self.status == 401 else None
        return JSONResponse(body, status_code=self.status, headers=headers)


def caller(request: Request, role: str | None = None) -> Caller:
    """The authenticated caller; 401 without a known token, 403 when it lacks `role`."""
    tokens: TokenBook = request.app.state.tokens
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    found = tokens.authenticate(token.strip()) if scheme.lower() == "bearer" and token.strip() else None
    if found is None:
        raise ApiError(401, "a valid bearer token is required (Authorization: Bearer <token>)")
    if role is not None and not found.may(role):
        raise ApiError(403, f"{found.identity} lacks the {role} role")
    return found


def first_problem(exc: ValidationError, prefix: str = "") -> tuple[str, str]:
    """(field path, message) of every problem, joined, and the first field; unknown fields said plainly."""
    problems, fields = [], []
    for err in exc.errors():
        where = ".".join([prefix, *map(str, err["loc"])] if prefix else map(str, err["loc"])) or "body"
        msg = err["msg"].replace("Extra inputs are not permitted", "unknown field")
        problems.append(f"{where}: {msg}")
        fields.append(where)
    return "; ".join(problems), fields[0]


def nested_deeper_than(value: Any, limit: int) -> bool:
    """Whether `value` has arrays or objects nested more than `limit` deep (iteratively: no recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


async def json_body(request: Request, model: type[M]) -> M:
    """The request's JSON body as `model`; 422 naming the field when it does not fit."""
    too_deep = ApiError(422, f"body: JSON nested deeper than {MAX_JSON_DEPTH} levels", "body")
    try:
        raw = json.loads(await request.body() or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ApiError(422, "body: not valid JSON", "body") from None
    except RecursionError:  # the C decoder stops at the interpreter's recursion limit (about 1000 levels)
        raise too_deep from None
    if isinstance(raw, (dict, list)) and nested_deeper_than(raw, MAX_JSON_DEPTH):
        raise too_deep
    if not isinstance(raw, dict):
        raise ApiError(422, "body: expected a JSON object", "body")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        detail, field = first_problem(exc)
        raise ApiError(422, detail, field) from None


def ok(model: BaseModel | list[Any], status: int = 200) -> JSONResponse:
    """A JSON response of a model (or a list of models)."""
    if isinstance(model, list):
        content: Any = [m.model_dump(mode="json") if isinstance(m, BaseModel) else m for m in model]
    else:
        content = model.model_dump(mode="json")
    return JSONResponse(content, status_code=status)
