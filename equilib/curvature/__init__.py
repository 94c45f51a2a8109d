"""Curvature diagnostics: second-order information of any equilib model's training loss.

Operators (:class:`CurvatureOperator`: a symmetric linear operator on flat parameter vectors, with named ``blocks`` and
a SciPy view): :class:`Hessian` of a loss (double backward, triple for force losses, or finite differences of
gradients), the generalized Gauss-Newton :class:`GGN`, the :class:`EmpiricalFisher`, M-FAC's damped inverse Fisher
(:class:`StaticMFAC`, :class:`DynamicMFAC`), and :class:`DenseOperator` (the tests' reference). Losses: any
``loss(model, batch)`` or an equilib task (:func:`task_loss`), over one batch or an exact average over many, summed over
ranks under ``torch.distributed``.

Estimators (only ``matvec``/``matmat``, so they run on every operator): :func:`top_eigenpairs` (Lanczos with full
reorthogonalisation) and :func:`power_iteration`; :func:`hutchinson`, :func:`hutchpp`, :func:`block_traces`,
:func:`frobenius_norm`; :func:`spectral_density` (stochastic Lanczos quadrature) with :func:`smooth`,
:func:`plot_density` and :func:`trace_of_function`; :func:`stability` ratios and :func:`preconditioned_sharpness`; loss
landscapes (:func:`loss_slice_1d`, :func:`loss_surface_2d` along Hessian eigenvectors or :func:`random_direction`,
:func:`plot_landscape`); Hessian alignment across domains (:func:`hessian_alignment`, the ``hessian_alignment`` loss
term). :class:`MFAC` is the M-FAC optimizer; :class:`Report` writes the tables and figures of the ``curvature`` callback
and ``equilib curvature``. See docs/curvature.md.
"""

from ._alignment import Alignment, hessian_alignment, hessian_diagonal, metal_domains, split_domains
from ._base import CurvatureOperator, DenseOperator
from ._density import SpectralDensity, plot_density, smooth, spectral_density, trace_of_function
from ._fisher import EmpiricalFisher
from ._gauss_newton import GGN
from ._hessian import Hessian
from ._lanczos import Eigenpairs, Lanczos, lanczos, top_eigenpairs
from ._landscape import (
                         LossSlice,
                         LossSurface,
                         filter_normalize,
                         loss_slice_1d,
                         loss_surface_2d,
                         plot_landscape,
                         random_direction,
)
from ._loss import TaskLoss, loss_mode, task_loss
from ._mfac import DynamicMFAC, StaticMFAC
from ._mfac_optimizer import MFAC
from ._parameters import ParameterSpace
from ._power import power_iteration
from ._report import Report
from ._stability import PreconditionedOperator, Stability, adam_preconditioner, preconditioned_sharpness, stability
from ._trace import BlockTraces, Estimate, block_traces, frobenius_norm, hutchinson, hutchpp

__all__ = ["Alignment", "BlockTraces", "CurvatureOperator", "DenseOperator", "DynamicMFAC", "Eigenpairs",
           "EmpiricalFisher", "Estimate", "GGN", "Hessian", "Lanczos", "LossSlice", "LossSurface", "MFAC",
           "ParameterSpace", "PreconditionedOperator", "Report", "SpectralDensity", "Stability", "StaticMFAC",
           "TaskLoss", "adam_preconditioner", "block_traces", "filter_normalize", "frobenius_norm",
           "hessian_alignment", "hessian_diagonal", "hutchinson", "hutchpp", "lanczos", "loss_mode", "loss_slice_1d",
           "loss_surface_2d", "metal_domains", "plot_density", "plot_landscape", "power_iteration",
           "preconditioned_sharpness", "random_direction", "smooth", "spectral_density", "split_domains",
           "stability", "task_loss", "top_eigenpairs", "trace_of_function"]
