"""Python functions as model tools: `@tool` builds an OpenAI-style schema from type hints and the
docstring, and validates the arguments a model sends before the function is called.

The validator covers exactly the JSON Schema subset `schema_for` generates (type, enum, items,
additionalProperties, anyOf with null, required) so no JSON Schema dependency is needed, and every
failure is one sentence the model can act on.
"""

from __future__ import annotations

import inspect
import json
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Union

from k2nb.engine.errors import K2nbError


class ToolDefinitionError(K2nbError, TypeError):
    """A function cannot become a tool: a parameter lacks a type hint or uses an unsupported one."""


JSON = dict[str, Any]

_SIMPLE: dict[type, str] = {int: "integer", float: "number", str: "string", bool: "boolean"}
_TYPE_WORD = {
    "integer": "an integer",
    "number": "a number",
    "string": "a string",
    "boolean": "a boolean (true or false)",
    "array": "an array",
    "object": "an object",
    "null": "null",
}


# ---------------------------------------------------------------------------------------------
# type hints -> JSON Schema


def schema_for(annotation: Any, *, where: str = "the annotation") -> JSON:
    """JSON Schema of one Python annotation; `where` names the parameter in error messages."""
    if annotation is Any:
        return {}
    if isinstance(annotation, type) and annotation in _SIMPLE:
        return {"type": _SIMPLE[annotation]}
    if annotation is type(None):
        return {"type": "null"}
    if annotation is list or annotation is typing.List:  # noqa: UP006 - the bare alias is legal
        return {"type": "array"}
    if annotation is dict or annotation is typing.Dict:  # noqa: UP006
        return {"type": "object"}

    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        # Annotated[X, "description"] is accepted; a str metadata item becomes the description.
        schema = schema_for(args[0], where=where)
        notes = [a for a in args[1:] if isinstance(a, str)]
        if notes:
            schema = {**schema, "description": " ".join(notes)}
        return schema
    if origin is Literal:
        values = list(args)
        kinds = []
        for v in values:
            if v is None:
                kind = "null"
            elif type(v) in _SIMPLE:
                kind = _SIMPLE[type(v)]
            else:
                raise ToolDefinitionError(
                    f"{where} is Literal[...] with the value {v!r}; only str, int, float, bool and None "
                    "values can be sent by a model"
                )
            if kind not in kinds:
                kinds.append(kind)
        return {"type": kinds[0] if len(kinds) == 1 else kinds, "enum": values}
    if origin in (Union, types.UnionType):
        members = [a for a in args if a is not type(None)]
        nullable = len(members) < len(args)
        if len(members) == 1:
            inner = schema_for(members[0], where=where)
        else:
            inner = {"anyOf": [schema_for(m, where=where) for m in members]}
        if not nullable:
            return inner
        if isinstance(inner.get("type"), str) and "enum" not in inner:
            return {**inner, "type": [inner["type"], "null"]}
        return {"anyOf": [inner, {"type": "null"}]}
    if origin is list:
        if not args:
            return {"type": "array"}
        return {"type": "array", "items": schema_for(args[0], where=f"{where} (list items)")}
    if origin is dict:
        if not args:
            return {"type": "object"}
        if args[0] is not str:
            raise ToolDefinitionError(
                f"{where} is a dict with {args[0]!r} keys; JSON objects only have str keys"
            )
        return {"type": "object", "additionalProperties": schema_for(args[1], where=f"{where} (dict values)")}
    raise ToolDefinitionError(
        f"{where} has the type {annotation!r}, which k2nb cannot describe to a model; use int, float, str, "
        "bool, Optional[...], Literal[...], list[...] or dict[str, ...]"
    )


# ---------------------------------------------------------------------------------------------
# docstrings -> summary + parameter descriptions

_GOOGLE_HEAD = re.compile(r"^(Args|Arguments|Parameters|Params|Keyword Args|Keyword Arguments):\s*$")
_GOOGLE_SECTIONS = re.compile(
    r"^(Returns?|Yields?|Raises|Examples?|Notes?|Warnings?|See Also|Attributes|References|Todo):\s*$"
)
_GOOGLE_ITEM = re.compile(r"^(\*{0,2}\w+)\s*(\([^)]*\))?\s*:\s*(.*)$")
_NUMPY_RULE = re.compile(r"^-{3,}\s*$")
_NUMPY_ITEM = re.compile(r"^(\*{0,2}\w+)\s*(:.*)?$")
_REST_PARAM = re.compile(r"^:param\s+(?:[^:]*\s)?(\w+)\s*:\s*(.*)$")
_REST_FIELD = re.compile(r"^:\w+")


@dataclass(slots=True)
class Docstring:
    summary: str
    params: dict[str, str]


def parse_docstring(doc: str | None) -> Docstring:
    """Summary (the text before the first section) and per-parameter descriptions.

    Understands Google style (``Args:`` with ``name (type): text``), numpy style (``Parameters`` over
    a dashed rule, ``name : type`` then indented text) and reST (``:param [type] name: text``).
    """
    if not doc:
        return Docstring("", {})
    lines = inspect.cleandoc(doc).splitlines()
    params: dict[str, str] = {}
    summary_end = len(lines)
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        section_start = None
        if _GOOGLE_HEAD.match(stripped):
            section_start = i
            i = _parse_indented_items(lines, i + 1, _GOOGLE_ITEM, params, google=True)
        elif (
            stripped in ("Parameters", "Other Parameters")
            and i + 1 < len(lines)
            and _NUMPY_RULE.match(lines[i + 1].strip())
        ):
            section_start = i
            i = _parse_numpy_items(lines, i + 2, params)
        elif _REST_PARAM.match(stripped):
            section_start = i
            m = _REST_PARAM.match(stripped)
            assert m is not None
            text = [m.group(2).strip()]
            i += 1
            while i < len(lines) and lines[i].strip() and not _REST_FIELD.match(lines[i].strip()):
                text.append(lines[i].strip())
                i += 1
            params[m.group(1)] = " ".join(t for t in text if t)
        elif (
            _GOOGLE_SECTIONS.match(stripped)
            or _REST_FIELD.match(stripped)
            or (i + 1 < len(lines) and stripped and _NUMPY_RULE.match(lines[i + 1].strip()))
        ):
            section_start = i
            i += 1
        else:
            i += 1
        if section_start is not None:
            summary_end = min(summary_end, section_start)
    # Wrapped lines of a paragraph are one sentence to a model; paragraph breaks stay.
    paragraphs = "\n".join(lines[:summary_end]).strip().split("\n\n")
    summary = "\n\n".join(" ".join(line.strip() for line in p.splitlines()) for p in paragraphs)
    return Docstring(summary, params)


def _parse_indented_items(
    lines: list[str], i: int, item: re.Pattern[str], params: dict[str, str], *, google: bool
) -> int:
    """Google style items: one per line at the section's indent, continuation lines indented more."""
    base: int | None = None
    current: str | None = None
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
            continue
        indent = len(line) - len(line.lstrip())
        if indent == 0:
            break  # next section
        if base is None:
            base = indent
        if indent == base:
            m = item.match(line.strip())
            if m is None:
                break
            current = m.group(1).lstrip("*")
            params[current] = m.group(3).strip()
        elif current is not None:
            params[current] = (params[current] + " " + line.strip()).strip()
        i += 1
    return i


def _parse_numpy_items(lines: list[str], i: int, params: dict[str, str]) -> int:
    current: str | None = None
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if i + 1 < len(lines) and stripped and _NUMPY_RULE.match(lines[i + 1].strip()):
            break  # next numpy section header
        if not stripped:
            i += 1
            continue
        if line == line.lstrip():
            m = _NUMPY_ITEM.match(stripped)
            if m is None:
                break
            current = m.group(1).lstrip("*")
            params[current] = ""
        elif current is not None:
            params[current] = (params[current] + " " + stripped).strip()
        i += 1
    return i


# ---------------------------------------------------------------------------------------------
# validation of model-sent arguments


def _show(value: Any, limit: int = 60) -> str:
    """A short rendering of a value the model sent, for error sentences."""
    text = repr(value) if isinstance(value, str) else json.dumps(value, default=repr)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _type_ok(kind: str, value: Any) -> bool:
    if kind == "integer":
        # A JSON 3.0 is an integer (JSON Schema draft 6+); bool is never a number here.
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer()
        )
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "array":
        return isinstance(value, list)
    if kind == "object":
        return isinstance(value, dict)
    if kind == "null":
        return value is None
    return True


def _expected(schema: JSON) -> str:
    if "enum" in schema:
        return "one of " + ", ".join(_show(v) for v in schema["enum"])
    if "anyOf" in schema:
        return " or ".join(_expected(s) for s in schema["anyOf"])
    kind = schema.get("type")
    if isinstance(kind, list):
        return " or ".join(_TYPE_WORD.get(k, k) for k in kind)
    if kind == "array" and "items" in schema:
        return "an array of " + _plural(schema["items"])
    return _TYPE_WORD.get(kind, "a value") if kind else "a value"


def _plural(schema: JSON) -> str:
    word = _expected(schema)
    return {
        "an integer": "integers",
        "a number": "numbers",
        "a string": "strings",
        "an object": "objects",
    }.get(word, word)


def check_value(schema: JSON, value: Any) -> str | None:
    """None when `value` satisfies `schema`, else the reason as '<what it must be>, got <value>'.

    The reason is completed by the caller with the argument's name ('argument n of tool fib must
    be ...'), so nested failures say where they are ('item 2 of ...').
    """
    if "anyOf" in schema:
        if any(check_value(s, value) is None for s in schema["anyOf"]):
            return None
        return f"must be {_expected(schema)}, got {_show(value)}"
    kind = schema.get("type")
    if kind is not None:
        kinds = kind if isinstance(kind, list) else [kind]
        if not any(_type_ok(k, value) for k in kinds):
            return f"must be {_expected(schema)}, got {_show(value)}"
    if "enum" in schema and value not in schema["enum"]:
        return f"must be {_expected(schema)}, got {_show(value)}"
    if isinstance(value, list) and "items" in schema:
        for j, item in enumerate(value):
            why = check_value(schema["items"], item)
            if why is not None:
                return f"item {j} {why}" if why.startswith("must") else f"item {j}: {why}"
    if isinstance(value, dict) and isinstance(schema.get("additionalProperties"), dict):
        for key, item in value.items():
            why = check_value(schema["additionalProperties"], item)
            if why is not None:
                return f"entry {key!r} {why}"
    return None


def validate_arguments(tool_name: str, parameters: JSON, arguments: Any) -> str | None:
    """One sentence saying what is wrong with `arguments` for the tool, or None when they fit."""
    if not isinstance(arguments, dict):
        return f"the arguments of tool '{tool_name}' must be a JSON object, got {_show(arguments)}"
    props: JSON = parameters.get("properties", {})
    for name in parameters.get("required", []):
        if name not in arguments:
            return f"tool '{tool_name}' is missing the required argument '{name}'"
    for name, value in arguments.items():
        if name not in props:
            takes = ", ".join(f"'{p}'" for p in props) or "no arguments"
            return f"tool '{tool_name}' has no argument '{name}' (it takes {takes})"
        why = check_value(props[name], value)
        if why is not None:
            if why.startswith("must"):
                return f"argument '{name}' of tool '{tool_name}' {why}"
            return f"argument '{name}' of tool '{tool_name}': {why}"
    return None


def _coerce(schema: JSON, value: Any) -> Any:
    """Integral floats to int where the schema says integer, so an `int` parameter gets an int."""
    if isinstance(value, float) and value.is_integer():
        kind = schema.get("type")
        kinds = kind if isinstance(kind, list) else [kind]
        if "integer" in kinds and "number" not in kinds:
            return int(value)
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [_coerce(schema["items"], v) for v in value]
    return value


# ---------------------------------------------------------------------------------------------
# the decorator


class Tool:
    """A Python function the model may call. Calling the object calls the function unchanged."""

    def __init__(self, fn: Callable[..., Any], *, name: str | None = None, description: str | None = None):
        if not callable(fn):
            raise ToolDefinitionError(f"@tool needs a function, got {fn!r}")
        self.fn = fn
        self.name = name or getattr(fn, "__name__", None) or ""
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_\-]{0,63}", self.name):
            raise ToolDefinitionError(
                f"tool name {self.name!r} is not usable by a model; use letters, digits, _ or - (max 64)"
            )
        doc = parse_docstring(inspect.getdoc(fn))
        self.description = description if description is not None else doc.summary
        self.parameters = self._parameters(fn, doc)
        self.__doc__ = getattr(fn, "__doc__", None)
        self.__name__ = self.name
        self.__wrapped__ = fn

    def _parameters(self, fn: Callable[..., Any], doc: Docstring) -> JSON:
        try:
            hints = typing.get_type_hints(fn, include_extras=True)
        except Exception as exc:  # a forward reference that does not resolve, for instance
            raise ToolDefinitionError(
                f"the type hints of tool '{self.name}' cannot be resolved: {exc}"
            ) from exc
        props: JSON = {}
        required: list[str] = []
        for p in inspect.signature(fn).parameters.values():
            where = f"parameter '{p.name}' of tool '{self.name}'"
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                raise ToolDefinitionError(f"{where} is *args/**kwargs; a tool needs named parameters only")
            if p.kind is p.POSITIONAL_ONLY:
                raise ToolDefinitionError(f"{where} is positional-only; the model passes arguments by name")
            if p.name not in hints:
                raise ToolDefinitionError(f"{where} has no type hint; add one (int, str, list[float], ...)")
            schema = schema_for(hints[p.name], where=where)
            if p.name in doc.params and doc.params[p.name] and "description" not in schema:
                schema = {**schema, "description": doc.params[p.name]}
            if p.default is p.empty:
                required.append(p.name)
            else:
                try:
                    json.dumps(p.default)
                    schema = {**schema, "default": p.default}
                except (TypeError, ValueError):
                    pass  # a default JSON cannot express is simply left out of the schema
            props[p.name] = schema
        return {"type": "object", "properties": props, "required": required}

    @property
    def schema(self) -> JSON:
        """The OpenAI-style tool definition the chat template renders."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }

    def validate(self, arguments: Any) -> str | None:
        """None when the model's arguments fit the schema, else one sentence saying what is wrong."""
        return validate_arguments(self.name, self.parameters, arguments)

    def invoke(self, arguments: Mapping[str, Any]) -> Any:
        """Call the function with validated model arguments (integral floats become ints)."""
        props = self.parameters["properties"]
        return self.fn(**{k: _coerce(props[k], v) for k, v in arguments.items()})

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<k2nb tool {self.name}({', '.join(self.parameters['properties'])})>"


@typing.overload
def tool(fn: Callable[..., Any], /) -> Tool: ...
@typing.overload
def tool(
    *, name: str | None = None, description: str | None = None
) -> Callable[[Callable[..., Any]], Tool]: ...
def tool(
    fn: Callable[..., Any] | None = None, /, *, name: str | None = None, description: str | None = None
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Turn a typed, documented function into a model tool: ``@tool`` or ``@tool(name=...)``.

    The result is still callable like the function and carries ``.schema`` (OpenAI style) and
    ``.validate(arguments)``. Unsupported annotations raise `ToolDefinitionError` here, at
    decoration time, not when the model first calls the tool.
    """
    if fn is not None:
        return Tool(fn, name=name, description=description)
    return lambda f: Tool(f, name=name, description=description)


def as_tool(obj: Tool | Callable[..., Any]) -> Tool:
    """A Tool for `obj`, decorating a plain function on the fly."""
    return obj if isinstance(obj, Tool) else Tool(obj)
