"""A config that fails validation, as one line: ``FILE: key: expected …, got …``.

Pydantic reports where (``('latency', 'budget_ms')``, ``('sinks', 1, 'codec')``) and why; this
turns the first error into the line a user reads, the key written as in the file
(``latency.budget_ms``, ``sinks[1].codec``) after an optional prefix (``streams[2].``).
"""

from __future__ import annotations

import json
import typing
from fractions import Fraction
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

from rifestream.config.values import EXPECTED
from rifestream.errors import RifestreamError
from rifestream.io.url_redact import redact_text

RULE = "rule"  # an error type whose ctx["message"] is the whole text after the key (a rule across keys)
# The words of pydantic's own errors for plain types and bounds.
_WORDS = {
    "int_type": "a whole number",
    "float_type": "a number",
    "finite_number": "a finite number",
    "bool_type": "true or false",
    "string_type": "a string",
    "list_type": "a list",
    "tuple_type": "a list",
    "too_short": "a list of at least {min_length}",
    "too_long": "a list of at most {max_length}",
    "greater_than": "a number > {gt}",
    "greater_than_equal": "a number ≥ {ge}",
    "less_than": "a number < {lt}",
    "less_than_equal": "a number ≤ {le}",
    "literal_error": "{expected}",
}
_TABLE_TYPES = ("model_type", "model_attributes_type", "dataclass_type", "dataclass_exact_type", "dict_type")


def broken_rule(message: str, key: str = "") -> PydanticCustomError:
    """An error from a check across keys; ``key`` (under the table checked) is added to the location."""
    return PydanticCustomError(RULE, "{message}", {"message": message, "key": key})


def shown(value: Any) -> str:
    """A value as the user wrote it (TOML-ish): strings quoted, booleans lower-case, URLs redacted."""
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, Fraction):
        return str(value)
    try:
        return redact_text(json.dumps(value, ensure_ascii=False))
    except (TypeError, ValueError):
        return repr(value)


def key_of(loc: tuple[str | int, ...], prefix: str = "") -> str:
    """``('sinks', 1, 'codec')`` → ``sinks[1].codec`` (after ``prefix``, e.g. ``streams[2].``)."""
    text = prefix
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text and not text.endswith(".") else part)
    return text.rstrip(".")


def fields_of(cls: Any) -> dict[str, FieldInfo] | None:
    """The fields of a pydantic model or pydantic dataclass, else None."""
    if isinstance(cls, type) and issubclass(cls, BaseModel):
        return cls.model_fields
    return getattr(cls, "__pydantic_fields__", None)


def _table_class(annotation: Any) -> Any:
    """The model inside an annotation such as ``Settings``, ``Settings | None`` or ``tuple[Spec, ...]``."""
    if fields_of(annotation) is not None:
        return annotation
    for arg in typing.get_args(annotation):
        found = _table_class(arg)
        if found is not None:
            return found
    return None


def table_at(model: type, loc: tuple[str | int, ...]) -> Any:
    """The table class (model or dataclass) at ``loc`` (list indices skipped), or None."""
    table = model
    for part in loc:
        if isinstance(part, int):
            continue
        field = (fields_of(table) or {}).get(part)
        if field is None:
            return None
        table = _table_class(field.annotation)
    return table


def field_at(model: type, loc: tuple[str | int, ...]) -> FieldInfo | None:
    """The field of the key at ``loc``, or None."""
    return (fields_of(table_at(model, loc[:-1])) or {}).get(loc[-1]) if loc else None


def one_line(error: ValidationError, origin: str, model: type, prefix: str = "") -> RifestreamError:
    """The first of pydantic's errors as ``ORIGIN: KEY: expected …, got …``."""
    first = error.errors(include_url=False)[0]
    loc, kind, ctx = tuple(first["loc"]), first["type"], first.get("ctx") or {}
    key = key_of(loc, prefix)
    if kind == EXPECTED:
        text = f"expected {ctx['expected']}, got {shown(first['input'])}"
    elif kind == RULE:
        key = key_of((*loc, ctx["key"]) if ctx.get("key") else loc, prefix)
        text = ctx["message"]
    elif kind in ("extra_forbidden", "unexpected_keyword_argument"):  # (the latter: a dataclass's)
        text = f"unknown key; expected one of {', '.join(fields_of(table_at(model, loc[:-1])) or ())}"
    elif kind == "missing":
        field = field_at(model, loc)
        text = f"expected {field.description if field and field.description else 'a value'}"
    elif kind in _TABLE_TYPES:
        text = f"expected a table, got {shown(first['input'])}"
    elif kind in _WORDS:  # a plain annotation (int, float, tuple[int, ...]) of a model with strict types
        text = f"expected {_WORDS[kind].format(**ctx)}, got {shown(first['input'])}"
    else:  # a check with no words of its own: pydantic's
        text = f"{first['msg'][:1].lower()}{first['msg'][1:]}, got {shown(first['input'])}"
    return RifestreamError(f"{origin}: {key}: {text}")
