"""Counting events that share (run, luminosityBlock, event) across chunks."""

from __future__ import annotations

import numpy as np
import pytest
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


@pytest.mark.parametrize("n_chunks", [1, 3, 17])
def test_repeats_do_not_depend_on_chunking(n_chunks):
    rng = np.random.default_rng(7)
    events = rng.integers(0, 400, 1000)  # about 600 repeats among 1000 events
    expected = len(events) - len(set(events.tolist()))
    chunks = [EventIdentities.of(*_ids(part.tolist())) for part in np.array_split(events, n_chunks)]
    total = accumulate(chunks)
    assert total.repeats == expected
    assert len(total) == len(set(events.tolist()))


def test_a_checkpoint_of_the_previous_layout_adds_up():
    previous = EventIdentities()
    previous.__setstate__({"hashes": EventIdentities.of(*_ids([1, 2])).parts[0], "repeats": 1})
    total = accumulate([previous, EventIdentities.of(*_ids([2, 3]))])
    assert total.repeats == 2
