"""The trainer: AdamW, warmup + cosine or plateau schedules, gradient clipping, an EMA of the weights for evaluation,
atomic checkpoints with exact resume, per-evaluation metrics in CSV, and data parallel training.

Data parallel: launched by ``torchrun`` (or inside an initialised process group), each of the ``world`` ranks takes
every world-th structure of the global batch (``data.batch_size``), losses are normalised by the global element
counts and gradients summed over the ranks, so the update equals the single-process one on the same global batch
(gloo on the CPU, NCCL on GPUs). Gradients are all-reduced by hand rather than through the DDP wrapper, whose hooks
do not expect the double backward of force training. Metrics are reduced over the ranks; rank 0 alone writes files.

Resume is exact on the CPU: the checkpoint holds model, optimizer, scheduler, EMA, the RNG states and the position
in the epoch; the epoch order is a permutation drawn from (seed, epoch), so an interrupted and resumed run sees the
same batches as an uninterrupted one.
"""

from __future__ import annotations

import csv
import math
import os
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch_geometric.data import Batch
from tqdm import tqdm

from ..data import AtomicDataset, force_rms, mean_neighbors, per_element_energies
from ..nn import EquivariantPotential, PotentialConfig
from ._config import TrainConfig
from ._losses import MetricAccumulator, compute_loss
from ._plots import learning_curves, parity_plots

CHECKPOINT = "checkpoint.pt"


class _Frames:
    """A dataset, optionally held in memory after its first pass (the frames are small)."""

    def __init__(self, path: str, cutoff: float, cache: bool, limit: int | None = None) -> None:
        self.dataset = AtomicDataset(path, cutoff=cutoff)
        n = len(self.dataset) if limit is None else min(limit, len(self.dataset))
        self.frames = [self.dataset[k] for k in range(n)] if cache else None
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, k: int):
        return self.frames[k] if self.frames is not None else self.dataset[k]

    def batch(self, indices) -> Batch:
        return Batch.from_data_list([self[int(k)] for k in indices])

    def batches(self, order, batch_size: int):
        for start in range(0, len(order), batch_size):
            yield self.batch(order[start : start + batch_size])


def _lr_lambda(config: TrainConfig, total_steps: int):
    warmup, floor = config.schedule.warmup_steps, config.schedule.min_lr_ratio

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


class Trainer:
    """Train an :class:`EquivariantPotential` as ``config`` says; ``run()`` returns the final metrics."""

    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        self.out = Path(config.trainer.out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        if not dist.is_initialized() and int(os.environ.get("WORLD_SIZE", "1")) > 1:  # launched by torchrun
            dist.init_process_group("nccl" if config.trainer.device.startswith("cuda") else "gloo")
        distributed = dist.is_available() and dist.is_initialized()
        self.world = dist.get_world_size() if distributed else 1
        self.rank = dist.get_rank() if distributed else 0
        torch.manual_seed(config.trainer.seed)
        data = config.data
        self.train = _Frames(data.train, data.cutoff, data.cache, data.max_train_frames)
        self.val = {name: _Frames(path, data.cutoff, data.cache) for name, path in data.val.items()}
        self.steps_per_epoch = math.ceil(len(self.train) / data.batch_size)
        self.device = torch.device(config.trainer.device)
        self._setup(self._build_model())
        self.step, self.epoch, self.position = 0, 0, 0
        self.history: list[dict] = []
        self.recent_losses: list[float] = []  # training losses since the last evaluation
        self._last_evaluation: tuple[int, dict] = (-1, {})  # (step, accumulator per split), reused by plots()

    def _setup(self, model: EquivariantPotential) -> None:
        """The model on its device, its EMA, the optimizer and the schedule."""
        config = self.config
        self.model = model.to(self.device)
        # an average of the parameters; the buffers (tables, indices, E0s) are constant and only copied: averaging
        # them took twice as long, and ran the integer index tables through float arithmetic
        self.ema = AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(config.trainer.ema_decay),
                                 use_buffers=False)
        opt = config.optimizer
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=opt.lr, weight_decay=opt.weight_decay,
                                           foreach=True)  # one kernel per step for all tensors, on CPUs too
        total = config.trainer.max_steps or config.trainer.max_epochs * self.steps_per_epoch
        if config.schedule.kind == "cosine":
            self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, _lr_lambda(config, total))
        else:
            self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
                self.optimizer, factor=config.schedule.plateau_factor, patience=config.schedule.plateau_patience)

    def _build_model(self) -> EquivariantPotential:
        c, m = self.config, self.config.model
        everything = [self.train, *self.val.values()]
        species = m.species or sorted({int(z) for frames in everything for k in range(len(frames))
                                       for z in frames[k].atomic_numbers})
        e0s = per_element_energies(self.train, elements=species)
        cfg = PotentialConfig(species=species, cutoff=c.data.cutoff, channels=m.channels, lmax=m.lmax,
                              num_layers=m.num_layers, num_radial=m.num_radial, radial_hidden=m.radial_hidden,
                              backend=m.backend, tp_options=m.tp_options, avg_num_neighbors=mean_neighbors(self.train),
                              e0s=e0s, scale=force_rms(self.train), shift=0.0, dtype=m.dtype)
        return EquivariantPotential(cfg)

    def _order(self, epoch: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.config.trainer.seed * 100_003 + epoch)
        return torch.randperm(len(self.train), generator=generator)

    def _global_counts(self, counts: dict[str, int]) -> dict[str, int]:
        values = torch.tensor([counts[k] for k in sorted(counts)], dtype=torch.float64)
        dist.all_reduce(values)
        return {k: int(v) for k, v in zip(sorted(counts), values.tolist())}

    def train_step(self, batch) -> dict[str, float]:
        self.model.train()
        batch = batch.to(self.device)
        want_stress = self.config.loss.stress_weight > 0
        prediction = self.model(batch, compute_forces=True, compute_stress=want_stress)
        reducer = self._global_counts if self.world > 1 else None
        loss, parts = compute_loss(self.config.loss, prediction, batch, count_reducer=reducer)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.world > 1:
            for p in self.model.parameters():
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
                dist.all_reduce(p.grad)
            loss = loss.detach().clone()
            dist.all_reduce(loss)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.optimizer.grad_clip)
        self.optimizer.step()
        if isinstance(self.scheduler, torch.optim.lr_scheduler.LambdaLR):
            self.scheduler.step()
        self.ema.update_parameters(self.model)
        return {"loss": float(loss.detach()), "grad_norm": float(grad_norm), **{f"loss_{k}": v for k, v in parts.items()}}

    def evaluate(self, frames: _Frames, model=None, keep: list | None = None) -> dict[str, float]:
        """Metrics of the EMA model (or ``model``) on ``frames``; ``keep`` receives the accumulator."""
        model = (model or self.ema.module).eval()
        accumulator = MetricAccumulator(free_only=self.config.loss.forces_free_only)
        want_stress = self.config.loss.stress_weight > 0
        for batch in frames.batches(range(self.rank, len(frames), self.world), self.config.data.eval_batch_size):
            batch = batch.to(self.device)
            prediction = model(batch, compute_forces=True, compute_stress=want_stress)
            accumulator.update({k: v.detach() for k, v in prediction.items()}, batch)
        accumulator.all_reduce()
        if keep is not None:
            keep.append(accumulator)
        return accumulator.compute()

    def run(self) -> dict:
        """Train until max_steps, max_epochs or max_minutes; evaluate and checkpoint on the way and at the end."""
        tc = self.config.trainer
        start = time.perf_counter()
        bar = tqdm(total=tc.max_steps, initial=self.step, desc="train",
                   disable=not self.config.logging.progress or self.rank != 0)
        done = tc.max_steps is not None and self.step >= tc.max_steps  # a finished run, resumed
        recent = self.recent_losses
        while not done and self.epoch < tc.max_epochs:
            order = self._order(self.epoch)
            batches = list(range(self.position, self.steps_per_epoch))
            for b in batches:
                idx = order[b * self.config.data.batch_size : (b + 1) * self.config.data.batch_size]
                batch = self.train.batch(idx[self.rank :: self.world])
                t0 = time.perf_counter()
                stats = self.train_step(batch)
                recent.append(stats["loss"])
                self.step += 1
                self.position = b + 1
                bar.update(1)
                bar.set_postfix(loss=f"{stats['loss']:.4g}", structures_per_s=f"{len(idx) / (time.perf_counter() - t0):.0f}")
                out_of_time = tc.max_minutes is not None and time.perf_counter() - start > 60 * tc.max_minutes
                done = (tc.max_steps is not None and self.step >= tc.max_steps) or out_of_time
                if self.step % tc.eval_every == 0 or done:
                    self._log(float(np.mean(recent)), time.perf_counter() - start)
                    recent.clear()
                if self.step % tc.checkpoint_every == 0 or done:
                    self.save_checkpoint()
                if done:
                    break
            if not done:
                self.epoch += 1
                self.position = 0
        bar.close()
        if not self.history or self.history[-1]["step"] != self.step:
            self._log(float(np.mean(recent)) if recent else float("nan"), time.perf_counter() - start)
        self.save_checkpoint()
        if self.rank == 0:
            self.ema.module.save(self.out / "model.pt")
        if self.config.logging.plots:
            self.plots()
        return self.history[-1]

    def plots(self) -> list[Path]:
        """learning_curves.png and parity_<split>.png for every validation split, in the run directory (rank 0;
        with several ranks the parity plots show rank 0's share of the frames)."""
        written = [learning_curves(self.history, self.out / "learning_curves.png")] if self.rank == 0 else []
        step, accumulators = self._last_evaluation
        for name, frames in self.val.items():
            if step != self.step or name not in accumulators:  # not evaluated at this step in this process
                kept: list = []
                self.evaluate(frames, keep=kept)
                accumulators[name] = kept[0]
            if self.rank == 0:
                written.append(parity_plots(accumulators[name].pairs, self.out / f"parity_{name}.png", title=name))
        return written

    def _log(self, train_loss: float, seconds: float) -> None:
        row = {"step": self.step, "epoch": self.epoch, "seconds": round(seconds, 2), "train_loss": train_loss,
               "lr": self.optimizer.param_groups[0]["lr"]}
        kept: list = []
        for name, frames in self.val.items():
            for key, value in self.evaluate(frames, keep=kept).items():
                row[f"{name}/{key}"] = value
        self._last_evaluation = (self.step, dict(zip(self.val, kept)))
        if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            first = next(iter(self.val), None)
            self.scheduler.step(row.get(f"{first}/forces_mae", train_loss))
        self.history.append(row)
        if self.config.logging.csv and self.rank == 0:
            self._write_csv()
        if self.config.logging.tensorboard and self.rank == 0:
            self._write_tensorboard(row)

    def _write_tensorboard(self, row: dict) -> None:
        if getattr(self, "_tensorboard", None) is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise ImportError("logging.tensorboard: needs the tensorboard package (pip install tensorboard)") from None
            self._tensorboard = SummaryWriter(log_dir=str(self.out / "tensorboard"))
        for key, value in row.items():
            if key != "step" and isinstance(value, (int, float)) and math.isfinite(value):
                self._tensorboard.add_scalar(key, value, global_step=row["step"])
        self._tensorboard.flush()

    def _write_csv(self) -> None:
        keys = list(dict.fromkeys(k for row in self.history for k in row))
        tmp = self.out / "metrics.csv.tmp"
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=keys)
            writer.writeheader()
            writer.writerows(self.history)
        os.replace(tmp, self.out / "metrics.csv")

    @property
    def checkpoint_path(self) -> Path:
        """Where this run's checkpoint is written (``<out_dir>/checkpoint.pt``)."""
        return self.out / CHECKPOINT

    def save_checkpoint(self) -> Path:
        """Everything needed to continue exactly, written to a temporary name and renamed (rank 0 only)."""
        path = self.checkpoint_path
        if self.rank != 0:
            return path
        state = {
            "config": self.config.to_dict(), "model_config": vars(self.model.config).copy(),
            "model": self.model.state_dict(), "ema": self.ema.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "step": self.step, "epoch": self.epoch,
            "position": self.position, "history": self.history, "recent_losses": self.recent_losses,
            "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()},
        }
        tmp = path.with_name(path.name + ".tmp")
        torch.save(state, tmp)
        os.replace(tmp, path)
        return path

    def load_checkpoint(self, path: str | Path | None = None) -> None:
        """Continue from a checkpoint written by :meth:`save_checkpoint` (default: the run's own)."""
        path = Path(path) if path is not None else self.checkpoint_path
        if not path.is_file():
            raise FileNotFoundError(f"resume: no checkpoint at {path}")
        state = torch.load(path, map_location=self.device, weights_only=False)
        self._setup(EquivariantPotential(PotentialConfig(**state["model_config"])))  # the model that was trained
        self.model.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step, self.epoch, self.position = state["step"], state["epoch"], state["position"]
        self.history = state["history"]
        self.recent_losses[:] = state["recent_losses"]
        torch.set_rng_state(state["rng"]["torch"])
        np.random.set_state(state["rng"]["numpy"])
        random.setstate(state["rng"]["python"])
