"""Image classification under affine transformations, the affNIST / homNIST protocol of Mironenco & Forre (ICLR 2024):
train on digits only centred in their frame, evaluate on clean digits and on digits under random affine maps and
homographies (``python -m datasets.affine_digits``). Loss the cross-entropy; metrics the error rate and the
cross-entropy per split. Models take images ``(B, C, H, W)`` with intensities in [0, 1] and return logits
``(B, classes)``; they should be invariant under the affine group acting on the image (``equilib.groups.Images``)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import torch

from ..groups import GLPlus, GroupElement, Images, Scalars, plane_rotations
from ..lie import AffineResNet, PlainCNN
from ._batches import Frames
from ._registry import MODELS, TASKS
from ._task import LossOptions, ModelOptions, SummedMetrics, Symmetry, mean_loss
from ._tensor_task import TensorBatch, TensorPairs, TensorTask, data_dtype, read_npz


@dataclass
class ImageData:
    """The ``data`` section of the image classification task.

    Attributes:
        path: The ``.npz`` written by ``python -m datasets.affine_digits``.
        train: The split of the file used for training.
        val: Evaluation splits, ``{name in logs: split in file}`` (splits the file lacks are skipped).
        max_train: The first training images kept (None: all).
        max_val: The first images of each evaluation split (None: all).
        batch_size: Images per training batch.
        eval_batch_size: Images per evaluation batch.
        augment: ``"none"`` or ``"affine"``: each training image under a random affine map of the frame
            ``x -> A x + t`` (coordinates in [-1, 1]), ``A = R(theta) Sh(shear) diag(sx, sy)`` with theta ~ U(+-20
            degrees), shear ~ U(+-0.2), sx, sy ~ U(0.8, 1.2), t ~ U(+-``max_shift``)^2, drawn from (seed, step).
        max_shift: The largest translation of the ``affine`` augmentation, in units of half the frame.
        dtype: ``"float32"`` or ``"float64"`` for data and model.

    Raises:
        ValueError: If ``augment`` is unknown or ``max_shift`` is not in [0, 1).
    """

    path: str = "datasets/affine_digits/data/affine_mnist.npz"
    train: str = "train"
    val: dict = field(default_factory=lambda: {
        "valid": "valid", "valid_affine": "valid_affine", "test_clean": "test_clean", "test_affine": "test_affine",
        "test_homography": "test_homography"})
    max_train: int | None = None
    max_val: int | None = None
    batch_size: int = 128
    eval_batch_size: int = 500
    augment: str = "none"
    max_shift: float = 0.2
    dtype: str = "float32"

    def __post_init__(self) -> None:
        if self.augment not in ("none", "affine"):
            raise ValueError(f"data.augment: expected 'none' or 'affine', got {self.augment!r}")
        if not (isinstance(self.max_shift, (int, float)) and 0 <= self.max_shift < 1):
            raise ValueError(f"data.max_shift: expected a number in [0, 1), got {self.max_shift!r}")


@dataclass
class ImageLoss(LossOptions):
    """The ``loss`` section: the loss is the cross-entropy of the logits.

    Attributes:
        terms: Extra registered loss terms (``equivariance``, ``soft_equivariance`` with ``method: sampled``, ...).
    """


@dataclass
class ImageBatch(TensorBatch):
    """A batch of images and their labels.

    Attributes:
        images: ``(batch, C, H, W)`` intensities in [0, 1].
        labels: ``(batch,)`` int64 classes.
    """

    images: torch.Tensor
    labels: torch.Tensor


class Accuracy(SummedMetrics):
    """Error rate (``error``, in [0, 1]) and mean cross-entropy (``nll``) of logits against labels, reduced over
    ranks."""

    def __init__(self) -> None:
        super().__init__(("error", "nll"))

    @torch.no_grad()
    def update(self, prediction: dict, batch: ImageBatch) -> None:
        logits = prediction["logits"].double()
        wrong = (logits.argmax(-1) != batch.labels).sum()
        self._add("error", float(wrong), len(batch.labels))
        nll = torch.nn.functional.cross_entropy(logits, batch.labels, reduction="sum")
        self._add("nll", float(nll), len(batch.labels))

    def compute(self) -> dict[str, float]:
        return self._means()


def random_affine(n: int, max_shift: float, generator: torch.Generator) -> GroupElement:
    """``n`` random affine maps of the frame in affNIST's ranges (see :class:`ImageData`), float64.

    Args:
        n: Number of maps.
        max_shift: The largest translation per axis, in units of half the frame.
        generator: Torch generator of the draw.

    Returns:
        A :class:`~equilib.groups.GroupElement` with a ``(n, 2, 2)`` linear part and ``(n, 2)`` translation.
    """
    u = torch.rand(n, 6, generator=generator, dtype=torch.float64) * 2 - 1  # U(-1, 1)
    theta, shear = u[:, 0] * math.radians(20), u[:, 1] * 0.2
    sx, sy = 1 + 0.2 * u[:, 2], 1 + 0.2 * u[:, 3]
    zero, one = torch.zeros(n, dtype=torch.float64), torch.ones(n, dtype=torch.float64)
    rotation = plane_rotations(theta)
    sheared = torch.stack([torch.stack([one, shear], -1), torch.stack([zero, one], -1)], -2)
    scaled = torch.diag_embed(torch.stack([sx, sy], -1))
    return GroupElement(linear=rotation @ sheared @ scaled, translation=max_shift * u[:, 4:])


def _image_model(cls, name: str, options, task) -> torch.nn.Module:
    """``cls(channels, classes, **options)`` in the task's dtype, for the image classification task only."""
    if not isinstance(task, ImageClassificationTask):
        raise ValueError(f"model.name: '{name}' needs the image_classification task, not {type(task).__name__}")
    kwargs = {k: v for k, v in dataclasses.asdict(options).items() if k != "name"}
    return cls(task.channels, task.num_classes, **kwargs).to(data_dtype(task))


@dataclass
class AffineResNetOptions(ModelOptions):
    """The ``model`` section of ``affine_resnet`` (:class:`equilib.lie.AffineResNet`, the paper's GResNet).

    Attributes:
        name: The registered model, ``"affine_resnet"``.
        group: ``"SL2"``, ``"GL2"`` (GL+(2)) or ``"SO2"``: the affine group ``R^2 x| G`` it is equivariant to.
        channels: Channels of every group convolution.
        samples: Group elements drawn per layer and forward (the Monte Carlo samples K).
        kernel_size: Side of the (odd) kernels.
        head_hidden: Width of the classifier head.
        dropout: Dropout of the head.
        hidden: Width of the SIREN kernel networks.
        siren_layers: Sine layers of the SIREN kernel networks.
        omega0: The SIRENs' frequency factor.
        mask: ``"auto"`` (hard disc for SL(2) and SO(2), smooth for GL+(2)), or the layers' other masks.
        mask_radius: Radius of the kernel mask on the kernel grid ([-1, 1]^2).
        weighting: Monte Carlo weights of the group integral, ``"uniform"`` (the paper's code) or ``"haar"``.
        seed: Seed of the layers' draws (None: the global generator).
        fixed: Re-seed before every draw (the same elements at every forward).
        rotations: Angles of the drawn elements, ``"haar"`` (independent) or ``"stratified"`` (an even grid with a
            random offset).
    """

    group: str = "SL2"
    channels: int = 16
    samples: int = 8
    kernel_size: int = 5
    head_hidden: int = 128
    dropout: float = 0.3
    hidden: int = 96
    siren_layers: int = 1
    omega0: float = 10.0
    mask: str = "auto"
    mask_radius: float = 1.0
    weighting: str = "uniform"
    seed: int | None = None
    fixed: bool = False
    rotations: str = "haar"


@MODELS.register("affine_resnet")
class AffineResNetModel:
    """:class:`equilib.lie.AffineResNet` on the task's images."""

    Options = AffineResNetOptions

    @staticmethod
    def build(options, task):
        return _image_model(AffineResNet, "affine_resnet", options, task)


@dataclass
class PlainCNNOptions(ModelOptions):
    """The ``model`` section of ``plain_cnn`` (:class:`equilib.lie.PlainCNN`: the same network with plain
    convolutions, the baseline with or without ``data.augment: affine``).

    Attributes:
        name: The registered model, ``"plain_cnn"``.
        channels: Channels of every convolution.
        kernel_size: Side of the (odd) kernels.
        head_hidden: Width of the classifier head.
        dropout: Dropout of the head.
    """

    channels: int = 32
    kernel_size: int = 5
    head_hidden: int = 128
    dropout: float = 0.3


@MODELS.register("plain_cnn")
class PlainCNNModel:
    """:class:`equilib.lie.PlainCNN` on the task's images."""

    Options = PlainCNNOptions

    @staticmethod
    def build(options, task):
        return _image_model(PlainCNN, "plain_cnn", options, task)


@TASKS.register("image_classification")
class ImageClassificationTask(TensorTask):
    """Images to class logits (module docs); the file's images are uint8, seen as ``value / 255``.

    Attributes:
        channels: Image channels.
        size: ``(H, W)``.
        num_classes: One more than the largest training label.

    Args:
        config: The run's :class:`~equilib.train.TrainConfig` (``data`` an :class:`ImageData`).

    Raises:
        FileNotFoundError: If ``data.path`` does not exist.
        ValueError: If the file lacks the training split or its images are not ``(N, C, H, W)``.
    """

    Data = ImageData
    Loss = ImageLoss
    Batch = ImageBatch
    default_model = "affine_resnet"
    primary_metric = "nll"
    curve_metrics = ("error", "nll")

    def __init__(self, config) -> None:
        super().__init__(config)
        d = config.data
        arrays = read_npz(d.path, "datasets.affine_digits", (f"{d.train}_x", f"{d.train}_y"))
        images = arrays[f"{d.train}_x"]
        if images.ndim != 4:
            raise ValueError(f"data.path: {d.train}_x has shape {images.shape}, expected (N, C, H, W)")
        self.channels, self.size = int(images.shape[1]), (int(images.shape[2]), int(images.shape[3]))
        self.num_classes = int(arrays[f"{d.train}_y"].max()) + 1

        def split(name: str, limit) -> Frames:
            x, y = torch.as_tensor(arrays[f"{name}_x"]), torch.as_tensor(arrays[f"{name}_y"]).long()
            if x.shape[1:] != images.shape[1:] or y.shape != x.shape[:1]:
                raise ValueError(f"data.path: {name}_x / {name}_y have shapes {tuple(x.shape)} / {tuple(y.shape)}, "
                                 f"expected (N, {', '.join(map(str, images.shape[1:]))}) / (N,)")
            return Frames(TensorPairs(x, y), cache=False, limit=limit)

        self.train = split(d.train, d.max_train)
        self.val = {name: split(s, d.max_val) for name, s in d.val.items() if f"{s}_x" in arrays}

    def collate(self, frames) -> ImageBatch:
        images, labels = zip(*frames)
        scale = 255.0 if images[0].dtype == torch.uint8 else 1.0
        return ImageBatch(torch.stack(images).to(data_dtype(self)) / scale, torch.stack(labels))

    def augment(self, batch: ImageBatch, step: int) -> ImageBatch:
        if self.config.data.augment == "none":
            return batch
        g = random_affine(len(batch.images), self.config.data.max_shift, self.augmentation_generator(step))
        moved = Images(self.channels, self.size).act(g.to(dtype=batch.images.dtype, device=batch.images.device),
                                                     batch.images)
        return ImageBatch(moved, batch.labels)

    def predict(self, model, batch: ImageBatch) -> dict:
        return {"logits": model(batch.images)}

    def loss(self, prediction, batch: ImageBatch, count_reducer=None):
        nll = torch.nn.functional.cross_entropy(prediction["logits"], batch.labels, reduction="none")
        return mean_loss(nll, "labels", "nll", count_reducer)

    def metrics(self) -> Accuracy:
        return Accuracy()

    def symmetry(self, model, batch: ImageBatch) -> Symmetry:
        """The model's logits under GL+(2) acting on the images about the frame's centre (``GLPlus(2, scale=0.2)``:
        maps near the identity, as affNIST's; translations are left out, as they move digits out of the frame).

        Args:
            model: The model.
            batch: An :class:`ImageBatch`.

        Returns:
            The :class:`~equilib.train.Symmetry`: invariant logits.
        """
        return Symmetry(model, GLPlus(2, scale=0.2), (batch.images,), (Images(self.channels, self.size),),
                        (Scalars(),))
