"""The event contract: ``events.schema.json`` (JSON Schema draft 2020-12), shipped
in the package, and the events reference generated from it.

``stream-ser schema`` prints the schema; ``stream-ser schema --markdown`` the
reference tables that the README carries (``bench/readme_table.py`` writes them
there and ``tests/test_schema.py`` checks they are current).  Validating needs
the ``jsonschema`` package (the ``dev`` extra), which the stream itself never
imports.  Only the standard library here: ``stream-ser schema`` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path

from . import events

SCHEMA_PATH = Path(__file__).with_name("events.schema.json")
EVENT_TYPES = tuple(events.EVENT_TYPES)


def text() -> str:
    """The schema as shipped (JSON text)."""
    return SCHEMA_PATH.read_text(encoding="utf-8")


def load() -> dict:
    return json.loads(text())


def version(schema: dict | None = None) -> str:
    """The version the schema declares (the end of its ``$id``)."""
    return (schema or load())["$id"].rsplit(":", 1)[-1]


def _resolve(node: dict, schema: dict) -> dict:
    """A property's schema with its ``$ref`` (local, ``#/$defs/NAME``) merged in."""
    ref = node.get("$ref")
    if not ref:
        return node
    target = _resolve(schema["$defs"][ref.rsplit("/", 1)[-1]], schema)
    return {**target, **{k: v for k, v in node.items() if k != "$ref"}}


def _json_type(node: dict, schema: dict) -> str:
    """How a reader sees a property's value, in a few words."""
    node = _resolve(node, schema)
    if "const" in node:
        return f"`{json.dumps(node['const'])}`"
    if "enum" in node:
        return " or ".join(f"`{json.dumps(v)}`" for v in node["enum"])
    if "oneOf" in node:
        return " or ".join(_json_type(n, schema) for n in node["oneOf"])
    kinds = node.get("type", "any")
    kind = " or ".join(kinds) if isinstance(kinds, list) else kinds
    if kind == "object" and "additionalProperties" in node and isinstance(node["additionalProperties"], dict):
        return f"object of {_json_type(node['additionalProperties'], schema)}"
    if kind == "object" and "properties" in node:
        return "object {" + ", ".join(node["properties"]) + "}"
    if kind == "array":
        return f"array of {_json_type(node.get('items', {}), schema)}"
    lo, hi = node.get("minimum"), node.get("maximum")
    if lo is not None and hi is not None:
        return f"{kind} {lo:g}-{hi:g}"
    if lo is not None:
        return f"{kind} >= {lo:g}"
    return kind


def _rows(properties: dict, schema: dict, skip=()) -> list[str]:
    return [f"| `{name}` | {_json_type(node, schema)} | {_resolve(node, schema).get('description', '')} |"
            for name, node in properties.items() if isinstance(node, dict) and name not in skip]


def markdown(schema: dict | None = None) -> str:
    """The events reference: the fields every event has, then each type's own."""
    schema = schema or load()
    defs = schema["$defs"]
    out = [f"Schema version {version(schema)} (`stream-ser schema` prints it). Every event:", "",
           "| field | JSON type | meaning |", "|---|---|---|", *_rows(defs["common"]["properties"], schema)]
    for kind in EVENT_TYPES:
        d = defs[kind]
        out += ["", f"**`{kind}`**: {d['description']}", "", "| field | JSON type | meaning |", "|---|---|---|",
                *_rows(d["properties"], schema, skip=("type",))]
    return "\n".join(out) + "\n"

