"""The inference engine: GEN features and event identities in, RECO-like features out.

Follows ``coffea.ml_tools.torch_wrapper``: the engine holds the model path, not the model;
each process loads the model on first use, and pickling drops the loaded module and the
resolved device, so an engine can be shipped to dask workers (which may have a GPU while
the client has none).

Reproducibility: the noise of an event depends only on (seed, run, luminosity block,
event, its GEN features), see ``coffea_fastsim.surrogate.noise``. The network always runs
on blocks of exactly ``evaluation_block(device, model_family)`` rows (the last block of a
chunk padded with zeros), because a matrix product can round differently for different
numbers of rows; with a fixed block size the output of an event is bitwise the same whatever
``chunk_size`` or the event's position in the input, on the same machine, device and
torch thread count. The block is ``EVALUATION_BLOCK`` (1024) rows on the CPU, where it keeps
the activations in cache, ``FLOW_EVALUATION_BLOCK`` (4096) rows on the CPU for a flow,
whose sampling runs thousands of small operations per block (4096 rows: 1.5 times the rate
of 1024 on 2 cores, the same samples), and ``CUDA_EVALUATION_BLOCK`` (65536) on a GPU,
where each block costs a few kernel launches.

Chunk size: the events moved to the device and evaluated at once. By default it is chosen
when the engine first runs: ``CPU_CHUNK_SIZE`` on the CPU, and on a GPU the largest
multiple of the block that fits in half of the device memory free at that moment (see
``automatic_chunk_size``); an out-of-memory error halves it, down to one block.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from coffea_fastsim.surrogate.gaussian import as_feature_array, resolve_device
from coffea_fastsim.surrogate.model_file import LoadedModel, load_model
from coffea_fastsim.surrogate.noise import check_replica, event_noise, event_noise_tensor

__all__ = [
    "CPU_CHUNK_SIZE",
    "CUDA_EVALUATION_BLOCK",
    "DEVICE_BYTES_PER_EVENT",
    "EVALUATION_BLOCK",
    "FLOW_EVALUATION_BLOCK",
    "MAX_CHUNK_SIZE",
    "SurrogateEngine",
    "automatic_chunk_size",
    "evaluation_block",
]

#: Rows per network evaluation on the CPU; fixed so that results do not depend on chunking.
EVALUATION_BLOCK = 1024
#: Rows per evaluation of a flow on the CPU (see the module's docstring).
FLOW_EVALUATION_BLOCK = 4096
#: Rows per network evaluation on a CUDA device.
CUDA_EVALUATION_BLOCK = 65536
#: Chunk size on the CPU when none is given.
CPU_CHUNK_SIZE = 65536
#: Largest automatic chunk (events); beyond it a GPU gains nothing and the host buffers grow.
MAX_CHUNK_SIZE = 1 << 24
#: Device memory per event of a chunk, bytes: on CUDA the noise is made on the device
#: (identities, 10 hash words of 8 bytes and their temporaries, about 400 bytes at the peak),
#: then GEN features, noise, their zero-padded copies and the output (180), rounded up for
#: the allocator's slack.
DEVICE_BYTES_PER_EVENT = 1024


def evaluation_block(device: torch.device, model_family: str = "gaussian") -> int:
    """Rows per network evaluation on ``device``: ``CUDA_EVALUATION_BLOCK`` on CUDA,
    elsewhere ``FLOW_EVALUATION_BLOCK`` for a flow and ``EVALUATION_BLOCK`` otherwise."""
    if device.type == "cuda":
        return CUDA_EVALUATION_BLOCK
    return FLOW_EVALUATION_BLOCK if model_family == "flow" else EVALUATION_BLOCK


def automatic_chunk_size(free_bytes: int, block: int, block_bytes: int = 0) -> int:
    """The chunk size for a device with ``free_bytes`` of free memory.

    Half of the free memory, less what one block's activations take (``block_bytes``),
    divided by ``DEVICE_BYTES_PER_EVENT``, rounded down to a multiple of ``block`` and
    clipped to [block, ``MAX_CHUNK_SIZE``].

    Arguments:
        free_bytes: free device memory, bytes (``torch.cuda.mem_get_info()[0]``).
        block: rows per network evaluation on the device.
        block_bytes: memory of the activations of one block, bytes.
    """
    usable = free_bytes // 2 - block_bytes
    events = usable // DEVICE_BYTES_PER_EVENT // block * block
    return int(min(max(events, block), max(MAX_CHUNK_SIZE // block * block, block)))


#: Attribute names of the mean and the quantile network in ``GaussianSurrogate``.
HEAD_NAMES = ("mean_net", "quantile_net")


#: One layer of an MLP head: weight transposed (in, out), bias (out,), and the LeakyReLU
#: slope applied after it (None for the last, linear layer).
_Layer = tuple[Tensor, Tensor, "float | None"]


@dataclass(frozen=True)
class _GaussianWeights:
    """The parameters of a Gaussian surrogate (see ``GaussianSurrogate``), read out of its
    TorchScript module, so that a block can be evaluated into preallocated buffers.

    The module would allocate a new tensor for every layer of every block; with the
    allocator settings of dask workers (``MALLOC_TRIM_THRESHOLD_``), each of these
    allocations maps and zero-fills fresh pages, which makes inference 2.5 times slower.
    The same matrix products, in the same order, into reused buffers give bitwise the
    module's output (checked on a probe block when the weights are read).
    """

    gen_mean: Tensor
    gen_std: Tensor
    reco_mean: Tensor
    reco_std: Tensor
    heads: tuple[tuple[_Layer, ...], tuple[_Layer, ...]]
    #: The module itself for a detector-target model, whose exported methods give the
    #: conditioning (GEN features and context), the destandardized response and its
    #: decoding; None for the paper target, evaluated entirely here.
    detector: nn.Module | None = None

    @classmethod
    def read(cls, module: nn.Module) -> _GaussianWeights | None:
        """The weights of ``module``, or None when it is not a Gaussian surrogate made of
        Linear and LeakyReLU layers, or when the buffered evaluation differs from it."""
        try:
            buffers = dict(module.named_buffers())
            heads = tuple(cls._layers(getattr(module, name)) for name in HEAD_NAMES)
            weights = cls(
                *(buffers[name] for name in ("gen_mean", "gen_std", "reco_mean", "reco_std")),
                heads=heads,  # type: ignore[arg-type]
                detector=module if getattr(module, "detector", False) else None,
            )
        except (AttributeError, KeyError, ValueError):
            return None
        return weights if weights._reproduces(module) else None

    @staticmethod
    def _layers(sequential: nn.Module) -> tuple[_Layer, ...]:
        layers: list[list[Any]] = []
        for child in sequential.children():
            kind = getattr(child, "original_name", type(child).__name__)
            if kind == "Linear":
                layers.append([child.weight.detach().t(), child.bias.detach(), None])
            elif kind == "LeakyReLU" and layers and layers[-1][2] is None:
                layers[-1][2] = float(child.negative_slope)
            else:
                raise ValueError(f"unsupported layer {kind}")
        if not layers or layers[-1][2] is not None:
            raise ValueError("the head must end with a Linear layer")
        return tuple((w, b, slope) for w, b, slope in layers)

    def activation_bytes(self, rows: int) -> int:
        """Memory of the buffers of one block of ``rows`` events, bytes."""
        widths = [len(bias) for head in self.heads for _, bias, _ in head]
        return 4 * rows * (sum(widths) + 2 * len(self.gen_mean))

    def _reproduces(self, module: nn.Module) -> bool:
        """Whether the buffered evaluation equals ``module`` bitwise on a probe block."""
        device = self.gen_mean.device
        rows = evaluation_block(device)
        probe = torch.Generator().manual_seed(0)
        x_gen = torch.randn(rows, len(self.gen_mean), generator=probe)
        x_gen = (x_gen * self.gen_std.cpu() + self.gen_mean.cpu()).to(device)
        eps = torch.randn(x_gen.shape, generator=probe).to(device)
        with torch.inference_mode(), torch.jit.optimized_execution(False):
            expected = module(x_gen, eps)
            got = torch.empty_like(x_gen)
            _GaussianBlock(self, rows).evaluate(x_gen, eps, got)
        return bool(torch.equal(expected, got))


class _GaussianBlock:
    """Buffers for evaluating ``_GaussianWeights`` on blocks of ``rows`` events; one set per
    chunk (``_evaluate_blocks`` call), so that concurrent calls never share them."""

    def __init__(self, weights: _GaussianWeights, rows: int) -> None:
        self.weights = weights
        like = weights.gen_mean
        n_features = len(like)
        self.z_gen = like.new_empty((rows, n_features))
        self.width = like.new_empty((rows, n_features))
        self.activations = tuple(
            tuple(like.new_empty((rows, len(bias))) for _, bias, _ in head)
            for head in weights.heads
        )

    def evaluate(self, x_gen: Tensor, eps: Tensor, out: Tensor) -> None:
        """out = mu + sigma * eps for one block, as ``GaussianSurrogate.forward`` computes it.

        Arguments:
            x_gen, eps: GEN features (physical units) and noise, each (rows, n_features).
            out: where the RECO-like features go, (rows, n_features), contiguous.
        """
        w = self.weights
        if w.detector is not None:
            conditioning = w.detector.conditioning(x_gen)
        else:
            torch.sub(x_gen, w.gen_mean, out=self.z_gen)
            conditioning = self.z_gen.div_(w.gen_std)
        outputs = []
        for head, activations in zip(w.heads, self.activations, strict=True):
            hidden = conditioning
            for (weight_t, bias, slope), activation in zip(head, activations, strict=True):
                torch.addmm(bias, hidden, weight_t, out=activation)
                if slope is not None:
                    torch.nn.functional.leaky_relu_(activation, slope)
                hidden = activation
            outputs.append(hidden)
        mu, q = outputs
        torch.sub(q, mu, out=self.width)
        self.width.abs_()
        if w.detector is not None:
            # The standardized response mu + |q - mu| * eps, in physical units, decoded.
            response = w.detector.destandardize_reco(self.width.mul_(eps).add_(mu))
            out.copy_(w.detector.coordinates.decode(x_gen, response))
            return
        # sigma * eps = (|q - mu| * reco_std) * eps; out = (mu * reco_std + reco_mean) + that.
        self.width.mul_(w.reco_std).mul_(eps)
        torch.mul(mu, w.reco_std, out=out)
        out.add_(w.reco_mean).add_(self.width)


def _evaluate_blocks(
    module: nn.Module,
    weights: _GaussianWeights | None,
    x_gen: Tensor,
    eps: Tensor,
    rows: int = EVALUATION_BLOCK,
) -> Tensor:
    """Run ``module(x_gen, eps)`` in zero-padded blocks of ``rows`` rows; with ``weights``,
    the same computation into preallocated buffers (bitwise the same)."""
    n_rows = len(x_gen)
    n_padded = -(-n_rows // rows) * rows
    padded_gen = x_gen.new_zeros((n_padded, x_gen.shape[1]))
    padded_eps = eps.new_zeros((n_padded, eps.shape[1]))
    padded_gen[:n_rows] = x_gen
    padded_eps[:n_rows] = eps
    out = torch.empty_like(padded_gen)
    buffers = None if weights is None else _GaussianBlock(weights, rows)
    for start in range(0, n_padded, rows):
        block = slice(start, start + rows)
        if buffers is None:
            out[block] = module(padded_gen[block], padded_eps[block])
        else:
            buffers.evaluate(padded_gen[block], padded_eps[block], out[block])
    return out[:n_rows]


class SurrogateEngine:
    """Sample RECO-like features from a saved surrogate, reproducibly per event.

    Arguments:
        model_path: model file written by ``model_io.save_model``.
        chunk_size: events moved to the device and evaluated at once (bounds memory);
            None: chosen on first use, ``CPU_CHUNK_SIZE`` on the CPU and from the free
            memory on a GPU (``automatic_chunk_size``).
        device: "auto" (CUDA when present on the process that evaluates), "cpu", "cuda"
            or "cuda:N".
        seed: seed of the per-event noise, an integer in [0, 2**64).
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        chunk_size: int | None = None,
        device: str = "auto",
        seed: int = 0,
    ) -> None:
        if chunk_size is not None:
            if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)):
                raise TypeError(
                    f"chunk_size must be an integer or None, got {type(chunk_size).__name__}"
                )
            if chunk_size < 1:
                raise ValueError(f"chunk_size must be positive, got {chunk_size}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise TypeError(f"seed must be an integer, got {type(seed).__name__}")
        if not 0 <= seed < 2**64:
            raise ValueError(f"seed must be in [0, 2**64), got {seed}")
        if not isinstance(device, str):
            raise TypeError(f"device must be a string, got {type(device).__name__}")
        try:
            resolve_device(device)
        except ValueError as err:
            raise ValueError(f"device: {err}") from err
        self.model_path = Path(model_path)
        self.chunk_size = None if chunk_size is None else int(chunk_size)
        self.device_request = device
        self.seed = int(seed)
        self._device: torch.device | None = None
        self._loaded: LoadedModel | None = None
        self._gaussian_weights: _GaussianWeights | None = None

    def __getstate__(self) -> dict[str, Any]:
        """Pickle the configuration only; the model is reloaded where it is used."""
        state = self.__dict__.copy()
        state["_device"] = None
        state["_loaded"] = None
        state["_gaussian_weights"] = None
        return state

    @property
    def device(self) -> torch.device:
        """The torch device of this process, resolved on first use."""
        if self._device is None:
            self._device = resolve_device(self.device_request)
        return self._device

    @property
    def loaded(self) -> LoadedModel:
        """The model and its metadata, loaded and checked on first use."""
        if self._loaded is None:
            loaded = load_model(self.model_path, map_location=self.device)
            if loaded.metadata.get("model_family") == "gaussian":
                self._gaussian_weights = _GaussianWeights.read(loaded.module)
            self._loaded = loaded
        return self._loaded

    @property
    def evaluation_rows(self) -> int:
        """Rows per network evaluation of this engine's model on its device."""
        family = str(self.loaded.metadata.get("model_family", "gaussian"))
        return evaluation_block(self.device, family)

    @property
    def metadata(self) -> Mapping[str, Any]:
        """Metadata of the model file (loads the model)."""
        return self.loaded.metadata

    def predict(
        self,
        gen_features: np.ndarray,
        run: np.ndarray,
        luminosity_block: np.ndarray,
        event: np.ndarray,
        replica: int | np.ndarray = 0,
    ) -> np.ndarray:
        """RECO-like features x_DL = mu + sigma * eps of each event.

        Arguments:
            gen_features: GEN features, shape (n_events, n_features), physical units, in
                the order of the model's features.
            run, luminosity_block, event: event identity, each shape (n_events,), integers.
            replica: index of an independent draw of the same events (oversampling); 0 is
                the nominal one. An integer for all rows, or an array of shape (n_events,)
                with one per row, so that K draws of n events are one call on K * n rows
                (each row's output is that of a call with its replica alone).

        Returns:
            x_DL, shape (n_events, n_features), float32, physical units; (0, n_features)
            for no events.

        Raises:
            ValueError: wrong shapes, or rows with NaN or infinite GEN features (the
                message gives their number; such events must be removed before).
        """
        names = self.loaded.metadata["input_features"]
        gen = as_feature_array(gen_features, "gen_features", len(names), names)
        n_events = len(gen)
        run, luminosity_block, event = (np.asarray(a) for a in (run, luminosity_block, event))
        for name, ids in (("run", run), ("luminosity_block", luminosity_block), ("event", event)):
            if ids.shape != (n_events,):
                raise ValueError(f"{name} must have shape ({n_events},), got {ids.shape}")
        if not isinstance(replica, (int, np.integer)):
            replica = np.asarray(replica)
        replica = check_replica(replica, n_events)  # once, before it is cut into chunks
        output = np.empty((n_events, len(names)), dtype=np.float32)
        if n_events == 0:
            return output
        module = self.loaded.module
        chunk_size = self.resolved_chunk_size()
        rows = self.evaluation_rows
        start = 0
        # The plain interpreter runs the same kernels on every call; the profiling executor
        # would switch to a re-optimized graph after a few calls.
        with torch.inference_mode(), torch.jit.optimized_execution(False):
            while start < n_events:
                chunk = slice(start, start + chunk_size)
                ids = (run[chunk], luminosity_block[chunk], event[chunk])
                chunk_replica = replica[chunk] if isinstance(replica, np.ndarray) else replica
                try:
                    x_gen = torch.from_numpy(gen[chunk].astype(np.float32)).to(self.device)
                    eps = self._noise(ids, x_gen, chunk_replica)
                    x_dl = _evaluate_blocks(module, self._gaussian_weights, x_gen, eps, rows)
                except torch.OutOfMemoryError as error:
                    chunk_size = self._smaller_chunk(chunk_size, error)
                    continue
                output[chunk] = x_dl.cpu().numpy()
                start += chunk_size
        return output

    def _noise(
        self,
        ids: tuple[np.ndarray, np.ndarray, np.ndarray],
        x_gen: Tensor,
        replica: int | np.ndarray,
    ) -> Tensor:
        """The per-event noise of a chunk on the engine's device, keyed by the identities,
        the GEN features ``x_gen`` (float32, as the network gets them) and the replica (one,
        or one per row):
        numpy's ``event_noise`` on the CPU; on CUDA, ``event_noise_tensor`` computed on the
        device, which moves 24 bytes per event instead of 36 and keeps the hash off the CPU."""
        if self.device.type == "cuda":
            return event_noise_tensor(self.seed, *ids, x_gen, replica=replica)
        return torch.from_numpy(event_noise(self.seed, *ids, x_gen.numpy(), replica=replica))

    def _smaller_chunk(self, chunk_size: int, error: BaseException) -> int:
        """Half of ``chunk_size`` after an out-of-memory error, or a clear error below the floor.

        Outputs do not depend on the chunk size, so retrying with smaller chunks is exact.
        """
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        floor = self.evaluation_rows
        if chunk_size <= floor:
            raise RuntimeError(
                f"out of memory on {self.device} even with chunks of {chunk_size} events "
                f"(the floor): free device memory, or use device='cpu'"
            ) from error
        return max(chunk_size // 2, floor)

    def resolved_chunk_size(self) -> int:
        """The chunk size in use: ``chunk_size`` when given, else ``CPU_CHUNK_SIZE`` on the
        CPU and ``automatic_chunk_size`` of the device's free memory on CUDA."""
        if self.chunk_size is not None:
            return self.chunk_size
        if self.device.type != "cuda":
            return CPU_CHUNK_SIZE
        rows = self.evaluation_rows
        free_bytes, _ = torch.cuda.mem_get_info(self.device)
        weights = self._gaussian_weights
        block_bytes = weights.activation_bytes(rows) if weights is not None else 0
        return automatic_chunk_size(free_bytes, rows, block_bytes)
