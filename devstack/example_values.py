"""A plausible value for a JSON Schema: the scripted model's tool arguments and structured answers.

Required properties only, each with a value of its type: strings "example", numbers 1, booleans true,
enums their first value, arrays one item, objects recursively. Declared bounds are honoured where that is
cheap (`minimum`, `minLength`, `maxLength`, `minItems`, a few `format`s); `pattern` is not, so a tool whose
argument has one may refuse the value, and the model is told, as it would be told of any mistake.
"""

from __future__ import annotations

from typing import Any

MAX_DEPTH = 12
"""Nesting at which a recursive schema (a tree through `$ref`) stops growing: the value there is null."""

FORMATS = {
    "date-time": "2026-01-01T00:00:00Z",
    "date": "2026-01-01",
    "time": "00:00:00Z",
    "email": "user@example.com",
    "uri": "https://example.com",
    "url": "https://example.com",
    "uuid": "00000000-0000-4000-8000-000000000000",
}


def example_value(schema: Any, root: Any = None, depth: int = 0) -> Any:
    """A value `schema` accepts in the common cases; `root` is the document `$ref`s point into."""
    root = schema if root is None else root
    if depth > MAX_DEPTH:
        return None
    if not isinstance(schema, dict):
        return "example"  # `true`, or a schema without constraints: anything goes
    if "$ref" in schema:
        return example_value(_resolve(root, schema["$ref"]), root, depth + 1)
    if "const" in schema:
        return schema["const"]
    for key in ("enum", "examples"):
        if isinstance(schema.get(key), list) and schema[key]:
            return schema[key][0]
    for key in ("anyOf", "oneOf"):
        if isinstance(schema.get(key), list) and schema[key]:
            options = [o for o in schema[key] if not (isinstance(o, dict) and o.get("type") == "null")]
            return example_value((options or schema[key])[0], root, depth + 1)
    if isinstance(schema.get("allOf"), list):
        return example_value(_merged(schema), root, depth + 1)
    return _of_type(schema, _type_of(schema), root, depth)


def _of_type(schema: dict[str, Any], kind: str, root: Any, depth: int) -> Any:
    if kind == "object":
        properties = schema.get("properties") or {}
        return {name: example_value(properties.get(name, {}), root, depth + 1) for name in schema.get("required", [])}
    if kind == "array":
        return _array(schema, root, depth)
    if kind in ("integer", "number"):
        return _number(schema, kind)
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return _string(schema)


def _type_of(schema: dict[str, Any]) -> str:
    """The schema's type; the first that is not null of a list; guessed from its keywords when absent."""
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if isinstance(kind, str):
        return kind
    if "properties" in schema or "required" in schema:
        return "object"
    return "array" if "items" in schema or "prefixItems" in schema else "string"


def _array(schema: dict[str, Any], root: Any, depth: int) -> list[Any]:
    prefix = schema.get("prefixItems")
    if isinstance(prefix, list) and prefix:
        return [example_value(item, root, depth + 1) for item in prefix]
    count = max(1, int(schema.get("minItems", 1)))
    return [example_value(schema.get("items", {}), root, depth + 1) for _ in range(count)]


def _number(schema: dict[str, Any], kind: str) -> int | float:
    value: float = 1
    if isinstance(schema.get("minimum"), int | float):
        value = max(value, schema["minimum"])
    if isinstance(schema.get("exclusiveMinimum"), int | float):
        value = max(value, schema["exclusiveMinimum"] + 1)
    if isinstance(schema.get("maximum"), int | float):
        value = min(value, schema["maximum"])
    if isinstance(schema.get("exclusiveMaximum"), int | float):
        value = min(value, schema["exclusiveMaximum"] - 1)
    return int(value) if kind == "integer" else value


def _string(schema: dict[str, Any]) -> str:
    text = FORMATS.get(str(schema.get("format")), "example")
    shortest = schema.get("minLength")
    if isinstance(shortest, int) and len(text) < shortest:
        text = (text * (shortest // len(text) + 1))[:shortest]
    longest = schema.get("maxLength")
    if isinstance(longest, int):
        text = text[:longest]
    return text


def _resolve(root: Any, ref: str) -> Any:
    """A local `$ref` (`#/$defs/name`); anything else (a remote schema) is treated as a free-form string."""
    if not ref.startswith("#"):
        return {}
    node = root
    for part in [p for p in ref[1:].split("/") if p]:
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            return {}
        node = node[part]
    return node


def _merged(schema: dict[str, Any]) -> dict[str, Any]:
    """`allOf`'s parts as one schema: their properties and required lists together (enough for examples)."""
    merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
    for part in schema["allOf"]:
        if not isinstance(part, dict):
            continue
        for key, value in part.items():
            if key == "properties":
                merged["properties"] = {**merged.get("properties", {}), **value}
            elif key == "required":
                merged["required"] = list(dict.fromkeys([*merged.get("required", []), *value]))
            else:
                merged.setdefault(key, value)
    return merged
