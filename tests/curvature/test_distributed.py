"""The loss operators under torch.distributed: two gloo processes on the CPU, each holding half of the batches, get
the products of one process holding all of them (the loss weighting uses the global counts and weights)."""

import pytest
import torch
import torch.multiprocessing as mp
from torch_geometric.data import Batch

from equilib.curvature import GGN, EmpiricalFisher, Hessian, task_loss
from tests.curvature.test_operators import MeanTask, PotentialTask, mlp, mse, potential, regression, structures

pytestmark = pytest.mark.slow  # spawns processes; the full suite (CI) runs it
SIZES = (2, 9, 4, 5)


def products(shard: list[int]) -> dict[str, torch.Tensor]:
    """The products of the operators built on the batches ``shard`` (indices) with one seeded vector each."""
    model, batches = mlp(), [regression(SIZES)[k] for k in shard]
    v = torch.randn(32, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    samples = [(x[i:i + 1], y[i:i + 1]) for x, y in batches for i in range(x.shape[0])]
    frames = [structures()[k] for k in shard if k < 3]
    pot = potential()
    u = torch.randn(sum(p.numel() for p in pot.parameters()), generator=torch.Generator().manual_seed(8),
                    dtype=torch.float64)
    fisher = EmpiricalFisher(model, task_loss(MeanTask()), samples)
    return {
        "weighted": Hessian(model, mse, batches, weights=[SIZES[k] for k in shard]).matvec(v),
        "task": Hessian(model, task_loss(MeanTask()), batches).matvec(v),
        "fd": Hessian(model, task_loss(MeanTask()), batches, method="fd").matvec(v),
        "ggn": GGN(model, lambda m, b: m(b[0]), lambda out, b: (out - b[1]).pow(2).mean(), batches).matvec(v),
        "fisher": fisher.matvec(v), "samples": torch.tensor(float(fisher.num_samples), dtype=torch.float64),
        "gradient": Hessian(model, task_loss(MeanTask()), batches).gradient(),
        "potential": Hessian(pot, task_loss(PotentialTask()), [Batch.from_data_list([f]) for f in frames]).matvec(u),
    }


def _worker(rank, world, init_file, result_file):
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        torch.save(products([0, 1] if rank == 0 else [2, 3]), f"{result_file}.{rank}")
    finally:
        dist.destroy_process_group()


def test_two_gloo_processes_with_half_the_batches_equal_one_process(tmp_path):
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(tmp_path / "products")), nprocs=2)
    single = products([0, 1, 2, 3])
    for rank in range(2):
        parallel = torch.load(f"{tmp_path / 'products'}.{rank}", weights_only=True)
        for name, value in single.items():
            # central differences divide the rounding of the gradients' sums over ranks by the step (~1e-5)
            rtol = 1e-8 if name == "fd" else 1e-12
            assert float((parallel[name] - value).norm()) <= rtol * float(value.norm()), (rank, name)
    assert int(single["samples"]) == sum(SIZES)
