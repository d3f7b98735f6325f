"""An agent's final answer checked against its `output_schema` (JSON Schema); what a loop does with the verdict
(correct once, then fail) is tools/final_answer.py.

`$ref`s resolve only inside the schema itself (`OFFLINE`): the agents file's loader refuses a schema
with one that does not (`reference_problems`), and `check_output` turns any schema that still cannot be
used into `OutputSchemaUnusable`, a run failure, never an exception that would fail workflow tasks forever.
"""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema
import referencing
import referencing.exceptions
import referencing.jsonschema
from jsonschema.protocols import Validator
from jsonschema_specifications import REGISTRY as BUNDLED_SCHEMAS
from temporalio.workflow import NondeterminismError

from models.errors import OutputSchemaUnusable

_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)

OFFLINE: referencing.Registry[Any] = referencing.Registry()
"""Where a `$ref` may lead outside the schema: nowhere that needs a fetch (jsonschema adds its bundled meta-schemas).

jsonschema's default registry fetches unknown `http(s)://` references (with only a deprecation warning).
A worker must not: the check runs inside workflow code, which has to be deterministic and offline, and a
remote schema could change or vanish between a run's start and its replay. So a schema must carry what it
references (`$defs`), and the loader says so at start instead of the run failing later.
"""

SHALLOW_DEPTH = 8
"""An answer nesting deeper than this that exhausts the stack on validation is blamed, not the schema.

A shallower answer cannot: then the schema's `$ref`s loop (e.g. `{"$ref": "#"}`), which no answer can pass.
"""

PROBES: tuple[Any, ...] = (None, True, 0, "", [], {})
"""One answer of each JSON type, validated at load to see that the schema can check anything at all."""

REFERENCE_KEYWORDS = ("$ref", "$dynamicRef")
"""Keywords whose value is a reference resolved on validation (`$dynamicRef` first resolves like `$ref`)."""


def output_validator(schema: dict[str, Any]) -> Validator:
    """The validator of `schema`'s dialect (2020-12 when it names none), resolving references offline only."""
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    return cls(schema, registry=OFFLINE)


def schema_problems(schema: dict[str, Any]) -> list[str]:
    """Why a valid JSON Schema still cannot check answers, one message each: [] when it can (checked at load)."""
    return reference_problems(schema) or [p for p in [_probe_problem(schema)] if p is not None]


def _probe_problem(schema: dict[str, Any]) -> str | None:
    """Validate the simplest answers once: a `$ref` loop at the root (`{"$ref": "#"}`) shows as a RecursionError.

    Loops reached only through an answer's members (a property that refers to itself) are left to
    `check_output`, which fails the run then.
    """
    validator = output_validator(schema)
    for probe in PROBES:
        try:
            for _ in validator.iter_errors(probe):
                pass
        except RecursionError:
            return "$refs loop without descending into the answer, so no answer can be checked"
        except Exception as exc:
            return f"cannot check an answer ({type(exc).__name__}: {str(exc)[:200]})"
    return None


def reference_problems(schema: dict[str, Any]) -> list[str]:
    """One message per `$ref` (or `$dynamicRef`) of a valid `schema` that does not resolve; [] when all do.

    Every subschema is visited, not only those one answer reaches at validation, so a reference that
    would fail only on some answers fails the load instead. Targets outside the schema's subschemas
    (a pointer into an unknown keyword) are visited too, once each.
    """
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    dialect = cls.ID_OF(cls.META_SCHEMA) or "urn:unknown-dialect"
    specification = referencing.jsonschema.specification_with(dialect, default=referencing.Specification.OPAQUE)
    root = specification.create_resource(schema)
    inside = _nodes(schema)
    pending = [(root, BUNDLED_SCHEMAS.combine(OFFLINE).resolver_with_root(root))]
    visited: set[int] = set()
    problems: list[str] = []
    while pending:
        resource, resolver = pending.pop()
        if id(resource.contents) in visited:
            continue
        visited.add(id(resource.contents))
        pending += [(sub, resolver.in_subresource(sub)) for sub in resource.subresources()]
        if not isinstance(resource.contents, dict):
            continue
        for keyword in REFERENCE_KEYWORDS:
            ref = resource.contents.get(keyword)
            if not isinstance(ref, str):
                continue
            try:
                target = resolver.lookup(ref)
            except referencing.exceptions.Unresolvable as exc:
                problems.append(f"{keyword} {ref!r} {_unresolved(ref, exc)}")
                continue
            if id(target.contents) in inside:
                pending.append((specification.create_resource(target.contents), target.resolver))
    return problems


def _nodes(value: Any) -> set[int]:
    """The ids of every object and array in a JSON value: what is part of the schema, and not a bundled meta-schema."""
    found: set[int] = set()
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict | list):
            found.add(id(node))
            stack += node.values() if isinstance(node, dict) else node
    return found


def _unresolved(ref: str, exc: referencing.exceptions.Unresolvable) -> str:
    """Why `ref` does not resolve, and what to do about it, for a load error."""
    if isinstance(exc, referencing.exceptions.PointerToNowhere):
        return "points to nothing in the schema (define what it names, e.g. under $defs, or fix the $ref)"
    if isinstance(exc, referencing.exceptions.NoSuchAnchor | referencing.exceptions.InvalidAnchor):
        return "names an anchor the schema does not define (add it with $anchor, or fix the $ref)"
    if ref.lower().startswith(("http://", "https://")):
        return "is remote: workers never fetch schemas (copy what it defines into this schema's $defs)"
    return "names another document: an output_schema must be self-contained (copy what it defines into its $defs)"


def check_output(text: str, schema: dict[str, Any], agent: str | None = None) -> tuple[Any, str | None]:
    """(the parsed JSON, None) when `text` validates against `schema`, else (None, the problems).

    `OutputSchemaUnusable` (a run failure) when the schema itself cannot check it; `agent` names it then.
    """
    raw = text.strip()
    if match := _FENCE.match(raw):
        raw = match.group(1)
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        return None, f"not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
    except RecursionError:  # the model's text, not the schema: like any bad answer, it goes back to the model
        return None, "JSON nested too deeply to read; answer with flatter JSON"
    try:
        errors = sorted(output_validator(schema).iter_errors(value), key=lambda e: list(e.absolute_path))
    except RecursionError as exc:
        if (depth := _depth(value)) > SHALLOW_DEPTH:
            return None, f"JSON nested {depth} levels deep, too deep to check; answer with flatter JSON"
        raise schema_unusable(agent, exc) from None
    except NondeterminismError:  # a sandbox restriction is a bug of this code: a fixed worker resumes the run
        raise
    except Exception as exc:
        # A schema the start-up checks did not catch (pinned by a run before they existed, a `$ref` loop, a
        # built-in agent's schema): raised from workflow code, any other exception would fail the workflow
        # task again on every retry and wedge the run. The model cannot fix the schema, so the run fails.
        raise schema_unusable(agent, exc) from None
    if errors:
        return None, "; ".join(f"{'.'.join(map(str, e.absolute_path)) or 'answer'}: {e.message}" for e in errors)
    return value, None


def _depth(value: Any) -> int:
    """How deeply a JSON value nests objects and arrays (iteratively: the value may be deeper than the stack)."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        if isinstance(node, dict | list):
            stack += [(child, level + 1) for child in (node.values() if isinstance(node, dict) else node)]
    return deepest


def schema_unusable(agent: str | None, exc: Exception) -> OutputSchemaUnusable:
    """The run failure for a schema that cannot check an answer, saying why in one line."""
    if isinstance(exc, referencing.exceptions.Unresolvable):
        why = f"a $ref does not resolve: {exc.ref!r}"
    elif isinstance(exc, RecursionError):
        why = "its $refs loop without descending into the answer"
    else:
        why = f"{type(exc).__name__}: {str(exc)[:200]}"
    whose = f" of agent {agent!r}" if agent else ""
    return OutputSchemaUnusable(f"the output_schema{whose} cannot check an answer ({why}): fix the schema")
