"""equilib: equivariant operations with interchangeable tensor-product backends.

The public parts are sub-packages: :mod:`equilib.ops` (tensor products behind one interface),
:mod:`equilib.so3` (spherical harmonics, quadrature, coupling coefficients), :mod:`equilib.groups` (groups, their
actions, equivariance checks), :mod:`equilib.frames` (frame averaging), :mod:`equilib.data`, :mod:`equilib.nn`,
:mod:`equilib.train` and :mod:`equilib.utils`.
"""

__version__ = "0.1.0"
