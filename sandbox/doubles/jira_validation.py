"""Checks on the bodies of Jira's two write operations (add comment, upsert remote link).

First against the schemas Atlassian publishes (`jira_schemas.json`, extracted from the OpenAPI
file in the shared reference folder), so our client is held to the vendor's contract rather than
to our own reading of it; then the rules Jira enforces beyond the schemas. Each check answers
None when the body passes, else Jira's 400.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from pathlib import Path
from typing import Any

from sandbox.doubles.jira_adf import is_valid_adf
from sandbox.doubles.jira_answers import error
from sandbox.doubles.messages import Response

SCHEMAS: dict[str, Any] = json.loads(
    (Path(__file__).with_name("jira_schemas.json")).read_text(encoding="utf-8")
)["schemas"]

_JSON_TYPES: dict[str, type | tuple[type, ...]] = {
    "string": str,
    "boolean": bool,
    "object": dict,
    "array": list,
    "number": (int, float),
    "integer": int,
}


def validate(instance: Any, schema: dict[str, Any], where: str = "$") -> list[str]:
    """The subset of OpenAPI 3.0 schema checks the vendored schemas use (jsonschema is not a
    dependency): type, nullable, enum, maxLength, required, properties, additionalProperties,
    items, allOf. readOnly properties are skipped: Jira ignores them in requests."""
    if instance is None:
        return [] if schema.get("nullable") else _type_error(instance, schema, where)
    problems = _type_error(instance, schema, where)
    if problems:
        return problems
    if "enum" in schema and instance not in schema["enum"]:
        problems.append(f"{where}: {instance!r} is not one of {schema['enum']}")
    if isinstance(instance, str) and len(instance) > schema.get("maxLength", len(instance)):
        problems.append(f"{where}: longer than {schema['maxLength']} characters")
    for part in schema.get("allOf", []):
        problems += validate(instance, part, where)
    if isinstance(instance, dict):
        properties: dict[str, Any] = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in instance:
                problems.append(f"{where}: '{name}' is a required property")
        for name, value in instance.items():
            if name in properties:
                if not properties[name].get("readOnly"):
                    problems += validate(value, properties[name], f"{where}.{name}")
            elif schema.get("additionalProperties") is False:
                problems.append(f"{where}: unexpected property '{name}'")
    if isinstance(instance, list) and "items" in schema:
        for index, item in enumerate(instance):
            problems += validate(item, schema["items"], f"{where}[{index}]")
    return problems


def _type_error(instance: Any, schema: dict[str, Any], where: str) -> list[str]:
    expected = schema.get("type")
    if expected is None:
        return []
    python_type = _JSON_TYPES[expected]
    # bool is an int in Python but not a JSON number.
    ok = isinstance(instance, python_type) and not (
        isinstance(instance, bool) and expected in ("number", "integer")
    )
    return [] if ok else [f"{where}: {json.dumps(instance)[:60]} is not of type '{expected}'"]


# --------------------------------------------------------------------- Jira's answers to them


def schema_error(name: str, body: Any, problems: list[str]) -> Response:
    """The 400 for a body that broke schema `name` with `problems`."""
    errors: dict[str, str] = {}
    if name == "RemoteIssueLinkRequest":
        # Jira also names the missing required object fields, as in its documented example.
        obj = body.get("object") if isinstance(body, dict) else None
        for field in ("url", "title"):
            if not isinstance(obj, dict) or field not in obj:
                errors[field] = f"'{field}' is required."
    return error(400, problems, errors)


def comment_body_error(body: Any, version: str) -> Response | None:
    """v2 takes wiki text, v3 takes ADF; each refuses the other's."""
    if version == "2":
        valid = isinstance(body, str)
        if valid and not str(body).strip():
            return error(400, [], {"comment": "Comment body can not be empty!"})
    else:
        valid = is_valid_adf(body)
    if not valid:
        return error(400, [], {"comment": "Comment body is not valid!"})
    return None


def visibility_error(
    visibility: Any, roles: Collection[str], groups: Collection[str]
) -> Response | None:
    kind = visibility.get("type") if isinstance(visibility, dict) else None
    value = visibility.get("value") if isinstance(visibility, dict) else None
    if kind not in ("role", "group") or not isinstance(value, str):
        return error(400, [], {"visibility": "Invalid visibility: type must be role/group."})
    if kind == "role" and value not in roles:
        return error(
            400,
            [],
            {"commentLevel": f"You are currently not a member of the project role: {value}."},
        )
    if kind == "group" and value not in groups:
        return error(
            400, [], {"commentLevel": f"You are currently not a member of the group: {value}."}
        )
    return None


def link_object_error(obj: Any) -> Response | None:
    """A remote link needs an object with a url and a title."""
    missing = {
        name: f"'{name}' is required."
        for name in ("url", "title")
        if not isinstance(obj, dict) or not obj.get(name)
    }
    return error(400, [], missing) if missing else None
