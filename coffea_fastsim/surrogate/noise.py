"""Per-event reproducible standard normal noise for the surrogate's Gaussian sampling.

The noise of an event is a pure function of its key: (seed, run, luminosity block, event
number, the GEN feature vector as given to the network, replica). It does not depend on the
event's position in an array, on how a dataset is chunked, or on which worker processes it;
and events that share (run, luminosityBlock, event), as in private productions that restart
the event number in every job, still get independent noise because their GEN features
differ. A counter-based generator makes this possible without any state:

1. key = h(h(h(h(seed) ^ run) ^ luminosity_block) ^ event), h = the splitmix64 finalizer;
2. then, for each pair k of GEN features (float32, in the order of ``FEATURE_NAMES``; an odd
   last feature pairs with 0), key = h(key ^ (bits(f_2k) | bits(f_2k+1) << 32)), bits = the
   IEEE-754 binary32 pattern as an unsigned integer;
3. replica r > 0 (independent draws of the same event): key = h(key + r * 0x9E3779B97F4A7C15);
   replica 0 keeps the key;
4. word j (j = 0 ... 2p - 1, p = ceil(n_features / 2)) = h(key + (j + 1) * 0x9E3779B97F4A7C15),
   the splitmix64 stream seeded with the key;
5. Box-Muller on pair j < p: radius sqrt(-2 log u) from the top 53 bits of word j,
   u = (bits + 0.5) / 2**53 in (0, 1), so normals reach 8.6 sigma; angle 2 pi v from the top
   24 bits of word p + j, v = (bits + 0.5) / 2**24, in float32 (whose sine and cosine numpy
   vectorizes). Normal j is the cosine branch, normal p + j the sine branch; normals beyond
   n_features are dropped.

Two events get the same noise only when their whole key is the same: the same event.

References:
    Steele, Lea, Flood, "Fast splittable pseudorandom number generators", OOPSLA 2014.
    Box, Muller, "A note on the generation of random normal deviates", Ann. Math. Stat. 1958.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["check_replica", "event_identity_hash", "event_noise", "event_noise_tensor"]

_GOLDEN_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)
_UINT64_MAX = 2**64 - 1
# Events per block: the working arrays stay in the CPU cache, which makes the chain of
# numpy operations several times faster than one pass over a large array.
_BLOCK_EVENTS = 8192


def _mix_inplace(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finalizer, a bijection of uint64 with full avalanche, in place."""
    x ^= x >> np.uint64(30)
    x *= _MIX_1
    x ^= x >> np.uint64(27)
    x *= _MIX_2
    x ^= x >> np.uint64(31)
    return x


def _as_ids(values: np.ndarray, name: str, n_events: int | None) -> np.ndarray:
    """Validate one event-identity array and return it as contiguous uint64."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    if n_events is not None and len(array) != n_events:
        raise ValueError(f"{name} has {len(array)} entries, run has {n_events}")
    if not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"{name} must have an integer dtype, got {array.dtype}")
    if np.issubdtype(array.dtype, np.signedinteger) and len(array) and array.min() < 0:
        raise ValueError(f"{name} has {int((array < 0).sum())} negative entries")
    return np.ascontiguousarray(array, dtype=np.uint64)


def _as_gen_bits(gen_features: np.ndarray, n_events: int) -> np.ndarray:
    """The float32 bit patterns of the GEN features, shape (n_events, n_words), uint64:
    word k holds features 2k (low 32 bits) and 2k + 1 (high 32 bits)."""
    gen = np.asarray(gen_features)
    if gen.ndim != 2 or len(gen) != n_events:
        raise ValueError(f"gen_features must have shape ({n_events}, n), got {gen.shape}")
    bits = np.ascontiguousarray(gen, dtype=np.float32).view(np.uint32).astype(np.uint64)
    if bits.shape[1] % 2:
        bits = np.concatenate([bits, np.zeros((n_events, 1), dtype=np.uint64)], axis=1)
    return bits[:, 0::2] | (bits[:, 1::2] << np.uint64(32))


def check_replica(replica: int | np.ndarray, n_events: int) -> int | np.ndarray:
    """``replica`` as an int, or as a uint64 array of shape (n_events,) (one per event); a
    TypeError or ValueError naming the argument otherwise."""
    if isinstance(replica, np.ndarray):
        if replica.shape != (n_events,):
            raise ValueError(
                f"replica must be an integer or have shape ({n_events},), got {replica.shape}"
            )
        if not np.issubdtype(replica.dtype, np.integer):
            raise TypeError(f"replica must have an integer dtype, got {replica.dtype}")
        if np.issubdtype(replica.dtype, np.signedinteger) and n_events and replica.min() < 0:
            raise ValueError(f"replica has {int((replica < 0).sum())} negative entries")
        return np.ascontiguousarray(replica, dtype=np.uint64)
    if isinstance(replica, bool) or not isinstance(replica, (int, np.integer)):
        raise TypeError(f"replica must be an integer, got {type(replica).__name__}")
    if not 0 <= int(replica) <= _UINT64_MAX:
        raise ValueError(f"replica must be in [0, 2**64 - 1], got {replica}")
    return int(replica)


def _identity_chain(seed: int, run: np.ndarray, lumi: np.ndarray, event: np.ndarray) -> np.ndarray:
    """Step 1 of the module docstring: h(h(h(h(seed) ^ run) ^ lumi) ^ event), shape (n,)."""
    seed_key = _mix_inplace(np.array([seed], dtype=np.uint64))
    key = run ^ seed_key
    _mix_inplace(key)
    key ^= lumi
    _mix_inplace(key)
    key ^= event
    return _mix_inplace(key)


def event_identity_hash(
    run: np.ndarray, luminosity_block: np.ndarray, event: np.ndarray
) -> np.ndarray:
    """A 64-bit hash of each event's (run, luminosityBlock, event), shape (n,), uint64: step 1
    of the module docstring with seed 0. Used to count events that share an identity."""
    run_ids = _as_ids(run, "run", None)
    lumi_ids = _as_ids(luminosity_block, "luminosity_block", len(run_ids))
    event_ids = _as_ids(event, "event", len(run_ids))
    return _identity_chain(0, run_ids, lumi_ids, event_ids)


def _replica_step(replica: int | np.ndarray) -> np.uint64 | np.ndarray:
    """replica * 0x9E3779B97F4A7C15 modulo 2**64, of one replica or of a uint64 array."""
    if isinstance(replica, np.ndarray):
        return replica * _GOLDEN_GAMMA  # uint64 products wrap modulo 2**64
    return np.uint64(replica * int(_GOLDEN_GAMMA) & _UINT64_MAX)


def _event_keys(
    seed: int,
    run: np.ndarray,
    lumi: np.ndarray,
    event: np.ndarray,
    gen_words: np.ndarray,
    replica: int | np.ndarray,
) -> np.ndarray:
    """One uint64 key per event (steps 1 to 3 of the module docstring), shape (n,);
    ``replica`` is one index for all events or a uint64 array of one per event."""
    key = _identity_chain(seed, run, lumi, event)
    for column in gen_words.T:
        key ^= column
        _mix_inplace(key)
    if isinstance(replica, np.ndarray):
        stepped = _mix_inplace(key + _replica_step(replica))
        return np.where(replica != 0, stepped, key)
    if replica:
        key += _replica_step(replica)
        _mix_inplace(key)
    return key


def _normals_block(keys: np.ndarray, n_pairs: int) -> np.ndarray:
    """Standard normals for a block of keys, shape (2 * n_pairs, n_keys), float32.

    Feature-major layout: every numpy operation below runs on contiguous rows.
    """
    counters = np.arange(1, 2 * n_pairs + 1, dtype=np.uint64) * _GOLDEN_GAMMA
    bits = counters[:, np.newaxis] + keys
    _mix_inplace(bits)
    # Shifted values fit in int64, whose conversion to float is vectorized (uint64's is not).
    radius_bits = (bits[:n_pairs] >> np.uint64(11)).view(np.int64)
    angle_bits = (bits[n_pairs:] >> np.uint64(40)).astype(np.int32)
    radius = radius_bits.astype(np.float64)
    radius += 0.5
    radius *= 2.0**-53
    np.log(radius, out=radius)
    radius *= -2.0
    np.sqrt(radius, out=radius)
    angle = angle_bits.astype(np.float32)
    angle += np.float32(0.5)
    angle *= np.float32(2.0 * np.pi * 2.0**-24)
    normals = np.empty((2 * n_pairs, len(keys)), dtype=np.float32)
    np.cos(angle, out=normals[:n_pairs])
    np.sin(angle, out=normals[n_pairs:])
    radius_f32 = radius.astype(np.float32)
    normals[:n_pairs] *= radius_f32
    normals[n_pairs:] *= radius_f32
    return normals


def _check_arguments(seed: int, n_features: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an integer, got {type(seed).__name__}")
    if not 0 <= int(seed) <= _UINT64_MAX:
        raise ValueError(f"seed must be in [0, 2**64 - 1], got {seed}")
    if n_features < 1:
        raise ValueError(f"n_features must be positive, got {n_features}")


def event_noise(
    seed: int,
    run: np.ndarray,
    luminosity_block: np.ndarray,
    event: np.ndarray,
    gen_features: np.ndarray,
    n_features: int | None = None,
    replica: int | np.ndarray = 0,
) -> np.ndarray:
    """Standard normal noise, a pure function of the seed and each event's key.

    Bitwise reproducible for the same event on the same platform, whatever the chunking;
    different CPUs may differ in the last bit of the logarithm and trigonometric functions.

    Arguments:
        seed: non-negative integer below 2**64, e.g. the model's sampling seed.
        run: run numbers, shape (n_events,), any non-negative integer dtype.
        luminosity_block: luminosity block numbers, shape (n_events,).
        event: event numbers, shape (n_events,).
        gen_features: the GEN features given to the network, shape (n_events, n); hashed
            as float32 bit patterns.
        n_features: number of independent normals per event; None: n.
        replica: index of an independent draw of the same events; 0 is the nominal one. An
            integer for all events, or an array of shape (n_events,), non-negative integers,
            one per row: rows that repeat an event with different replicas give that event's
            independent draws, as separate calls with each replica would.

    Returns:
        Noise of shape (n_events, n_features), float32, each entry N(0, 1).
    """
    run_ids = _as_ids(run, "run", None)
    lumi_ids = _as_ids(luminosity_block, "luminosity_block", len(run_ids))
    event_ids = _as_ids(event, "event", len(run_ids))
    gen_words = _as_gen_bits(gen_features, len(run_ids))
    n_features = np.shape(gen_features)[1] if n_features is None else n_features
    _check_arguments(seed, n_features)
    replica = check_replica(replica, len(run_ids))

    n_pairs = (n_features + 1) // 2
    noise = np.empty((len(run_ids), n_features), dtype=np.float32)
    for start in range(0, len(run_ids), _BLOCK_EVENTS):
        block = slice(start, start + _BLOCK_EVENTS)
        ids = (run_ids[block], lumi_ids[block], event_ids[block], gen_words[block])
        block_replica = replica[block] if isinstance(replica, np.ndarray) else replica
        keys = _event_keys(int(seed), *ids, block_replica)
        noise[block] = _normals_block(keys, n_pairs)[:n_features].T
    return noise


def _signed(value: int | np.uint64) -> int:
    """The int64 with the bits of a uint64 value (torch has no uint64 arithmetic on GPUs)."""
    value = int(value)
    return value - 2**64 if value >= 2**63 else value


def _shift_right(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Logical right shift of int64 holding uint64 bits (torch's >> is arithmetic)."""
    return (x >> bits) & ((1 << (64 - bits)) - 1)


def _mix_tensor(x: torch.Tensor) -> torch.Tensor:
    """``_mix_inplace`` on int64 tensors: the same bits (products wrap modulo 2**64)."""
    x = x ^ _shift_right(x, 30)
    x = x * _signed(_MIX_1)
    x = x ^ _shift_right(x, 27)
    x = x * _signed(_MIX_2)
    return x ^ _shift_right(x, 31)


def _gen_words_tensor(gen_features: torch.Tensor) -> torch.Tensor:
    """``_as_gen_bits`` on the device: int64 tensors holding the same uint64 words."""
    bits = gen_features.to(torch.float32).contiguous().view(torch.int32).to(torch.int64)
    bits = bits & 0xFFFFFFFF
    if bits.shape[1] % 2:
        bits = torch.nn.functional.pad(bits, (0, 1))
    return bits[:, 0::2] | (bits[:, 1::2] << 32)


def event_noise_tensor(
    seed: int,
    run: np.ndarray,
    luminosity_block: np.ndarray,
    event: np.ndarray,
    gen_features: torch.Tensor,
    n_features: int | None = None,
    replica: int | np.ndarray = 0,
) -> torch.Tensor:
    """``event_noise`` computed by torch on the device of ``gen_features``, for GPUs: only
    the event identities (24 bytes per event) are moved to the device, and the hash runs
    there on the GEN features already on it.

    The integer stages (keys, words, the bits of radius and angle) are bitwise those of
    ``event_noise``; the logarithm, square root, sine and cosine are the device's, so a
    value may differ from ``event_noise``'s in its last bits.

    Arguments: as ``event_noise``, with ``gen_features`` a float32 tensor (n_events, n) on
        the device where the noise is made.

    Returns:
        Noise of shape (n_events, n_features), float32, on the device of ``gen_features``.
    """
    run_ids = _as_ids(run, "run", None)
    lumi_ids = _as_ids(luminosity_block, "luminosity_block", len(run_ids))
    event_ids = _as_ids(event, "event", len(run_ids))
    if gen_features.ndim != 2 or len(gen_features) != len(run_ids):
        raise ValueError(
            f"gen_features must have shape ({len(run_ids)}, n), got {tuple(gen_features.shape)}"
        )
    n_features = gen_features.shape[1] if n_features is None else n_features
    _check_arguments(seed, n_features)
    replica = check_replica(replica, len(run_ids))
    device = gen_features.device

    def on_device(ids: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(ids.view(np.int64)).to(device)

    seed_key = _signed(_mix_inplace(np.array([seed], dtype=np.uint64))[0])
    key = _mix_tensor(on_device(run_ids) ^ seed_key)
    key = _mix_tensor(key ^ on_device(lumi_ids))
    key = _mix_tensor(key ^ on_device(event_ids))
    for column in _gen_words_tensor(gen_features).T:
        key = _mix_tensor(key ^ column)
    if isinstance(replica, np.ndarray):
        stepped = _mix_tensor(key + on_device(_replica_step(replica)))
        key = torch.where(on_device(replica) != 0, stepped, key)
    elif replica:
        key = _mix_tensor(key + _signed(_replica_step(replica)))

    n_pairs = (n_features + 1) // 2
    counters = np.arange(1, 2 * n_pairs + 1, dtype=np.uint64) * _GOLDEN_GAMMA
    bits = _mix_tensor(on_device(counters)[:, None] + key)
    radius = _shift_right(bits[:n_pairs], 11).to(torch.float64)
    radius = torch.sqrt(torch.log((radius + 0.5) * 2.0**-53) * -2.0).to(torch.float32)
    angle = _shift_right(bits[n_pairs:], 40).to(torch.int32).to(torch.float32)
    angle = (angle + 0.5) * float(np.float32(2.0 * np.pi * 2.0**-24))
    normals = torch.cat((torch.cos(angle) * radius, torch.sin(angle) * radius))
    return normals[:n_features].T.contiguous()
