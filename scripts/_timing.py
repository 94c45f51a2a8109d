"""The timing loop of the benchmark scripts (``bench_scatter.py``, ``bench_tp.py``, ``bench_mlip.py``): the median
milliseconds of each of several functions after warm-up calls, the functions taking turns so that drift hits all of
them alike; on a GPU each call is timed with CUDA events.

A script puts the checkout on ``sys.path`` and imports this module as ``scripts._timing``.
"""

from __future__ import annotations

import statistics
import time

import torch


def time_once(fn, device: str = "cpu") -> float:
    """Milliseconds of one call of ``fn`` (CUDA events on a GPU)."""
    if device == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        return start.elapsed_time(end)
    t0 = time.perf_counter()
    fn()
    return 1e3 * (time.perf_counter() - t0)


def median_ms(fns: dict, warmup: int, repeats: int, device: str = "cpu") -> dict:
    """Median milliseconds of ``repeats`` calls of each function, after ``warmup`` calls of each; the functions
    take turns so that drift hits all of them alike."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    samples = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            samples[name].append(time_once(fn, device))
    return {name: statistics.median(values) for name, values in samples.items()}
