"""Events that share a (run, luminosityBlock, event): counted across chunks, files and workers.

Private productions often restart the event number in every job file, so the identity of an
event need not be unique. The DL noise stays independent (its key includes the GEN features,
see ``coffea_fastsim.surrogate.noise``), but a user should know: each chunk returns the
64-bit hashes of its selected events' identities as an :class:`EventIdentities`, coffea's
accumulator adds them, and the run reports how many events repeat an identity already seen.
Memory: 8 bytes per distinct selected event in the accumulated output.
"""

from __future__ import annotations

import numpy as np

from coffea_fastsim.surrogate.noise import event_identity_hash

__all__ = ["EventIdentities"]


class EventIdentities:
    """The distinct identity hashes of a set of events and how many events repeated one.

    Arguments:
        hashes: identity hashes (``event_identity_hash``), shape (n,), uint64, in any order.
        repeats: events already known to repeat an identity (from earlier additions).
    """

    def __init__(self, hashes: np.ndarray | None = None, repeats: int = 0) -> None:
        values = np.zeros(0, np.uint64) if hashes is None else np.asarray(hashes, np.uint64)
        self.hashes = np.unique(values)
        self.repeats = int(repeats) + len(values) - len(self.hashes)

    @classmethod
    def of(
        cls, run: np.ndarray, luminosity_block: np.ndarray, event: np.ndarray
    ) -> EventIdentities:
        """The identities of events given as (run, luminosityBlock, event) arrays, shape (n,)."""
        return cls(event_identity_hash(run, luminosity_block, event))

    def __add__(self, other: EventIdentities) -> EventIdentities:
        if not isinstance(other, EventIdentities):
            return NotImplemented
        combined = np.concatenate([self.hashes, other.hashes])
        return EventIdentities(combined, self.repeats + other.repeats)

    def __len__(self) -> int:
        """Number of distinct identities."""
        return len(self.hashes)
