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
    """The ``optimizer`` section: AdamW or M-FAC, with gradient clipping.

    Attributes:
        kind: ``"adamw"`` or ``"mfac"`` (the M-FAC optimizer, Frantar, Kurtic, Alistarh, NeurIPS 2021: steps along the
            inverse damped empirical Fisher of the last ``mfac_window`` gradients).
        lr: Learning rate (peak, after warmup).
        weight_decay: AdamW: decoupled weight decay; M-FAC: L2 coefficient added to the gradient.
        grad_clip: Largest global gradient norm; gradients are rescaled above it.
        mfac_damping: ``mfac``: damping of the Fisher (``> 0``).
        mfac_window: ``mfac``: number of recent gradients in the Fisher (memory: this many copies of the parameters).
        mfac_momentum: ``mfac``: momentum of the preconditioned step, in ``[0, 1)``.

    Raises:
        ValueError: If ``kind`` is neither ``"adamw"`` nor ``"mfac"``.
    """

    kind: str = "adamw"  # "adamw" or "mfac"
    lr: float = 5e-3
    weight_decay: float = 0.0
    grad_clip: float = 10.0
    mfac_damping: float = 1e-5
    mfac_window: int = 64
    mfac_momentum: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in ("adamw", "mfac"):
            raise ValueError(f"optimizer.kind: expected 'adamw' or 'mfac', got {self.kind!r}")


@dataclass
class ScheduleConfig:
    """The ``schedule`` section: the learning-rate schedule.

    Attributes:
        kind: ``"cosine"`` (linear warmup, then cosine decay over ``trainer.max_steps``, or ``max_epochs`` epochs of
            steps) or ``"plateau"`` (reduce on plateau of the task's primary validation metric).
        warmup_steps: Steps of linear warmup (``cosine``).
        min_lr_ratio: The cosine ends at ``lr * min_lr_ratio``.
        plateau_factor: ``plateau``: factor the learning rate is multiplied by.
        plateau_patience: ``plateau``: evaluations without improvement before it is reduced.

    Raises:
        ValueError: If ``kind`` is neither ``"cosine"`` nor ``"plateau"``.
    """

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
    """The ``trainer`` section: the loop's length, seed, EMA, evaluation, checkpoints and device.

    Attributes:
        out_dir: Where checkpoints, ``metrics.csv``, figures and the trained model go.
        seed: Seeds the model's initialisation and the order of every epoch.
        max_epochs: Stop after this many epochs.
        max_steps: Stop after this many optimizer steps (None: no limit); the cosine schedule spans it when set.
        max_minutes: Stop after this wall time in minutes (a safety cap; None: none).
        ema_decay: Decay of the exponential moving average of the parameters, which is what is evaluated and saved.
        eval_every: Steps between evaluations of every validation split (and at the end).
        checkpoint_every: Steps between atomic checkpoints (and at the end).
        device: Torch device, e.g. ``"cuda"``; data-parallel runs use gloo on CPU and NCCL on CUDA.
        autocast: ``"bfloat16"``: the model's forward passes (training and evaluation) under ``torch.autocast`` on
            the device, matrix products and convolutions in bfloat16, parameters, gradients and the optimizer in
            float32; None: none. For classifiers; models whose outputs are differentiated (forces) need float32.

    Raises:
        ValueError: If ``autocast`` is neither None nor ``"bfloat16"``.
    """

    out_dir: str = "runs/default"
    seed: int = 0
    max_epochs: int = 1000
    max_steps: int | None = None
    max_minutes: float | None = None
    ema_decay: float = 0.99
    eval_every: int = 100  # steps
    checkpoint_every: int = 100  # steps
    device: str = "cpu"
    autocast: str | None = None  # "bfloat16": mixed precision

    def __post_init__(self) -> None:
        if self.autocast not in (None, "bfloat16"):
            raise ValueError(f"trainer.autocast: expected null or 'bfloat16', got {self.autocast!r}")


@dataclass
class LoggingConfig:
    """The ``logging`` section: the outputs of a run.

    Attributes:
        csv: Write ``metrics.csv`` (one row per evaluation).
        progress: Show a progress bar (rank 0).
        plots: Write ``learning_curves.png`` and the task's figures (e.g. parity plots) at the end.
        tensorboard: Write scalars under ``<out_dir>/tensorboard`` (needs the ``tensorboard`` extra).
    """

    csv: bool = True
    progress: bool = True
    plots: bool = True  # learning curves and the task's figures (PNG) at the end
    tensorboard: bool = False  # scalars under <out_dir>/tensorboard (needs the tensorboard package)


@dataclass
class TrainConfig:
    """A whole run: the task, its data, model and loss options, and the shared sections.

    Attributes:
        task: The registered task: ``"potential"`` or ``"nbody"``.
        data: The task's data options (its ``Data`` dataclass).
        model: The registered model's options (its ``Options`` dataclass, with ``name``).
        loss: The task's loss options (its ``Loss`` dataclass, with ``terms``).
        optimizer: The :class:`OptimizerConfig`.
        schedule: The :class:`ScheduleConfig`.
        trainer: The :class:`TrainerConfig`.
        logging: The :class:`LoggingConfig`.
        callbacks: ``[{name: ..., every: ..., options...}]`` entries run during training.
    """

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
        """The config as nested plain dictionaries (``dataclasses.asdict``), as checkpoints store it.

        Returns:
            ``{section: {key: value}}``.
        """
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
    """A :class:`TrainConfig` from a mapping of sections (as read from YAML).

    ``task`` (default ``"potential"``) picks the task whose dataclasses validate ``data`` and ``loss``;
    ``model.name`` (default: the task's model) picks the model whose options validate ``model``.

    Args:
        values: ``{section: {key: value}}``; missing sections and keys take their defaults.

    Returns:
        The validated :class:`TrainConfig`.

    Raises:
        ValueError: For an unknown section, key, task, model, loss term or callback (the message lists the known
            ones), or an invalid value (e.g. ``schedule.kind``).

    Examples:
        >>> from equilib.train import build_config
        >>> config = build_config({"task": "nbody", "data": {"batch_size": 50}})
        >>> config.model.name, config.data.batch_size, config.optimizer.lr
        ('equivariant_dynamics', 50, 0.005)
        >>> build_config({"task": "nbody", "data": {"augmnt": True}})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
            ...
        ValueError: config: unknown key data.augmnt (known: augment, batch_size, dtype, ...)
    """
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
    """The config in ``path`` (YAML) with ``section.key=value`` overrides.

    Args:
        path: A YAML file of sections; None starts from the defaults.
        overrides: ``section.key=value`` strings, values parsed as YAML (``model.tp_options={transform: dense}``),
            applied in order.

    Returns:
        The validated :class:`TrainConfig`.

    Raises:
        ValueError: If an override has no ``=``, or as :func:`build_config`.

    Examples:
        >>> from equilib.train import load_config
        >>> config = load_config(None, ["task=nbody", "trainer.max_steps=100", "model.channels=8"])
        >>> config.task, config.trainer.max_steps, config.model.channels
        ('nbody', 100, 8)
    """
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
