"""Normal estimation, the point-cloud experiment of Frame Averaging (Puny et al., ICLR 2022, section 5.1): from the
points of a shape, predict the unit normal at every point; loss and metric ``mean(1 - (n . n_hat)^2)`` over points
(sign-agnostic: a normal's orientation is not determined by its points). Trained upright; evaluated upright and under
random rotations (each test shape turned by a Haar rotation from a fixed seed, its normals with it). Models take the
points ``(B, m, 3)`` and return unit vectors ``(B, m, 3)``; they should be E(3) x S_m equivariant (normals rotate and
follow their points, and ignore translations)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..data import NormalsDataset
from ..frames import FrameAveraged
from ..groups import E3, SO3, OnSet, Permutations, Positions, Vectors
from ..nn import PointNet
from ._batches import Frames
from ._registry import MODELS, TASKS
from ._task import LossOptions, ModelOptions, SummedMetrics, Symmetry, mean_loss
from ._tensor_task import TensorBatch, TensorTask, data_dtype

NORMALS_INPUTS = (OnSet(Positions()),)
NORMALS_OUTPUTS = (OnSet(Vectors()),)


@dataclass
class NormalsData:
    """The ``data`` section of the normals task.

    Attributes:
        path: The ``.npz`` written by ``python -m datasets.normals``.
        train: The split of the file used for training.
        val: Upright evaluation splits, ``{name in logs: split in file}``.
        rotated: Rotated evaluation splits, ``{name in logs: split in file}``: every cloud of the split turned by its
            own Haar rotation drawn from ``rotation_seed`` (the same rotations in every run), normals with it.
        rotation_seed: Seed of the rotations of the ``rotated`` splits.
        points: Points per cloud (the first ones of each; None: all in the file).
        max_train: The first training clouds kept (None: all).
        max_val: The first clouds of each evaluation split (None: all).
        batch_size: Clouds per training batch.
        eval_batch_size: Clouds per evaluation batch.
        augment: Turn each training cloud by a random rotation (Haar SO(3)) drawn from (seed, step).
        dtype: ``"float32"`` or ``"float64"`` for data and model.
    """

    path: str = "datasets/normals/data/normals.npz"
    train: str = "train"
    val: dict = field(default_factory=lambda: {"val": "val", "test": "test"})  # name in logs -> split in file
    rotated: dict = field(default_factory=lambda: {"test_rotated": "test"})  # name in logs -> split, rotated
    rotation_seed: int = 0
    points: int | None = None
    max_train: int | None = None
    max_val: int | None = None
    batch_size: int = 32
    eval_batch_size: int = 64
    augment: bool = False
    dtype: str = "float32"


@dataclass
class NormalsLoss(LossOptions):
    """The ``loss`` section of the normals task: the loss is ``mean(1 - (n . n_hat)^2)`` over points.

    Attributes:
        terms: Extra registered loss terms, ``[{name: ..., weight: ..., options...}]``.
    """


@dataclass
class NormalsBatch(TensorBatch):
    """A batch of point clouds with their normals; ``to(device)`` moves both.

    Attributes:
        points: (batch, points, 3) coordinates.
        normals: (batch, points, 3) true unit normals.
    """

    points: torch.Tensor
    normals: torch.Tensor


def normal_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``1 - (n . n_hat)^2`` per point: 0 for ``n_hat = +-n``, 1 for perpendicular vectors (unit inputs).

    Args:
        prediction: ``(..., 3)`` unit vectors.
        target: ``(..., 3)`` unit vectors.

    Returns:
        ``(...)`` the loss of each point.

    Examples:
        >>> import torch
        >>> n = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
        >>> normal_loss(torch.tensor([[-1.0, 0.0, 0.0], [0.6, 0.8, 0.0]]), n)
        tensor([0.0000, 0.3600])
    """
    return 1 - (prediction * target).sum(-1).pow(2)


class NormalError(SummedMetrics):
    """Sums of ``1 - (n . n_hat)^2`` and of the unoriented angle ``arccos |n . n_hat|`` over points, reduced over
    ranks; ``compute()`` gives ``{"normal_loss": mean, "angle_deg": mean angle in degrees}``."""

    def __init__(self) -> None:
        super().__init__(("normal_loss", "angle_deg"))

    @torch.no_grad()
    def update(self, prediction: dict, batch: NormalsBatch) -> None:
        cos = (prediction["normals"].double() * batch.normals.double()).sum(-1)
        self._add("normal_loss", float((1 - cos.pow(2)).sum()), cos.numel())
        self._add("angle_deg", float(torch.rad2deg(torch.arccos(cos.abs().clamp(max=1.0))).sum()), cos.numel())

    def compute(self) -> dict[str, float]:
        return self._means()


@dataclass
class PointNetOptions(ModelOptions):
    """The ``model`` section of ``pointnet`` (:class:`equilib.nn.PointNet`, predicting unit normals).

    Attributes:
        name: The registered model, ``"pointnet"``.
        local_widths: Widths of the per-point MLP on the coordinates.
        global_widths: Widths of the per-point MLP before the max-pool (the last is the global feature's size).
        head_widths: Hidden widths of the per-point head on ``[local, global]``.
        layer_norm: A LayerNorm before every hidden ReLU.
        orient: Flip each predicted normal to point away from its cloud's centroid (a sign convention that commutes
            with E(3) and permutations; it keeps frame-averaged normals from cancelling).
    """

    local_widths: list = field(default_factory=lambda: [64, 64])
    global_widths: list = field(default_factory=lambda: [128, 256])
    head_widths: list = field(default_factory=lambda: [256, 128])
    layer_norm: bool = True
    orient: bool = False


@dataclass
class FrameAveragedPointNetOptions(PointNetOptions):
    """The ``model`` section of ``frame_averaged_pointnet``: :class:`equilib.nn.PointNet` wrapped in
    :class:`equilib.frames.FrameAveraged` (global PCA frames of each cloud, Puny et al. 2022), the averaged normals
    re-normalised.

    Attributes:
        name: The registered model, ``"frame_averaged_pointnet"``.
        local_widths: Widths of the per-point MLP on the coordinates.
        global_widths: Widths of the per-point MLP before the max-pool (the last is the global feature's size).
        head_widths: Hidden widths of the per-point head on ``[local, global]``.
        layer_norm: A LayerNorm before every hidden ReLU.
        orient: Flip each normal of the backbone (in every frame, before the average) to point away from the cloud's
            centroid: the frames then agree on the sign, and their normals do not cancel in the average.
        group: The frames' group: ``"E3"`` (8 frames: rotations, reflections and translations) or ``"SE3"`` (4
            proper frames: no reflections); ``"O3"`` and ``"SO3"`` keep the origin (equivariant about it only; the
            clouds are centred).
        stochastic: One random frame per cloud in each training step (all frames at evaluation).
        on_degenerate: What a degenerate PCA spectrum does (see :class:`equilib.frames.FrameAveraged`); None: its
            default.
    """

    group: str = "E3"
    stochastic: bool = False
    on_degenerate: str | None = None


class UnitVectors(torch.nn.Module):
    """A module's vector outputs divided by their norms (the frame-averaged normals, re-normalised).

    Args:
        module: The module whose ``(..., 3)`` output is normalised.
    """

    def __init__(self, module: torch.nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        """``module(*inputs)`` with every last-axis vector scaled to unit length.

        Args:
            *inputs: The module's inputs.

        Returns:
            The unit vectors.
        """
        out = self.module(*inputs)
        return out / out.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(out.dtype).tiny)


def _pointnet(options, task) -> PointNet:
    return PointNet(local_widths=options.local_widths, global_widths=options.global_widths,
                    head_widths=options.head_widths, orient=options.orient, layer_norm=options.layer_norm,
                    dtype=data_dtype(task))


@MODELS.register("pointnet")
class PointNetModel:
    """:class:`equilib.nn.PointNet` predicting unit normals: the non-equivariant backbone."""

    Options = PointNetOptions

    @staticmethod
    def build(options, task):
        return _pointnet(options, task)


@MODELS.register("frame_averaged_pointnet")
class FrameAveragedPointNetModel:
    """:class:`equilib.nn.PointNet` averaged over the PCA frames of each cloud and re-normalised: exactly
    E(3)-equivariant (stochastic frames in training draw from torch's global generator, which checkpoints keep)."""

    Options = FrameAveragedPointNetOptions

    @staticmethod
    def build(options, task):
        extra = {} if options.on_degenerate is None else {"on_degenerate": options.on_degenerate}
        averaged = FrameAveraged(_pointnet(options, task), NORMALS_INPUTS, NORMALS_OUTPUTS, group=options.group,
                                 stochastic=options.stochastic, **extra)
        return UnitVectors(averaged)


@TASKS.register("normals")
class NormalsTask(TensorTask):
    """Unit normals of point clouds; loss and metric ``mean(1 - (n . n_hat)^2)``; rotated evaluation splits.

    Args:
        config: The run's :class:`~equilib.train.TrainConfig` (``data`` a :class:`NormalsData`).

    Raises:
        ValueError: If ``data.dtype`` is unknown, a rotated split's name is also an upright one, or the file lacks a
            split.
        FileNotFoundError: If ``data.path`` does not exist.
    """

    Data = NormalsData
    Loss = NormalsLoss
    Batch = NormalsBatch
    default_model = "pointnet"
    primary_metric = "normal_loss"
    curve_metrics = ("normal_loss",)

    def __init__(self, config) -> None:
        super().__init__(config)
        d = config.data
        clash = sorted(set(d.val) & set(d.rotated))
        if clash:
            raise ValueError(f"data.rotated: the name {clash[0]!r} is also an upright split in data.val")
        dtype = data_dtype(self)

        def split(name: str, limit=None, rotations=None) -> Frames:
            dataset = NormalsDataset(d.path, name, points=d.points, limit=limit, rotations=rotations, dtype=dtype)
            return Frames(dataset, cache=False)  # already tensors in memory

        self.train = split(d.train, d.max_train)
        self.val = {name: split(file_split, d.max_val) for name, file_split in d.val.items()}
        for name, file_split in d.rotated.items():
            self.val[name] = split(file_split, d.max_val, self.rotations(file_split))

    def rotations(self, split: str) -> torch.Tensor:
        """The fixed rotations of a split's clouds: Haar SO(3), one per cloud of the file's split, drawn from
        ``data.rotation_seed`` (cloud k gets the k-th whatever ``max_val`` keeps).

        Args:
            split: A split of the file.

        Returns:
            ``(clouds kept, 3, 3)`` float64 rotation matrices.
        """
        d = self.config.data
        clouds = len(NormalsDataset(d.path, split, points=1))
        generator = torch.Generator().manual_seed(d.rotation_seed)
        rotations = SO3().sample(clouds, generator=generator, dtype=torch.float64).linear
        return rotations[:d.max_val]

    def augment(self, batch: NormalsBatch, step: int) -> NormalsBatch:
        if not self.config.data.augment:
            return batch
        generator = self.augmentation_generator(step)
        rotations = SO3().sample(len(batch.points), generator=generator, dtype=torch.float64).linear
        turn = rotations.to(batch.points.dtype).transpose(1, 2)
        return NormalsBatch(batch.points @ turn, batch.normals @ turn)

    def predict(self, model, batch: NormalsBatch) -> dict:
        return {"normals": model(batch.points)}

    def loss(self, prediction, batch: NormalsBatch, count_reducer=None):
        return mean_loss(normal_loss(prediction["normals"], batch.normals), "normals", "normal_loss", count_reducer)

    def metrics(self) -> NormalError:
        return NormalError()

    def symmetry(self, model, batch: NormalsBatch) -> Symmetry:
        """The model under E(3) x S_m: points rotate, reflect, translate and are permuted; normals rotate and reflect
        with them and follow their points.

        Args:
            model: The model.
            batch: A :class:`NormalsBatch`.

        Returns:
            The :class:`~equilib.train.Symmetry` under ``E3() * Permutations(points)``.
        """
        points = batch.points.shape[-2]
        return Symmetry(model, E3() * Permutations(points), (batch.points,), NORMALS_INPUTS, NORMALS_OUTPUTS)
