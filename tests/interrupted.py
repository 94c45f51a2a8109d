"""What the exact-resume tests share: a run killed mid-training and a fresh trainer resumed from its checkpoint."""

import pytest


def resumed_after_interrupt(make, at_step: int):
    """Runs ``make()`` until it is about to train its step ``at_step + 1`` and raises ``KeyboardInterrupt`` there (as a
    killed job would), then returns a fresh ``make()`` loaded from the checkpoint the run left (not yet run)."""
    interrupted = make()
    original = interrupted.train_step

    def dies(batch):
        if interrupted.step == at_step:
            raise KeyboardInterrupt
        return original(batch)

    interrupted.train_step = dies
    with pytest.raises(KeyboardInterrupt):
        interrupted.run()
    resumed = make()
    resumed.load_checkpoint()
    return resumed
