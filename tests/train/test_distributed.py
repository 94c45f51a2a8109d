"""Data parallel training, for every task: two gloo processes on the CPU make the same updates as one process on the
same global batch, and report the same metrics."""

import json

import pytest
import torch
import torch.multiprocessing as mp

from equilib.train import Trainer, load_config
from tests.train.test_tasks import nbody_config

pytestmark = pytest.mark.slow  # spawns processes; the full suite (CI) runs it
DATA = "datasets/oc20_emt/data"


def _config(task, out_dir):
    if task == "nbody":
        return nbody_config(out_dir, "trainer.max_steps=3", "trainer.eval_every=3", "trainer.checkpoint_every=3",
                            "callbacks=[{name: equivariance_error, every: 3}]")
    return load_config(None, [
        f"trainer.out_dir={out_dir}", f"data.train={DATA}/s2ef_train.lmdb",
        f"data.val={{val_id: {DATA}/s2ef_val_id.lmdb}}", "data.max_train_frames=16", "data.batch_size=8",
        "model.channels=8", "model.num_layers=1", "model.dtype=float64", "trainer.max_steps=3",
        "trainer.eval_every=3", "trainer.checkpoint_every=3", "logging.progress=false", "logging.plots=false"])


def _worker(rank, task, world, init_file, out_dir, result_file):
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        trainer = Trainer(_config(task, out_dir))
        final = trainer.run()
        if rank == 0:
            torch.save({"params": trainer.model.state_dict(), "final": json.dumps(final)}, result_file)
    finally:
        dist.destroy_process_group()


KEYS = {"potential": ("val_id/forces_mae", "val_id/energy_mae", "val_id/efwt", "train_loss"),
        "nbody": ("valid/mse", "train_loss")}


@pytest.mark.parametrize("task", KEYS)
def test_two_gloo_processes_equal_one_process(task, tmp_path):
    mp.spawn(_worker, args=(task, 2, str(tmp_path / "init"), str(tmp_path / "ddp"), str(tmp_path / "ddp.pt")), nprocs=2)
    parallel = torch.load(tmp_path / "ddp.pt", weights_only=False)
    single = Trainer(_config(task, tmp_path / "single"))
    final = single.run()
    for name, value in single.model.state_dict().items():
        assert torch.allclose(parallel["params"][name], value, rtol=1e-9, atol=1e-12), name
    reduced = json.loads(parallel["final"])
    for key in KEYS[task]:
        assert abs(reduced[key] - final[key]) < 1e-9 * max(1.0, abs(final[key])), key
    assert (tmp_path / "ddp" / "model.pt").is_file() and (tmp_path / "ddp" / "metrics.csv").is_file()
