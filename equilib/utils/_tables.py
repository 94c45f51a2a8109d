"""Modules whose precomputed floating tables follow the module's dtype exactly.

``module.to(dtype)`` (and ``.double()``, ``.float()``, ``.half()``) casts every floating buffer, so a table computed
in float64, stored in float32 and then converted back to float64 keeps float32's rounding: an op built in float32
and converted would be equivariant to ~1e-8 instead of float64's ~1e-15. A :class:`TableModule` keeps the float64
source of each table it registers (on the CPU) and, after every ``_apply`` (``.to``, ``.double()``, ``.cuda()``,
...), re-casts the source to the table's new dtype and device. So converting a module gives, bit for bit, the
tables of building it in the new dtype (tested for every backend and the potential).

Memory: the sources are a float64 copy of the tables on the host, never shared with a table (an in-place write to a
table, such as ``load_state_dict``'s, must not reach its source): twice the tables' size for a float32 module.

Tables made by e3nn modules (the Wigner 3j buffers of ``o3.TensorProduct``, computed in the global default dtype)
are put under the same rule with :meth:`TableModule.adopt_wigner_3j`. Tables are not state: registered tables are
non-persistent, and after ``load_state_dict`` every table is re-cast from its source, so a file written in another
dtype (e3nn saves its 3j symbols) never brings its rounding in.
"""

from __future__ import annotations

import re

import numpy as np
import torch
from e3nn import o3

_WIGNER_3J = re.compile(r"_w3j_(\d+)_(\d+)_(\d+)")


class TableModule(torch.nn.Module):
    """A ``torch.nn.Module`` whose registered tables are re-cast from float64 sources when its dtype changes.

    Examples:
        >>> import math
        >>> import torch
        >>> from equilib.utils import TableModule
        >>> module = TableModule()
        >>> module.register_table("third", torch.tensor([1 / 3], dtype=torch.float64), torch.float32)
        >>> module.third.dtype
        torch.float32
        >>> module = module.double()  # re-cast from the float64 source, not from the float32 table
        >>> float(module.third) == 1 / 3
        True
    """

    def __init__(self) -> None:
        super().__init__()
        self._table_sources: dict[str, torch.Tensor] = {}  # dotted buffer path -> float64 source on the CPU
        self.register_load_state_dict_post_hook(_recast_after_loading)

    def register_table(self, name: str, value: np.ndarray | torch.Tensor | None, dtype: torch.dtype) -> None:
        """Register a non-persistent buffer ``name`` holding ``value`` in ``dtype``, keeping a float64 source.

        Args:
            name: The buffer's attribute name.
            value: The table, computed in float64 (converted to float64 on the CPU for the source); None registers
                an absent buffer.
            dtype: The dtype the buffer has now; later dtype changes of the module re-cast it from the source.
        """
        if value is None:
            self.register_buffer(name, None, persistent=False)
            return
        source = torch.as_tensor(value, dtype=torch.float64, device="cpu")
        self._table_sources[name] = source
        self.register_buffer(name, source.to(dtype, copy=True), persistent=False)

    def adopt_wigner_3j(self, module: torch.nn.Module) -> None:
        """Put the Wigner 3j buffers of the e3nn modules inside ``module`` under this module's rule.

        Their sources are e3nn's float64 symbols (``o3.wigner_3j``); they are re-cast now and after every dtype
        change, so they no longer carry the rounding of the dtype e3nn built them in.

        Args:
            module: A submodule of this module (e.g. an ``o3.TensorProduct``) whose buffers named
                ``_w3j_<l1>_<l2>_<l3>`` are Wigner 3j symbols.
        """
        prefix = next(name for name, sub in self.named_modules() if sub is module)
        adopted = []
        for path, _ in module.named_buffers(prefix=prefix):
            match = _WIGNER_3J.fullmatch(path.rpartition(".")[2])
            if match is not None:
                self._table_sources[path] = o3.wigner_3j(*map(int, match.groups()), dtype=torch.float64)
                adopted.append(path)
        self._recast(adopted)

    def _buffer(self, path: str) -> torch.Tensor:
        owner, _, name = path.rpartition(".")
        return self.get_submodule(owner)._buffers[name]

    def _recast(self, paths) -> None:
        """Tables at ``paths`` from their sources, in the dtype and on the device they have now."""
        for path in paths:
            owner, _, name = path.rpartition(".")
            buffers = self.get_submodule(owner)._buffers
            buffers[name] = self._table_sources[path].to(buffers[name].device, buffers[name].dtype, copy=True)

    def _apply(self, fn, recurse: bool = True):
        """``torch.nn.Module._apply``, then the tables whose dtype it changed are re-cast from their sources (a move
        between devices, or an ``fn`` that keeps dtypes, rounds nothing and is left as it is)."""
        dtypes = {path: self._buffer(path).dtype for path in self._table_sources}
        super()._apply(fn, recurse)
        self._recast([path for path, dtype in dtypes.items() if self._buffer(path).dtype != dtype])
        return self


def _recast_after_loading(module: TableModule, incompatible_keys) -> None:
    """A loaded state dict may carry tables (e3nn's 3j symbols) in another dtype's rounding: take the sources."""
    module._recast(module._table_sources)
