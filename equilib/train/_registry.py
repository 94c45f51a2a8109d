"""Registries by name: the tasks, models, loss terms and callbacks a config may ask for.

A config names what it wants (``task: nbody``, ``model: {name: point_cloud_net}``, ``loss: {terms: [{name:
equivariance, ...}]}``, ``callbacks: [{name: equivariance_error, ...}]``); each name maps to a class registered
here, whose options are a dataclass (unknown options are errors that list the known ones).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable


class Registry:
    """Name -> registered object, with errors that list the known names."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, object] = {}

    def register(self, name: str) -> Callable:
        """Decorator: register the decorated object under ``name``."""
        def decorate(obj):
            if name in self._items and self._items[name] is not obj:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._items[name] = obj
            return obj
        return decorate

    def get(self, name: str, where: str):
        """The object registered as ``name``; ``where`` names the config key in errors."""
        if name not in self._items:
            raise ValueError(f"{where}: unknown {self.kind} {name!r}; known: {', '.join(sorted(self._items))}")
        return self._items[name]


TASKS = Registry("task")
MODELS = Registry("model")
LOSS_TERMS = Registry("loss term")
CALLBACKS = Registry("callback")


def build_options(cls, values: dict, where: str):
    """``cls(**values)`` for a dataclass ``cls``; an unknown key is an error that names it and lists the known ones (a
    typo must not silently fall back to a default)."""
    if not isinstance(values, dict):
        raise ValueError(f"{where}: expected a mapping, got {values!r}")
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        prefix = f"{where}." if where else ""
        raise ValueError(f"config: unknown key {prefix}{unknown[0]} (known: {', '.join(sorted(known))})")
    return cls(**values)


def build_entry(entry, registry: Registry, where: str):
    """The registered class and its options for a ``{name: ..., options...}`` entry of a config list."""
    if not isinstance(entry, dict) or "name" not in entry:
        raise ValueError(f"{where}: expected a mapping with a 'name', got {entry!r}")
    cls = registry.get(entry["name"], f"{where}.name")
    return cls, build_options(cls.Options, {k: v for k, v in entry.items() if k != "name"}, where)
