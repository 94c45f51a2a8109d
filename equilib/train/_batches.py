"""The batches of an epoch: a seeded order, its global batches split over the data-parallel ranks, and the frames
either held in memory or streamed from disk by ``torch.utils.data.DataLoader`` workers.

The order of epoch e is a permutation drawn from (seed, e); global batch b is ``order[b*B:(b+1)*B]`` and rank r of
w takes every w-th frame of it, from position r. Both ways of loading yield the same batches in the same order, so a
run resumed at a position of an epoch sees what an uninterrupted run sees.
"""

from __future__ import annotations

import torch


class Frames(torch.utils.data.Dataset):
    """A map-style dataset (the first ``limit`` frames), held in memory after one pass when ``cache``."""

    def __init__(self, dataset, cache: bool, limit: int | None = None) -> None:
        self.dataset = dataset
        self.n = len(dataset) if limit is None else min(limit, len(dataset))
        self.frames = [dataset[k] for k in range(self.n)] if cache else None

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, k: int):
        return self.frames[k] if self.frames is not None else self.dataset[k]


def epoch_order(seed: int, epoch: int, n: int) -> torch.Tensor:
    """The order of the frames in ``epoch``: a permutation drawn from (seed, epoch)."""
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return torch.randperm(n, generator=generator)


def rank_batches(order: torch.Tensor, batch_size: int, start: int, rank: int, world: int) -> list[list[int]]:
    """This rank's frame indices for every global batch of ``order`` from batch ``start`` on."""
    steps = -(-len(order) // batch_size)
    return [order[b * batch_size : (b + 1) * batch_size][rank::world].tolist() for b in range(start, steps)]


def batches(frames: Frames, index_lists: list[list[int]], collate, workers: int = 0):
    """The collated batches of ``index_lists``: built here from memory (or in this process when ``workers`` is 0),
    else read and collated by ``workers`` DataLoader processes, in order."""
    if frames.frames is not None or workers == 0:
        for indices in index_lists:
            yield collate([frames[k] for k in indices])
        return
    loader = torch.utils.data.DataLoader(frames, batch_sampler=index_lists, collate_fn=collate, num_workers=workers,
                                         prefetch_factor=4, persistent_workers=False)
    yield from loader
