"""Timing helper shared by the benchmark scripts."""

from __future__ import annotations

import time
from collections.abc import Callable


def best_rate(function: Callable[[], object], n_events: int, repeats: int) -> float:
    """Best events/s over ``repeats`` calls of ``function``, each processing ``n_events``."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return n_events / best
