"""Plain, typed configuration: frozen dataclasses built from dicts that reject unknown keys.

Every config in the project is a dataclass; `from_dict` is the only way a dict (a JSON file, a
`--set key=value` list, notebook parameters) becomes one. Unknown keys and values of the wrong type raise
`ConfigError` naming the valid keys, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Mapping, TypeVar

from .errors import UserError

T = TypeVar("T")


class ConfigError(UserError, ValueError):
    """A configuration key or value is invalid; the message lists what is valid."""


def _field_types(cls) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}


def _coerce(name: str, value: Any, tp: Any) -> Any:
    """Check (and gently coerce: int->float, str from the command line) `value` against type `tp`."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(name, value, a)
            except ConfigError:
                pass
        raise ConfigError(f"{name}: {value!r} matches none of {tp}")
    if origin is typing.Literal:
        if isinstance(value, str) and value not in args:
            raise ConfigError(f"{name}: {value!r} is not one of {list(args)}")
        if value not in args:
            raise ConfigError(f"{name}: {value!r} is not one of {list(args)}")
        return value
    if origin in (list, tuple):
        if isinstance(value, str):
            value = [v for v in value.split(",") if v != ""]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{name}: expected a list, got {value!r}")
        inner = args[0] if args else Any
        out = [_coerce(name, v, inner) for v in value]
        return tuple(out) if origin is tuple else out
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "false", "0", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"{name}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{name}: expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise ConfigError(f"{name}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{name}: expected a number, got {value!r}")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{name}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{name}: expected a string, got {value!r}")
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if isinstance(value, Mapping):
            return from_dict(tp, value)
        raise ConfigError(f"{name}: expected a mapping for {tp.__name__}, got {value!r}")
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{name}: expected a mapping, got {value!r}")
        return dict(value)
    return value


def from_dict(cls: type[T], data: Mapping[str, Any]) -> T:
    """Build dataclass `cls` from `data`; unknown keys or wrong types raise ConfigError."""
    fields = _field_types(cls)
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"{cls.__name__}: unknown key(s) {unknown}. Valid keys: {sorted(fields)}"
        )
    kwargs = {k: _coerce(f"{cls.__name__}.{k}", v, fields[k]) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        if isinstance(e, ConfigError):
            raise
        raise ConfigError(f"{cls.__name__}: {e}") from e


def to_dict(obj: Any) -> dict[str, Any]:
    """A (nested) dataclass as plain dicts, for config.json."""
    return dataclasses.asdict(obj)


def parse_overrides(pairs: list[str] | None) -> dict[str, str]:
    """Turn ['a=1', 'b.c=x'] into {'a': '1', 'b.c': 'x'}; values stay strings and are typed by from_dict."""
    out: dict[str, str] = {}
    for p in pairs or []:
        if "=" not in p:
            raise ConfigError(f"override {p!r} must look like key=value")
        k, v = p.split("=", 1)
        out[k.strip()] = v.strip()
    return out
