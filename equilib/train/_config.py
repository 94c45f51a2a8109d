"""Training configuration: YAML sections mapped onto dataclasses, with ``key=value`` overrides.

A config has the sections data, model, loss, optimizer, schedule, trainer and logging; an unknown section or key
is an error that names it and lists the known ones (a typo must not silently fall back to a default).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ._losses import LossConfig


@dataclass
class DataConfig:
    train: str = "datasets/oc20_emt/data/s2ef_train.lmdb"
    val: dict = field(default_factory=lambda: {"val_id": "datasets/oc20_emt/data/s2ef_val_id.lmdb"})
    cutoff: float = 5.0
    batch_size: int = 8
    eval_batch_size: int = 16
    cache: bool = True  # keep processed frames in memory (small datasets)
    max_train_frames: int | None = None


@dataclass
class ModelConfig:
    backend: str = "grid"
    channels: int = 32
    lmax: int = 2
    num_layers: int = 2
    num_radial: int = 8
    radial_hidden: int = 32
    tp_options: dict = field(default_factory=dict)
    dtype: str = "float32"
    species: list | None = None  # default: the elements of the training and validation data


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
    plots: bool = True  # learning curves and parity plots (PNG) at the end
    tensorboard: bool = False  # scalars under <out_dir>/tensorboard (needs the tensorboard package)


@dataclass
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _build(cls, values: dict, prefix: str):
    known = {f.name: f for f in dataclasses.fields(cls)}
    if not isinstance(values, dict):
        raise ValueError(f"{prefix or 'config'}: expected a mapping, got {values!r}")
    unknown = sorted(set(values) - set(known))
    if unknown:
        where = f"{prefix}." if prefix else ""
        raise ValueError(f"config: unknown key {where}{unknown[0]} (known: {', '.join(sorted(known))})")
    kwargs = {}
    for name, value in values.items():
        sub = known[name].type
        nested = {"DataConfig": DataConfig, "ModelConfig": ModelConfig, "LossConfig": LossConfig,
                  "OptimizerConfig": OptimizerConfig, "ScheduleConfig": ScheduleConfig,
                  "TrainerConfig": TrainerConfig, "LoggingConfig": LoggingConfig}.get(sub if isinstance(sub, str) else "")
        kwargs[name] = _build(nested, value, name) if nested is not None else value
    return cls(**kwargs)


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    """The config in ``path`` (YAML) with ``section.key=value`` overrides (values parsed as YAML)."""
    values: dict = {}
    if path is not None:
        text = Path(path).read_text()
        values = yaml.safe_load(text) or {}
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override: expected section.key=value, got {item!r}")
        key, raw = item.split("=", 1)
        parts = key.split(".")
        node = values
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = yaml.safe_load(raw)
    return _build(TrainConfig, values, "")
