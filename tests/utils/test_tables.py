"""TableModule: tables follow the module's dtype exactly (re-cast from float64 sources), e3nn's 3j symbols too."""

import copy
import math

import torch
from e3nn import o3

from equilib.utils import TableModule


class _Holder(TableModule):
    def __init__(self, dtype):
        super().__init__()
        self.register_table("third", torch.full((4,), 1.0, dtype=torch.float64) / 3, dtype)
        self.register_table("absent", None, dtype)
        self.linear = torch.nn.Linear(2, 2, dtype=dtype)
        self.tp = o3.FullyConnectedTensorProduct("1x1o", "1x1o", "1x2e")  # 3j buffers in the default dtype
        self.tp.to(dtype)
        self.adopt_wigner_3j(self.tp)


def test_tables_are_recast_from_their_float64_sources():
    module = _Holder(torch.float32)
    assert module.third.dtype == torch.float32 and module.absent is None
    module.double()
    assert torch.equal(module.third, torch.full((4,), 1.0, dtype=torch.float64) / 3)
    assert module.linear.weight.dtype == torch.float64
    ((_, w3j),) = [(n, b) for n, b in module.tp.named_buffers() if "_w3j_" in n]
    assert w3j.dtype == torch.float64 and torch.equal(w3j, o3.wigner_3j(1, 1, 2, dtype=torch.float64))
    module.half()
    assert torch.equal(module.third, torch.full((4,), 1.0, dtype=torch.float64).div(3).half())
    module.to(torch.float64)
    assert abs(float(module.third[0]) - 1 / 3) < 1e-16


def test_tables_are_not_state_and_survive_copies():
    module = _Holder(torch.float32)
    state = module.state_dict()
    assert "linear.weight" in state and "third" not in state
    clone = copy.deepcopy(module).to(torch.float64)
    assert torch.equal(clone.third, torch.full((4,), 1.0, dtype=torch.float64) / 3)
    assert module.third.dtype == torch.float32  # the original is untouched
    # e3nn saves its 3j symbols: a float32 module's file does not bring their float32 rounding into a float64 one
    (w3j_key,) = [name for name, _ in module.named_buffers() if "_w3j_" in name]
    assert w3j_key in state and state[w3j_key].dtype == torch.float32
    clone.load_state_dict(state)
    assert torch.equal(clone.third, torch.full((4,), 1.0, dtype=torch.float64) / 3)
    assert torch.equal(clone.get_buffer(w3j_key), o3.wigner_3j(1, 1, 2, dtype=torch.float64))


def test_sources_are_not_shared_with_tables_and_in_place_applies_are_kept():
    module = _Holder(torch.float64)
    module.third.mul_(2)  # an in-place write to a table does not reach its source
    assert float(module.float().double().third[0]) == 1 / 3
    module.share_memory()  # an _apply that keeps the dtype changes nothing
    assert module.third.is_shared() and math.isclose(float(module.third[1]), 1 / 3, rel_tol=1e-16)
