"""Turn plain dicts (from YAML) into typed, frozen dataclasses with path-named errors.

``from_dict(MyParams, {"lr": "0.1"}, path="train")`` raises
``ConfigError("train.lr", "expected float, got str '0.1'")``; an unknown key
raises with a "did you mean" hint. Used for params.yaml and for every plugin's
parameter dataclass, so the two validate the same way.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from typing import Any, Literal, Union

from bench.errors import ConfigError


def suggest(name: str, candidates) -> str:
    """A "did you mean" hint for ``name`` among ``candidates`` ('' when nothing is close)."""
    close = difflib.get_close_matches(str(name), [str(c) for c in candidates], n=3, cutoff=0.6)
    return f"did you mean {', '.join(repr(c) for c in close)}?" if close else ""


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def describe_value(value: Any) -> str:
    """``"<type> <repr, cut to 40 characters>"``, for "expected X, got ..." messages."""
    text = repr(value)
    return f"{type(value).__name__} {text[:40]}"


def _to_float(value: Any) -> float | None:
    """``value`` as a float, or None when it is not a number."""
    if isinstance(value, bool):
        return None
    # YAML 1.1 reads 1e-4 (no dot) as a string; huge ints overflow to inf.
    if isinstance(value, int | float) or (isinstance(value, str) and "e" in value.lower()):
        try:
            return float(value)
        except ValueError:
            return None
        except OverflowError:
            return math.inf
    return None


def _convert_scalar(tp: type, value: Any, path: str) -> Any:
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        number = _to_float(value)
        if number is not None:
            if not math.isfinite(number):  # .nan / .inf in YAML: no range check could catch it
                raise ConfigError(path, f"must be a finite number, got {describe_value(value)}")
            return number
    elif tp is str:
        if isinstance(value, str):
            return value
    else:
        raise TypeError(f"unsupported parameter type {tp!r} at {path}")
    raise ConfigError(path, f"expected {tp.__name__}, got {describe_value(value)}")


def convert(tp: Any, value: Any, path: str) -> Any:
    """Check and convert ``value`` to the annotated type ``tp``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, path)
    if origin is Literal:
        if value not in args:
            raise ConfigError(path, f"{value!r} is not one of {list(args)}", suggest(value, args))
        return value
    if origin in (Union, types.UnionType):
        return _convert_union(args, value, path)
    if origin in (list, tuple):
        return _convert_sequence(origin, args, value, path)
    if origin is dict:
        return _convert_mapping(args, value, path)
    return _convert_scalar(tp, value, path)


def _convert_union(args: tuple, value: Any, path: str) -> Any:
    if value is None and type(None) in args:
        return None
    errors = []
    for option in (a for a in args if a is not type(None)):
        try:
            return convert(option, value, path)
        except ConfigError as exc:
            errors.append(exc.problem)
    raise ConfigError(path, "; ".join(errors))


def _convert_sequence(origin: type, args: tuple, value: Any, path: str) -> Any:
    if not isinstance(value, (list, tuple)):
        raise ConfigError(path, f"expected a list, got {describe_value(value)}")
    if origin is tuple and args and args[-1] is not Ellipsis:
        if len(args) != len(value):
            raise ConfigError(path, f"expected {len(args)} items, got {len(value)}")
        return tuple(convert(a, v, _join(path, i)) for i, (a, v) in enumerate(zip(args, value, strict=True)))
    item = args[0] if args else Any
    items = [convert(item, v, _join(path, i)) for i, v in enumerate(value)]
    return tuple(items) if origin is tuple else items


def _convert_mapping(args: tuple, value: Any, path: str) -> dict:
    if not isinstance(value, dict):
        raise ConfigError(path, f"expected a mapping, got {describe_value(value)}")
    key_tp, val_tp = args if args else (Any, Any)
    return {convert(key_tp, k, path): convert(val_tp, v, _join(path, k)) for k, v in value.items()}


def from_dict(cls: type, data: Any, path: str = ""):
    """Build dataclass ``cls`` from ``data``, validating every field by its annotation."""
    if isinstance(data, cls):
        return data
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(path or cls.__name__, f"expected a mapping, got {describe_value(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key in data:
        if key not in fields:
            raise ConfigError(_join(path, key), "unknown parameter", suggest(key, fields) or
                              f"known: {', '.join(sorted(fields))}")
    kwargs = {name: convert(hints[name], data[name], _join(path, name))
              for name in fields if name in data}
    missing = [n for n, f in fields.items() if n not in data and
               f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError(_join(path, missing[0]), "required parameter is missing")
    obj = cls(**kwargs)
    check = getattr(obj, "check", None)
    if callable(check):
        check(path)
    return obj


def to_dict(obj: Any) -> Any:
    """Inverse of ``from_dict`` for plain serialisation (tuples become lists)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def require(condition: bool, key: str, problem: str, hint: str = "") -> None:
    """Raise ``ConfigError(key, problem, hint)`` unless ``condition``."""
    if not condition:
        raise ConfigError(key, problem, hint)


def describe_fields(cls: type) -> list[dict[str, Any]]:
    """Name, type, default and source note of each field (for ``augbench describe``)."""
    rows = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = "<required>"
        tp = hints[f.name]
        # Plain classes by name; Literal/Union/generics in full, so allowed values show.
        name = tp.__name__ if isinstance(tp, type) and not typing.get_args(tp) else None
        rows.append({"name": f.name, "type": name or str(tp).replace("typing.", ""),
                     "default": default, "source": f.metadata.get("source", "")})
    return rows
