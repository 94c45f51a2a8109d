"""Training configuration: YAML sections mapped onto dataclasses, with ``section.key=value`` overrides.

``task`` (default ``potential``) picks a registered task; its own dataclasses validate the ``data`` and ``loss``
sections, and ``model.name`` (default: the task's model) picks a registered model whose options dataclass validates
the rest of ``model``. The sections optimizer, schedule, trainer and logging, and the lists ``loss.terms`` and
``callbacks``, are the same for every task. An unknown section, key or name is an error that names it and lists the
known ones (a typo must not silently fall back to a default).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ._registry import CALLBACKS, LOSS_TERMS, MODELS, TASKS, build_entry, build_options


@dataclass
class OptimizerConfig:
    lr: float = 5e-3
    weight_decay: float = 0.0
    grad_clip: float = 10.0


@dataclass
class ScheduleConfig:
    kind: str = "cosine"  # "cosine" (with linear warmup) or "plateau"
    warmup_steps: int = 50
    min_lr_ratio: float = 0.01
    plateau_factor: float = 0.5
    plateau_patience: int = 3

    def __post_init__(self) -> None:
        if self.kind not in ("cosine", "plateau"):
            raise ValueError(f"schedule.kind: expected 'cosine' or 'plateau', got {self.kind!r}")


@dataclass
class TrainerConfig:
    out_dir: str = "runs/default"
    seed: int = 0
    max_epochs: int = 1000
    max_steps: int | None = None
    max_minutes: float | None = None
    ema_decay: float = 0.99
    eval_every: int = 100  # steps
    checkpoint_every: int = 100  # steps
    device: str = "cpu"


@dataclass
class LoggingConfig:
    csv: bool = True
    progress: bool = True
    plots: bool = True  # learning curves and the task's figures (PNG) at the end
    tensorboard: bool = False  # scalars under <out_dir>/tensorboard (needs the tensorboard package)


@dataclass
class TrainConfig:
    """A whole run. ``data``, ``model`` and ``loss`` are the task's and the model's own dataclasses."""

    task: str = "potential"
    data: Any = None
    model: Any = None
    loss: Any = None
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    callbacks: list = field(default_factory=list)  # [{name: ..., every: ..., options...}]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


GENERIC = {"optimizer": OptimizerConfig, "schedule": ScheduleConfig, "trainer": TrainerConfig, "logging": LoggingConfig}


def _entries(values, where: str, registry) -> list[dict]:
    """A list of ``{name: ..., options...}`` entries, each name registered and its options valid."""
    if not isinstance(values, list):
        raise ValueError(f"{where}: expected a list of {{name: ..., ...}} entries, got {values!r}")
    for k, entry in enumerate(values):
        build_entry(entry, registry, f"{where}[{k}]")
    return values


def build_config(values: dict) -> TrainConfig:
    """A :class:`TrainConfig` from a mapping of sections (as read from YAML)."""
    if not isinstance(values, dict):
        raise ValueError(f"config: expected a mapping of sections, got {values!r}")
    known = [f.name for f in dataclasses.fields(TrainConfig)]
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"config: unknown key {unknown[0]} (known: {', '.join(known)})")
    task_name = values.get("task", "potential")
    task = TASKS.get(task_name, "task")
    model_values = {"name": task.default_model, **(values.get("model") or {})}
    loss_values = dict(values.get("loss") or {})
    _entries(loss_values.get("terms", []), "loss.terms", LOSS_TERMS)
    return TrainConfig(
        task=task_name,
        data=build_options(task.Data, values.get("data") or {}, "data"),
        model=build_options(MODELS.get(model_values["name"], "model.name").Options, model_values, "model"),
        loss=build_options(task.Loss, loss_values, "loss"),
        callbacks=_entries(values.get("callbacks") or [], "callbacks", CALLBACKS),
        **{name: build_options(cls, values.get(name) or {}, name) for name, cls in GENERIC.items()},
    )


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    """The config in ``path`` (YAML) with ``section.key=value`` overrides (values parsed as YAML)."""
    values: dict = {}
    if path is not None:
        values = yaml.safe_load(Path(path).read_text()) or {}
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override: expected section.key=value, got {item!r}")
        key, raw = item.split("=", 1)
        parts = key.split(".")
        node = values
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = yaml.safe_load(raw)
    return build_config(values)
