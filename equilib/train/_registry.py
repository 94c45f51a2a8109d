"""Registries by name: the tasks, models, loss terms and callbacks a config may ask for.

A config names what it wants (``task: nbody``, ``model: {name: point_cloud_net}``, ``loss: {terms: [{name:
equivariance, ...}]}``, ``callbacks: [{name: equivariance_error, ...}]``); each name maps to a class registered
here, whose options are a dataclass (unknown options are errors that list the known ones).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable


class Registry:
    """Name -> registered object (a task, model, loss term or callback class), with errors that list the known names.

    Args:
        kind: What the registry holds, for error messages (``"task"``, ``"model"``, ...).

    Examples:
        >>> from equilib.train import Registry
        >>> shapes = Registry("shape")
        >>> @shapes.register("circle")
        ... class Circle:
        ...     pass
        >>> shapes.get("circle", "model.shape") is Circle
        True
        >>> shapes.get("square", "model.shape")
        Traceback (most recent call last):
            ...
        ValueError: model.shape: unknown shape 'square'; known: circle
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, object] = {}

    def register(self, name: str) -> Callable:
        """Decorator: register the decorated object under ``name``.

        Args:
            name: The name a config uses.

        Returns:
            The decorator, which returns the object unchanged.

        Raises:
            ValueError: When the decorator is applied and another object is registered under ``name``.
        """
        def decorate(obj):
            if name in self._items and self._items[name] is not obj:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._items[name] = obj
            return obj
        return decorate

    def get(self, name: str, where: str):
        """The object registered as ``name``.

        Args:
            name: The registered name.
            where: The config key, for the error message.

        Returns:
            The registered object.

        Raises:
            ValueError: If ``name`` is not registered; the message lists the known names.
        """
        if name not in self._items:
            raise ValueError(f"{where}: unknown {self.kind} {name!r}; known: {', '.join(sorted(self._items))}")
        return self._items[name]


TASKS = Registry("task")
MODELS = Registry("model")
LOSS_TERMS = Registry("loss term")
CALLBACKS = Registry("callback")


def build_options(cls, values: dict, where: str):
    """``cls(**values)`` for a dataclass ``cls``, rejecting unknown keys.

    Args:
        cls: The options dataclass.
        values: Its keys and values.
        where: The config section, for error messages.

    Returns:
        The dataclass instance.

    Raises:
        ValueError: If ``values`` is not a mapping or has an unknown key (the message lists the known ones), or the
            dataclass rejects a value.
    """
    if not isinstance(values, dict):
        raise ValueError(f"{where}: expected a mapping, got {values!r}")
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        prefix = f"{where}." if where else ""
        raise ValueError(f"config: unknown key {prefix}{unknown[0]} (known: {', '.join(sorted(known))})")
    return cls(**values)


def build_entry(entry, registry: Registry, where: str):
    """The registered class and its options for a ``{name: ..., options...}`` entry of a config list.

    Args:
        entry: The mapping.
        registry: The :class:`Registry` the name is looked up in.
        where: The config key, for error messages.

    Returns:
        ``(cls, options)``.

    Raises:
        ValueError: If ``entry`` has no ``name``, the name is unknown, or an option is unknown or invalid.
    """
    if not isinstance(entry, dict) or "name" not in entry:
        raise ValueError(f"{where}: expected a mapping with a 'name', got {entry!r}")
    cls = registry.get(entry["name"], f"{where}.name")
    return cls, build_options(cls.Options, {k: v for k, v in entry.items() if k != "name"}, where)
