"""Counting events that share (run, luminosityBlock, event) across chunks."""

from __future__ import annotations

import numpy as np
from coffea.processor import accumulate

from coffea_fastsim.processing.identities import EventIdentities


def _ids(events: list[int], run: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = len(events)
    return np.full(n, run), np.zeros(n, np.int64), np.array(events)


def test_repeats_within_and_across_chunks_are_counted_once_each():
    chunks = [
        EventIdentities.of(*_ids([1, 2, 2])),  # one repeat inside the chunk
        EventIdentities.of(*_ids([2, 3])),  # 2 again: another repeat
        EventIdentities.of(*_ids([1, 2], run=2)),  # another run: new identities
    ]
    total = accumulate(chunks)
    assert total.repeats == 2
    assert len(total) == 5


def test_no_repeat_in_distinct_events():
    assert EventIdentities.of(*_ids(list(range(1000)))).repeats == 0
    assert EventIdentities().repeats == 0
