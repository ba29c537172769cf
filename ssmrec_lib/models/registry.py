"""Model registry: `@register_model("name")` on a model class; `build_model(name, ...)` builds it.

A model class carries `config_cls` (its frozen config dataclass). `build_model` turns a dict of overrides into
that config with `config.from_dict` (unknown keys / bad values raise ConfigError listing the valid keys) and a
typo in the name raises UnknownNameError listing the registered names.
"""

from __future__ import annotations

import importlib
from typing import Any, Mapping

from ..config import from_dict
from ..errors import UnknownNameError

_REGISTRY: dict[str, type] = {}

# Modules imported on first use so that every model registers itself. An import error in any of them propagates
# as it is: a broken model module must not turn into "unknown model".
_MODEL_MODULES = ("pop", "sasrec", "gru4rec", "bert4rec", "lrurec", "mamba4rec", "mamba2rec", "hydra4rec")


def register_model(name: str):
    """Class decorator: register a model class under `name` (and set `cls.name`)."""

    def deco(cls):
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"model {name!r} registered twice")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def _load_all() -> None:
    for mod in _MODEL_MODULES:
        importlib.import_module(f"{__package__}.{mod}")


def available_models() -> list[str]:
    _load_all()
    return sorted(_REGISTRY)


def get_model_class(name: str) -> type:
    _load_all()
    if name not in _REGISTRY:
        raise UnknownNameError(f"unknown model {name!r}; available: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def make_model_config(name: str, overrides: Mapping[str, Any] | None = None):
    """The model's config dataclass with `overrides` applied (ConfigError on unknown keys / bad values)."""
    return from_dict(get_model_class(name).config_cls, dict(overrides or {}))


def build_model(name: str, n_items: int, max_len: int, overrides: Mapping[str, Any] | None = None):
    """Build model `name` for items 1..n_items and sequences up to `max_len` items."""
    cls = get_model_class(name)
    return cls(make_model_config(name, overrides), n_items=n_items, max_len=max_len)
