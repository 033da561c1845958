"""Training of a surrogate (Gaussian or flow) with the paper's recipe.

The Gaussian model minimizes the paper's L1 + quantile loss, the flow model the negative
log-likelihood of the standardized RECO features given the standardized GEN features; the
rest is shared. Adam, batches of 128, learning rate 0.001 / (1 + epoch) with epochs counted
from 0, at most 100 epochs, keeping the parameters of the epoch with the smallest validation
loss. The sample is split into test (20%) and learning (80%), the learning part into training
(70%) and validation (30%) by a seeded shuffle.

Additions to the paper, all stored in the model file: inputs and targets are standardized
with the training split's mean and standard deviation (the loss is computed on standardized
features, so each feature counts with equal weight rather than with its GeV scale); optional
early stopping after ``patience`` epochs without improvement (off by default, as in the
paper); the seed of the split, the initialization and the batch order.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from coffea_fastsim.analysis.definition import Response
from coffea_fastsim.surrogate.coordinates import TARGETS, TargetCoordinates
from coffea_fastsim.surrogate.flow import FlowConfig, FlowSurrogate
from coffea_fastsim.surrogate.gaussian import (
    GAMMA,
    GaussianSurrogate,
    StandardizedSurrogate,
    as_feature_array,
    paper_loss,
    resolve_device,
)
from coffea_fastsim.surrogate.model_file import sample_hash
from coffea_fastsim.surrogate.scaling import Standardization, feature_scale, response_scale

__all__ = [
    "DEFAULT_LEARNING_RATE",
    "MODELS",
    "DataSplit",
    "TrainingConfig",
    "TrainingHistory",
    "TrainingResult",
    "evaluate_loss",
    "split_indices",
    "train_surrogate",
]

#: Model families that ``train_surrogate`` trains.
MODELS = ("gaussian", "flow")
#: Initial learning rate of each family when ``TrainingConfig.learning_rate`` is None.
DEFAULT_LEARNING_RATE = {"gaussian": 1e-3, "flow": 1e-2}
# Events per forward pass when evaluating a loss without gradients (bounds memory).
_EVALUATION_BLOCK = 65536


@dataclass(frozen=True)
class TrainingConfig:
    """Training hyperparameters; the defaults are the paper's.

    Arguments:
        epochs: maximum number of epochs.
        batch_size: events per optimizer step.
        learning_rate: initial Adam learning rate, divided by (1 + epoch) each epoch; None:
            ``DEFAULT_LEARNING_RATE`` of the model family (0.001 for the Gaussian model, the
            paper's; 0.01 for the flow, whose likelihood and residuals improve much faster).
        gamma: quantile level of the width network.
        seed: seed of the split, the weight initialization and the batch order.
        patience: stop after this many epochs without a smaller validation loss;
            None trains all ``epochs`` (the paper).
        test_fraction: fraction of the sample held out for testing.
        validation_fraction: fraction of the remaining (learning) sample used for validation.
        device: "auto" (CUDA when present), "cpu", "cuda" or "cuda:N".
        threads: torch CPU threads during training. None: 1 on the CPU, where steps of 128
            events gain nothing from more threads (and lose much when cores are shared);
            torch's setting on CUDA.
        progress: show a progress bar with the losses of each epoch.
        model: the family to train, "gaussian" (the paper's) or "flow".
        flow: the flow's architecture; None for the Gaussian model, ``FlowConfig()`` when
            None for the flow model.
        target: what the model learns (``TargetCoordinates``): "detector", the response
            of each object in the detector's coordinates (needs the analysis's responses),
            or "paper", the RECO features themselves (the reference study).
        context_eta_steps: |eta| of steps in the detector target's context
            (``TargetCoordinates``), within every GEN momentum's |eta| range; empty: none.
    """

    epochs: int = 100
    batch_size: int = 128
    learning_rate: float | None = None
    gamma: float = GAMMA
    seed: int = 0
    patience: int | None = None
    test_fraction: float = 0.2
    validation_fraction: float = 0.3
    device: str = "auto"
    threads: int | None = None
    progress: bool = True
    model: str = "gaussian"
    flow: FlowConfig | None = None
    target: str = "paper"
    context_eta_steps: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {self.target!r}")
        if self.context_eta_steps and self.target != "detector":
            raise ValueError("context_eta_steps need the detector target (target='detector')")
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, got {self.model!r}")
        if self.model == "flow" and self.flow is None:
            object.__setattr__(self, "flow", FlowConfig())
        if self.learning_rate is None:
            object.__setattr__(self, "learning_rate", DEFAULT_LEARNING_RATE[self.model])
        if self.model != "flow" and self.flow is not None:
            raise ValueError(f"flow is set but model is {self.model!r}; use model='flow'")
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.patience is not None and self.patience < 1:
            raise ValueError(f"patience must be None or at least 1, got {self.patience}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be None or at least 1, got {self.threads}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")
        if not 0 < self.gamma < 1:
            raise ValueError(f"gamma must be in (0, 1), got {self.gamma}")
        if not 0 <= self.test_fraction < 1:
            raise ValueError(f"test_fraction must be in [0, 1), got {self.test_fraction}")
        if not 0 < self.validation_fraction < 1:
            raise ValueError(
                f"validation_fraction must be in (0, 1), got {self.validation_fraction}"
            )
        if self.seed < 0:
            raise ValueError(f"seed must be non-negative, got {self.seed}")


@dataclass(frozen=True)
class DataSplit:
    """Row indices of the three splits of a sample, each sorted, int64, disjoint."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray


@dataclass(frozen=True)
class TrainingHistory:
    """Loss per epoch (standardized features): the training loss is the mean over the
    epoch's batches, weighted by batch size; the validation loss is evaluated after it.
    ``seconds``: wall-clock time from the first epoch's start to the end of each epoch (not
    compared: two identical trainings have equal histories)."""

    train_loss: tuple[float, ...]
    validation_loss: tuple[float, ...]
    seconds: tuple[float, ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class TrainingResult:
    """Outcome of ``train_surrogate``.

    Arguments:
        model: the surrogate with the parameters of ``best_epoch``, on the CPU, eval mode.
        history: losses of every epoch run.
        best_epoch: epoch (from 0) with the smallest validation loss.
        split: row indices of the training, validation and test events.
        sample_hash: SHA-256 of the (gen, reco) sample, see ``model_io.sample_hash``.
        config: the configuration used.
        seconds: wall-clock training time.

    The target's responses are the model's (``model.coordinates.responses``), which
    ``save_model`` records under "architecture".
    """

    model: StandardizedSurrogate
    history: TrainingHistory
    best_epoch: int
    split: DataSplit
    sample_hash: str
    config: TrainingConfig
    seconds: float

    def metadata(self) -> dict[str, Any]:
        """Provenance for ``model_io.save_model``."""
        return {
            "sample_hash": self.sample_hash,
            "training_config": asdict(self.config),
            "best_epoch": self.best_epoch,
            "best_validation_loss": self.history.validation_loss[self.best_epoch],
            "epochs_run": len(self.history.train_loss),
            "n_events": {
                "train": len(self.split.train),
                "validation": len(self.split.validation),
                "test": len(self.split.test),
            },
            "training_seconds": self.seconds,
            "seconds_to_best_epoch": self.history.seconds[self.best_epoch],
        }


def split_indices(
    n_events: int, test_fraction: float, validation_fraction: float, seed: int
) -> DataSplit:
    """Seeded shuffle of range(n_events) into training, validation and test indices.

    test = round(test_fraction * n_events) events; of the rest, validation =
    round(validation_fraction * n_learning) events; training gets the remainder.
    """
    order = np.random.default_rng(seed).permutation(n_events)
    n_test = round(test_fraction * n_events)
    n_validation = round(validation_fraction * (n_events - n_test))
    return DataSplit(
        train=np.sort(order[n_test + n_validation :]),
        validation=np.sort(order[n_test : n_test + n_validation]),
        test=np.sort(order[:n_test]),
    )


@contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    """Set torch's intra-op CPU threads for the duration of the block."""
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _batch_loss(
    model: StandardizedSurrogate, z_gen: Tensor, z_reco: Tensor, gamma: float
) -> Tensor:
    """Mean training loss of standardized events: the paper's loss, or the flow's NLL."""
    if isinstance(model, FlowSurrogate):
        return -model.log_prob_standardized(z_reco, z_gen).mean()
    mu, q = model.heads(z_gen)
    return paper_loss(mu, q, z_reco, gamma)


def _mean_loss(model: StandardizedSurrogate, z_gen: Tensor, z_reco: Tensor, gamma: float) -> float:
    """Mean training loss over standardized events, evaluated in blocks without gradients."""
    total = torch.zeros((), dtype=torch.float64, device=z_gen.device)
    with torch.no_grad():
        for start in range(0, len(z_gen), _EVALUATION_BLOCK):
            block = slice(start, start + _EVALUATION_BLOCK)
            loss = _batch_loss(model, z_gen[block], z_reco[block], gamma)
            total += loss.double() * len(z_gen[block])
    return float(total) / len(z_gen)


def evaluate_loss(
    model: StandardizedSurrogate,
    gen_features: np.ndarray,
    reco_features: np.ndarray,
    gamma: float = GAMMA,
) -> float:
    """The training loss of ``model`` on a sample, e.g. the test split.

    Arguments:
        model: a surrogate (its standardization defines the loss's feature scale).
        gen_features: GEN features, shape (n_events, n_features), physical units.
        reco_features: RECO features, shape (n_events, n_features), physical units.
        gamma: quantile level of the width network (Gaussian model).

    Returns:
        Mean over events of the training loss on standardized features: L1 + quantile loss
        (Gaussian model) or negative log-likelihood (flow model).
    """
    gen = as_feature_array(gen_features, "gen_features", model.n_features)
    reco = as_feature_array(reco_features, "reco_features", model.n_features)
    if len(gen) != len(reco) or len(gen) == 0:
        raise ValueError(f"need equal, non-zero numbers of events, got {len(gen)}, {len(reco)}")
    device = model.gen_mean.device
    model.eval()
    gen_tensor = torch.as_tensor(gen, dtype=torch.float64, device=device)
    target = model.coordinates.encode(gen_tensor, torch.as_tensor(reco, device=device))
    with torch.no_grad():
        z_gen = model.conditioning(gen_tensor.float())
        z_reco = model.standardize_reco(target.float())
    return _mean_loss(model, z_gen, z_reco, gamma)


def train_surrogate(
    gen_features: np.ndarray,
    reco_features: np.ndarray,
    config: TrainingConfig | None = None,
    feature_names: Sequence[str] | None = None,
    responses: Sequence[Response] = (),
) -> TrainingResult:
    """Train a ``GaussianSurrogate`` or a ``FlowSurrogate`` on matched GEN and RECO events.

    Deterministic on the CPU for a given ``config.seed`` and thread count.

    Arguments:
        gen_features: GEN features, shape (n_events, n_features), physical units, in the
            order of the analysis's feature vector.
        reco_features: RECO features of the same events, shape (n_events, n_features).
        config: hyperparameters; ``TrainingConfig()`` (the paper's) when None.
        feature_names: the analysis's feature names (their number fixes n_features);
            None: as many as gen_features has columns, named by position in errors.
        responses: the analysis's detector responses (``AnalysisDefinition.responses``),
            needed by ``config.target == "detector"``.

    Raises:
        ValueError: shapes differ or are not (n_events, n_features), non-finite values (rows with
            no RECO match must be removed first), too few events for the splits, or a
            constant feature.
    """
    config = config or TrainingConfig()
    if feature_names is None:
        width = np.shape(gen_features)[1] if np.ndim(gen_features) == 2 else 0
        feature_names = [str(i) for i in range(width)]
    n_features = len(feature_names)
    gen = as_feature_array(gen_features, "gen_features", n_features, feature_names)
    reco = as_feature_array(reco_features, "reco_features", n_features, feature_names)
    if len(gen) != len(reco):
        raise ValueError(f"gen_features has {len(gen)} events, reco_features {len(reco)}")
    split = split_indices(len(gen), config.test_fraction, config.validation_fraction, config.seed)
    if len(split.train) < 2 or len(split.validation) < 1:
        raise ValueError(
            f"too few events: {len(gen)} give {len(split.train)} training and "
            f"{len(split.validation)} validation events; need at least 2 and 1"
        )
    if config.target == "detector" and not responses:
        raise ValueError(
            "the detector target needs the analysis's responses (AnalysisDefinition.responses)"
        )
    responses = responses if config.target == "detector" else ()
    coordinates = TargetCoordinates(feature_names, responses, config.context_eta_steps)
    gen64 = torch.as_tensor(gen)
    coordinates.check_eta_steps(gen64[torch.as_tensor(split.train)])
    target = coordinates.encode(gen64, torch.as_tensor(reco)).numpy()
    context = coordinates.context(gen64).numpy()
    bad = ~np.isfinite(target).all(axis=1) | ~np.isfinite(context).all(axis=1)
    if bad.any():
        raise ValueError(
            f"{int(bad.sum())} events have a non-finite {config.target} target or context "
            "(a zero transverse momentum?)"
        )
    device = resolve_device(config.device)
    threads = config.threads or (1 if device.type == "cpu" else None)
    started = time.perf_counter()
    # Seed only the CPU generator (weights are initialized on the CPU), restored afterwards.
    with _torch_threads(threads), torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(config.seed)
        context_names = list(coordinates.context_names)
        standardization = Standardization(
            *feature_scale(gen[split.train], "GEN", feature_names),
            *(
                response_scale(target[split.train])
                if config.target == "detector"
                else feature_scale(target[split.train], "RECO", feature_names)
            ),
            *feature_scale(context[split.train], "context", context_names),
        )
        model: StandardizedSurrogate = (
            FlowSurrogate(standardization, coordinates, config=config.flow)
            if config.model == "flow"
            else GaussianSurrogate(standardization, coordinates)
        ).to(device)
        with torch.no_grad():
            z_gen = model.conditioning(torch.as_tensor(gen, device=device).float())
            z_reco = model.standardize_reco(torch.as_tensor(target, device=device).float())
            # An exact response is 0 whatever the network says there; it learns noise.
            exact = model.reco_std == 0
            seeded = torch.Generator().manual_seed(config.seed)
            noise = torch.randn(z_reco[:, exact].shape, generator=seeded)
            z_reco[:, exact] = noise.to(device)
            if isinstance(model, FlowSurrogate) and model.detector:
                model.set_support(z_reco[torch.as_tensor(split.train, device=device)])
                model.set_acceptance(torch.as_tensor(reco[split.train], dtype=torch.float64))
        history, best_epoch, best_state = _fit(model, z_gen, z_reco, split, config)
    model.load_state_dict(best_state)
    return TrainingResult(
        model=model.cpu().eval(),
        history=history,
        best_epoch=best_epoch,
        split=split,
        sample_hash=sample_hash(gen, reco),
        config=config,
        seconds=time.perf_counter() - started,
    )


def _fit(
    model: StandardizedSurrogate,
    z_gen: Tensor,
    z_reco: Tensor,
    split: DataSplit,
    config: TrainingConfig,
) -> tuple[TrainingHistory, int, dict[str, Tensor]]:
    """The epoch loop; returns the history, the best epoch and its parameters."""
    device = z_gen.device
    train_index = torch.as_tensor(split.train, device=device)
    validation_index = torch.as_tensor(split.validation, device=device)
    train_gen, train_reco = z_gen[train_index], z_reco[train_index]
    validation_gen, validation_reco = z_gen[validation_index], z_reco[validation_index]
    n_train = len(train_gen)

    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate, fused=True)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0 / (1.0 + epoch))
    batch_order = torch.Generator().manual_seed(config.seed)

    train_losses: list[float] = []
    validation_losses: list[float] = []
    seconds: list[float] = []
    started = time.perf_counter()
    best_loss, best_epoch, best_state = math.inf, 0, copy.deepcopy(model.state_dict())
    bar = tqdm(range(config.epochs), desc="training", unit="epoch", disable=not config.progress)
    for epoch in bar:
        model.train()
        permutation = torch.randperm(n_train, generator=batch_order).to(device)
        epoch_gen, epoch_reco = train_gen[permutation], train_reco[permutation]
        total = torch.zeros((), dtype=torch.float64, device=device)
        for start in range(0, n_train, config.batch_size):
            batch = slice(start, start + config.batch_size)
            batch_gen = epoch_gen[batch]
            loss = _batch_loss(model, batch_gen, epoch_reco[batch], config.gamma)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.detach().double() * len(batch_gen)
        model.eval()
        train_losses.append(float(total) / n_train)
        validation_losses.append(_mean_loss(model, validation_gen, validation_reco, config.gamma))
        schedule.step()
        seconds.append(time.perf_counter() - started)

        if validation_losses[-1] < best_loss:
            best_loss, best_epoch = validation_losses[-1], epoch
            best_state = copy.deepcopy(model.state_dict())
        bar.set_postfix(
            train=f"{train_losses[-1]:.4f}", val=f"{validation_losses[-1]:.4f}", best=best_epoch
        )
        if config.patience is not None and epoch - best_epoch >= config.patience:
            break
    bar.close()
    history = TrainingHistory(tuple(train_losses), tuple(validation_losses), tuple(seconds))
    return history, best_epoch, best_state
