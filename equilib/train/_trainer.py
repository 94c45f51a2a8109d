"""The trainer, the same for every task: AdamW (or M-FAC), warmup + cosine or plateau schedules, gradient clipping, an
EMA of the weights for evaluation, extra loss terms and callbacks, atomic checkpoints with exact resume,
per-evaluation metrics in CSV (and TensorBoard), and data parallel training.

Data parallel: launched by ``torchrun`` (or inside an initialised process group), each of the ``world`` ranks takes
every world-th example of the global batch (``data.batch_size``), losses are normalised by the global element
counts and gradients summed over the ranks, so the update equals the single-process one on the same global batch
(gloo on the CPU, NCCL on GPUs). Gradients are all-reduced by hand rather than through the DDP wrapper, whose hooks
do not expect the double backward of force training. Metrics are reduced over the ranks; rank 0 alone writes files.
Extra loss terms are computed on each rank's share and averaged over the ranks; callbacks run on every rank and rank
0's values are logged.

Resume is exact on the CPU: the checkpoint holds model, optimizer, scheduler, EMA, loss terms, callbacks, the RNG
states and the position in the epoch; the epoch order is a permutation drawn from (seed, epoch), so an interrupted
and resumed run sees the same batches as an uninterrupted one, whether frames are cached or streamed.
"""

from __future__ import annotations

import math
import os
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from ..curvature import MFAC
from ..utils import atomic_save, atomic_write_csv
from ._batches import batches, epoch_order, rank_batches
from ._config import TrainConfig
from ._plots import learning_curves
from ._registry import CALLBACKS, LOSS_TERMS, TASKS, build_entry

CHECKPOINT = "checkpoint.pt"


def _lr_lambda(config: TrainConfig, total_steps: int):
    warmup, floor = config.schedule.warmup_steps, config.schedule.min_lr_ratio

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def _plugins(entries: list[dict], registry, where: str, task) -> list:
    built = []
    for k, entry in enumerate(entries):
        cls, options = build_entry(entry, registry, f"{where}[{k}]")
        plugin = cls(options, task)
        plugin.name = entry["name"]
        built.append(plugin)
    return built


def evaluate(model, batches, predict, accumulator):
    """Add the predictions of ``model`` on every batch to a metrics accumulator (the model in eval mode).

    The evaluation loop of :class:`Trainer` and of ``equilib eval``.

    Args:
        model: The model (put in eval mode).
        batches: Iterable of batches.
        predict: ``predict(model, batch) -> {name: tensor}``.
        accumulator: Has ``update(prediction, batch)``; receives detached predictions.

    Returns:
        ``accumulator``.
    """
    model.eval()
    for batch in batches:
        prediction = predict(model, batch)
        accumulator.update({k: v.detach() for k, v in prediction.items()}, batch)
    return accumulator


class Trainer:
    """Train the model of ``config.model`` on the task of ``config.task``; :meth:`run` returns the final metrics.

    Building it creates ``trainer.out_dir``, joins the process group when launched by ``torchrun``, seeds torch with
    ``trainer.seed``, builds the task (its datasets), the loss terms, the callbacks, the model, its EMA, the optimizer
    and the schedule.

    Args:
        config: The :class:`~equilib.train.TrainConfig`.

    Raises:
        ValueError: If the task, model, a loss term or a callback is not registered or does not fit the task.
        FileNotFoundError: If a dataset path does not exist.
    """

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
        self.task = TASKS.get(config.task, "task")(config)
        self.train, self.val = self.task.train, self.task.val
        self.steps_per_epoch = math.ceil(len(self.train) / config.data.batch_size)
        self.workers = getattr(config.data, "workers", 0)  # DataLoader processes, for tasks that stream from disk
        self.device = torch.device(config.trainer.device)
        self.terms = torch.nn.ModuleList(_plugins(config.loss.terms, LOSS_TERMS, "loss.terms", self.task))
        self.callbacks = _plugins(config.callbacks, CALLBACKS, "callbacks", self.task)
        self.finishing = False  # True while the callbacks of the run's last step run
        self._setup(self.task.build_model())
        self.step, self.epoch, self.position = 0, 0, 0
        self.history: list[dict] = []
        self.recent_losses: list[float] = []  # training losses since the last evaluation
        self._last_parts: dict[str, float] = {}  # the last step's loss parts and terms, logged with the evaluations
        self._last_evaluation: tuple[int, dict] = (-1, {})  # (step, accumulator per split), reused by plots()

    def _setup(self, model: torch.nn.Module) -> None:
        """The model on its device, its EMA, the optimizer and the schedule."""
        config = self.config
        self.model = model.to(self.device)
        # an average of the parameters; the buffers (tables, indices, E0s) are constant and only copied (averaging
        # them would run the integer index tables through float arithmetic)
        self.ema = AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(config.trainer.ema_decay),
                                 use_buffers=False)
        opt = config.optimizer
        if opt.kind == "mfac":
            self.optimizer = MFAC(self.model.parameters(), lr=opt.lr, damping=opt.mfac_damping, window=opt.mfac_window,
                                  momentum=opt.mfac_momentum, weight_decay=opt.weight_decay)
        else:
            self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=opt.lr, weight_decay=opt.weight_decay,
                                               foreach=True)  # one kernel per step for all tensors, on CPUs too
        total = config.trainer.max_steps or config.trainer.max_epochs * self.steps_per_epoch
        if config.schedule.kind == "cosine":
            self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, _lr_lambda(config, total))
        else:
            self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
                self.optimizer, factor=config.schedule.plateau_factor, patience=config.schedule.plateau_patience)

    def _global_counts(self, counts: dict[str, int]) -> dict[str, int]:
        values = torch.tensor([counts[k] for k in sorted(counts)], dtype=torch.float64)
        dist.all_reduce(values)
        return {k: int(v) for k, v in zip(sorted(counts), values.tolist())}

    def train_batches(self, epoch: int, start: int = 0):
        """This rank's training batches of ``epoch`` from global batch ``start`` on.

        Args:
            epoch: The epoch (it seeds the order with ``trainer.seed``).
            start: The first global batch.

        Returns:
            An iterator of collated batches (on the CPU).
        """
        order = epoch_order(self.config.trainer.seed, epoch, len(self.train))
        index_lists = rank_batches(order, self.config.data.batch_size, start, self.rank, self.world)
        return batches(self.train, index_lists, self.task.collate, self.workers)

    def batch(self, indices) -> object:
        """The training batch of the frames at ``indices``.

        Args:
            indices: Frame indices into the training set.

        Returns:
            The batch, collated by the task, on the CPU.
        """
        return self.task.collate([self.train[int(k)] for k in indices])

    def eval_batches(self, split: str):
        """This rank's batches of a validation split, in order.

        Args:
            split: The split's name.

        Yields:
            Batches of ``data.eval_batch_size`` frames (this rank's share), on the device.
        """
        frames = self.val[split]
        size = self.config.data.eval_batch_size
        mine = list(range(self.rank, len(frames), self.world))
        index_lists = [mine[k : k + size] for k in range(0, len(mine), size)]
        for batch in batches(frames, index_lists, self.task.collate, self.workers):
            yield batch.to(self.device)

    def predict(self, model, batch) -> dict[str, torch.Tensor]:
        """The task's prediction of ``model`` on ``batch``, under ``trainer.autocast`` when set.

        Args:
            model: The model.
            batch: A batch on the device.

        Returns:
            ``{name: tensor}``; bfloat16 outputs of a mixed-precision forward pass come back as float32, so that
            losses and metrics are computed in float32.
        """
        if self.config.trainer.autocast is None:
            return self.task.predict(model, batch)
        with torch.autocast(self.device.type, dtype=torch.bfloat16):
            prediction = self.task.predict(model, batch)
        return {k: v.float() if v.dtype == torch.bfloat16 else v for k, v in prediction.items()}

    def train_step(self, batch) -> dict[str, float]:
        """One optimizer step on ``batch``.

        The task's loss plus the extra terms, backward, the gradients' all-reduce (data parallel), clipping, the
        optimizer and schedule steps and the EMA update.

        Args:
            batch: A training batch (moved to the device here).

        Returns:
            ``loss`` (the global mean in data-parallel runs), ``grad_norm`` and ``loss_<part>`` for each part and term,
            as floats.

        Raises:
            FloatingPointError: If the loss is not finite.
        """
        self.model.train()
        batch = batch.to(self.device)
        prediction = self.predict(self.model, batch)
        reducer = self._global_counts if self.world > 1 else None
        loss, parts = self.task.loss(prediction, batch, count_reducer=reducer)
        for term in self.terms:
            value = term.value(self.model, batch)
            loss = loss + term.options.weight * value / self.world
            parts[term.name] = float(value.detach())
            parts.update({f"{term.name}_{key}": v for key, v in term.logs().items()})
        if not torch.isfinite(loss):
            raise FloatingPointError(f"step {self.step}: the training loss is {float(loss)} (parts: {parts}); lower "
                                     "optimizer.lr or check the data and the model's initial outputs")
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
        return {"loss": float(loss.detach()), "grad_norm": float(grad_norm),
                **{f"loss_{k}": v for k, v in parts.items()}}

    def evaluate(self, split: str, model=None, keep: list | None = None) -> dict[str, float]:
        """Metrics of the EMA model (or ``model``) on a validation split, reduced over the ranks.

        Args:
            split: The split's name.
            model: The model to evaluate; default the EMA model.
            keep: A list that receives the accumulator (for figures).

        Returns:
            ``{metric: value}`` of the task's accumulator.
        """
        accumulator = evaluate(model or self.ema.module, self.eval_batches(split), self.predict, self.task.metrics())
        accumulator.all_reduce()
        if keep is not None:
            keep.append(accumulator)
        return accumulator.compute()

    def run(self) -> dict:
        """Train until ``max_steps``, ``max_epochs`` or ``max_minutes``, evaluating and checkpointing on the way.

        At the end the checkpoint is written, rank 0 saves the EMA model as ``<out_dir>/model.pt`` and, with
        ``logging.plots``, the figures are drawn. A run resumed after it finished does no more steps.

        Returns:
            The last row of the history: ``step``, ``epoch``, ``seconds``, ``train_loss`` (the mean since the last
            evaluation), ``lr``, ``train_loss_<part>`` (each loss part, term and term log at that step) and
            ``<split>/<metric>`` of every validation split (and callback values of that step).

        Raises:
            FloatingPointError: If a training loss is not finite.
        """
        tc = self.config.trainer
        start = time.perf_counter()
        bar = tqdm(total=tc.max_steps, initial=self.step, desc="train",
                   disable=not self.config.logging.progress or self.rank != 0)
        done = tc.max_steps is not None and self.step >= tc.max_steps  # a finished run, resumed
        recent = self.recent_losses
        while not done and self.epoch < tc.max_epochs:
            for b, batch in enumerate(self.train_batches(self.epoch, self.position), start=self.position):
                t0 = time.perf_counter()
                stats = self.train_step(self.task.augment(batch, self.step))
                self._last_parts = {f"train_{k}": v for k, v in stats.items() if k.startswith("loss_")}
                recent.append(stats["loss"])
                self.step += 1
                self.position = b + 1
                bar.update(1)
                rate = self.task.batch_size(batch) * self.world / (time.perf_counter() - t0)
                bar.set_postfix(loss=f"{stats['loss']:.4g}", examples_per_s=f"{rate:.0f}")
                out_of_time = tc.max_minutes is not None and time.perf_counter() - start > 60 * tc.max_minutes
                done = (tc.max_steps is not None and self.step >= tc.max_steps) or out_of_time
                if self.step % tc.eval_every == 0 or done:
                    self._log(float(np.mean(recent)), time.perf_counter() - start)
                    recent.clear()
                self._run_callbacks(final=done)
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
        if not done:  # out of epochs: the last step's callbacks have not run as final ones
            self._run_callbacks(final=True)
        self.save_checkpoint()
        if self.rank == 0:
            self.task.save_model(self.ema.module, self.out / "model.pt")
        if self.config.logging.plots:
            self.plots()
        return self.history[-1]

    def _run_callbacks(self, final: bool) -> None:
        self.finishing = final  # callbacks read it: True at the run's last step, however the run ends
        values = {}
        for callback in self.callbacks:
            if self.step % callback.options.every == 0 or final:
                values.update({f"{callback.name}/{k}": v for k, v in callback(self).items()})
        if values:
            self._record(values)

    def plots(self) -> list[Path]:
        """Draw ``learning_curves.png`` and the task's figures of every validation split in the run directory.

        Written by rank 0; with several ranks the figures show rank 0's share of the examples.

        Returns:
            The paths written.
        """
        curves = self.out / "learning_curves.png"
        written = [learning_curves(self.history, curves, self.task.curve_metrics)] if self.rank == 0 else []
        step, accumulators = self._last_evaluation
        for name in self.val:
            if step != self.step or name not in accumulators:  # not evaluated at this step in this process
                kept: list = []
                self.evaluate(name, keep=kept)
                accumulators[name] = kept[0]
            if self.rank == 0:
                written.extend(self.task.figures(accumulators[name], name, self.out))
        return written

    def _log(self, train_loss: float, seconds: float) -> None:
        row = {"epoch": self.epoch, "seconds": round(seconds, 2), "train_loss": train_loss,
               "lr": self.optimizer.param_groups[0]["lr"], **self._last_parts}
        kept: list = []
        for name in self.val:
            for key, value in self.evaluate(name, keep=kept).items():
                row[f"{name}/{key}"] = value
        self._last_evaluation = (self.step, dict(zip(self.val, kept)))
        if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            first = next(iter(self.val), None)
            self.scheduler.step(row.get(f"{first}/{self.task.primary_metric}", train_loss))
        self._record(row)

    def _record(self, values: dict) -> None:
        """Add ``values`` to this step's row of the history (a new row on a new step); write CSV and TensorBoard."""
        if self.history and self.history[-1]["step"] == self.step:
            self.history[-1].update(values)
        else:
            self.history.append({"step": self.step, **values})
        if self.config.logging.csv and self.rank == 0:
            self._write_csv()
        if self.config.logging.tensorboard and self.rank == 0:
            self._write_tensorboard(values)

    def _write_tensorboard(self, values: dict) -> None:
        if getattr(self, "_tensorboard", None) is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise ImportError("logging.tensorboard: needs the tensorboard package (pip install tensorboard)") \
                    from None
            self._tensorboard = SummaryWriter(log_dir=str(self.out / "tensorboard"))
        for key, value in values.items():
            if isinstance(value, (int, float)) and math.isfinite(value):
                self._tensorboard.add_scalar(key, value, global_step=self.step)
        self._tensorboard.flush()

    def _write_csv(self) -> None:
        atomic_write_csv(self.history, self.out / "metrics.csv")

    @property
    def checkpoint_path(self) -> Path:
        """Where this run's checkpoint is written (``<out_dir>/checkpoint.pt``)."""
        return self.out / CHECKPOINT

    def save_checkpoint(self) -> Path:
        """Write everything needed to continue exactly, atomically (rank 0 only).

        Returns:
            :attr:`checkpoint_path`.
        """
        path = self.checkpoint_path
        if self.rank != 0:
            return path
        state = {
            "config": self.config.to_dict(), "model": self.model.state_dict(), "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "terms": self.terms.state_dict(), "callbacks": [c.state_dict() for c in self.callbacks],
            "step": self.step, "epoch": self.epoch, "position": self.position, "history": self.history,
            "recent_losses": self.recent_losses,
            "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()},
        }
        atomic_save(state, path)
        return path

    def load_checkpoint(self, path: str | Path | None = None) -> None:
        """Continue from a checkpoint written by :meth:`save_checkpoint`.

        Args:
            path: The checkpoint; default the run's own (:attr:`checkpoint_path`).

        Raises:
            FileNotFoundError: If there is no checkpoint at ``path``.
        """
        path = Path(path) if path is not None else self.checkpoint_path
        if not path.is_file():
            raise FileNotFoundError(f"resume: no checkpoint at {path}")
        state = torch.load(path, map_location=self.device, weights_only=False)
        self.model.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.terms.load_state_dict(state["terms"])
        for callback, callback_state in zip(self.callbacks, state["callbacks"]):
            callback.load_state_dict(callback_state)
        self.step, self.epoch, self.position = state["step"], state["epoch"], state["position"]
        self.history = state["history"]
        self.recent_losses[:] = state["recent_losses"]
        torch.set_rng_state(state["rng"]["torch"])
        np.random.set_state(state["rng"]["numpy"])
        random.setstate(state["rng"]["python"])
