"""Pydantic validation errors -> the one line a user sees for a bad config file.

``first_error`` picks the error to report (an unknown key before anything else: a misspelt key
otherwise shows up as a confusing "missing required key" on its correct spelling) and words it
as ``field.path: problem (allowed: ...)``, finding the field's model by walking the config
models' annotations along the error's location, so every family's schema is covered without a
table of models here. Errors raised by our own validators (:mod:`generators.schema`) are
already in their final wording and pass through.
"""

from __future__ import annotations

import difflib
import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from annotated_types import Ge, Gt, Le, Lt
from pydantic import BaseModel, ValidationError

from .schema import show

__all__ = ["first_error", "kind_of", "non_string_key", "dotted"]


def kind_of(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return f"a {type(value).__name__}"


def non_string_key(value: Any, path: tuple, _seen: set | None = None):
    """``(path, key)`` of the first mapping key that is not a string, else None."""
    seen = set() if _seen is None else _seen
    if id(value) in seen:  # YAML aliases share objects; visit each once
        return None
    seen.add(id(value))
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                return path, k
            found = non_string_key(v, (*path, k), seen)
            if found:
                return found
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found = non_string_key(v, (*path, i), seen)
            if found:
                return found
    return None


def dotted(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def first_error(err: ValidationError, model: type[BaseModel]) -> str:
    errors = err.errors(include_url=False)
    # An unknown key first: a misspelling also makes its correct spelling "missing".
    errors.sort(key=lambda e: e["type"] != "extra_forbidden")
    return _describe(errors[0], model)


def _strip(ann: Any) -> Any:
    while get_origin(ann) is Annotated:
        ann = get_args(ann)[0]
    return ann


def _members(ann: Any) -> tuple:
    """The models of a union annotation (a discriminated union of layers), else ()."""
    if get_origin(ann) in (Union, types.UnionType):
        return tuple(_strip(a) for a in get_args(ann))
    return ()


def _tag(model: Any) -> str | None:
    """The discriminator value of a union member: its ``kind`` (or ``unit``) literal."""
    for key in ("kind", "unit"):
        field = getattr(model, "model_fields", {}).get(key)
        if field is not None and get_origin(field.annotation) is Literal:
            return get_args(field.annotation)[0]
    return None


def _field(model: type[BaseModel], key: Any):
    fields = model.model_fields
    return fields.get(key) or next((f for f in fields.values() if f.alias == key), None)


def _locate(root: type[BaseModel], loc: tuple) -> tuple:
    """Walk an error location through the models' annotations: ``(model, field, union, loc)``
    with the model holding the last key, its field (None for an unknown key or an index), the
    union whose tag the error is about (if any), and the location without discriminator tags."""
    ann: Any = root
    model = field = union = None
    clean = []
    for part in loc:
        ann = _strip(ann)
        members = _members(ann)
        if members:
            union = members
            hit = next((m for m in members if _tag(m) == part), None)
            if hit is not None:  # pydantic's tag: the chosen member, not a key of the data
                ann = hit
                continue
        if isinstance(part, int):
            args = get_args(ann)
            ann = args[0] if get_origin(ann) is tuple and args else None
            field = None
        elif isinstance(ann, type) and issubclass(ann, BaseModel):
            model, field, union = ann, _field(ann, part), None
            ann = field.annotation if field is not None else None
        else:
            model = field = ann = None
        clean.append(part)
    if ann is not None and _members(_strip(ann)):
        union = _members(_strip(ann))
    return model, field, union, tuple(clean)


def _describe(e: dict, root: type[BaseModel]) -> str:
    kind, value, ctx = e["type"], e.get("input"), e.get("ctx") or {}
    if kind == "tensorfab_at":  # a board's unit: its own message, already with its path
        return ctx["message"]
    model, field, union, loc = _locate(root, tuple(e["loc"]))
    at = f"{dotted(loc)}." if loc else ""
    path = dotted(loc)
    prefix = f"{path}: " if path else ""

    if kind in ("union_tag_not_found", "union_tag_invalid"):
        tags = [t for t in (_tag(m) for m in union or ()) if t]
        key = ctx.get("discriminator", "'kind'").strip("'")
        what = f"{_show_tag(ctx.get('tag'))} is not a layer kind" \
            if kind == "union_tag_invalid" else "missing required key"
        return f"{at}{key}: {what} (allowed: {', '.join(tags)})"
    if kind == "tensorfab_field":
        return f"{at}{ctx['field']}: {ctx['problem']}"
    if kind == "too_short":
        return f"{prefix}empty list (allowed: at least {ctx.get('min_length', 1)} item)"
    if kind == "tensorfab":
        return f"{prefix}{ctx['problem']}"
    if kind == "missing":
        return f"{prefix}missing required key"
    if kind == "extra_forbidden":
        keys = sorted(f.alias or k for k, f in model.model_fields.items()) \
            if model is not None else []
        hint = difflib.get_close_matches(str(loc[-1]), keys, n=1, cutoff=0.75)
        guess = f", did you mean {hint[0]!r}?" if hint else ""
        return f"{prefix}unknown key{guess} (allowed: {', '.join(keys)})"
    expected = {
        "int_type": "an integer",
        "string_type": "a string",
        "bool_type": "true or false",
        "float_type": "a number",
        "list_type": "a list",
        "dict_type": "a mapping",
        "model_type": "a mapping",
    }
    if kind in expected:
        return f"{prefix}expected {expected[kind]}, got {show(value)}"
    if kind == "literal_error":
        options = get_args(_strip(field.annotation)) if field is not None else ()
        allowed = ", ".join(map(str, options)) if options else ctx.get("expected", "")
        return f"{prefix}{show(value)} is not allowed (allowed: {allowed})"
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        return f"{prefix}{show(value)} is out of range (allowed: {_range(field, ctx)})"
    msg = str(e.get("msg", kind))
    return f"{prefix}{msg[:1].lower()}{msg[1:]}, got {show(value)}"


def _show_tag(tag: Any) -> str:
    # pydantic gives the tag as text: quote a string the way show() does
    return show(tag) if isinstance(tag, str) and tag not in ("None",) else "null"


def _range(field, ctx: dict) -> str:
    """``lo..hi`` from a field's bounds (pydantic's error names only the bound it broke)."""
    lo = hi = None
    for m in getattr(field, "metadata", ()):
        if isinstance(m, Ge):
            lo = m.ge
        elif isinstance(m, Gt):
            lo = m.gt + 1
        elif isinstance(m, Le):
            hi = m.le
        elif isinstance(m, Lt):
            hi = m.lt - 1
    if lo is None and hi is None:
        return ", ".join(f"{k} {v}" for k, v in ctx.items())
    if hi is None:
        return f"at least {lo}"
    if lo is None:
        return f"at most {hi}"
    return f"{lo}..{hi}"
