"""Classifier two-sample test of the conditional distribution p(RECO | GEN).

A gradient-boosted classifier learns to tell a candidate sample (DL, or RECO' of an
independent detector simulation) from RECO for the same events. Its input per event is
[GEN features, output features, auxiliary observables of the output], so it can exploit
any difference of the output distribution given GEN, not only of the marginals. On
events it never saw, the ROC AUC is 0.5 when the two conditional distributions are equal
and grows towards 1 with their difference.

References:
    Lopez-Paz and Oquab, "Revisiting classifier two-sample tests", ICLR 2017.
    Paganini, de Oliveira and Nachman, "Accelerating Science with Generative Adversarial
    Networks: An Application to 3D Particle Showers in Multilayer Calorimeters",
    Phys. Rev. Lett. 120 (2018) 042003, "Classification as a performance proxy".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score, roc_curve

from coffea_fastsim.analysis.table import ObservableTable

__all__ = ["ClassifierResult", "classifier_inputs", "classifier_two_sample_test"]


@dataclass(frozen=True)
class ClassifierResult:
    """Outcome of :func:`classifier_two_sample_test`.

    Arguments:
        auc: ROC AUC on the classifier-test events (0.5: indistinguishable).
        auc_error: standard deviation of the AUC over bootstrap resamplings of those events.
        n_train: events in the classifier-training half (each gives two rows).
        n_test: events in the classifier-test half.
        false_positive_rate, true_positive_rate: the ROC curve on the test half.
    """

    auc: float
    auc_error: float
    n_train: int
    n_test: int
    false_positive_rate: np.ndarray
    true_positive_rate: np.ndarray


def classifier_inputs(gen: ObservableTable, output: ObservableTable) -> np.ndarray:
    """Classifier input rows [GEN features, output features, output auxiliary observables].

    Arguments:
        gen: the GEN observables of n events.
        output: the DL, RECO or RECO' observables of the same events.

    Returns:
        shape (n, 9 + 9 + 11), float64.
    """
    return np.column_stack([gen.features, output.features, output.auxiliary()])


def _bootstrap_auc(
    labels: np.ndarray, scores: np.ndarray, n_events: int, n_bootstrap: int, seed: int
) -> float:
    """Std of the AUC over resamplings of events (both rows of an event move together)."""
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_bootstrap):
        events = rng.integers(0, n_events, n_events)
        rows = np.concatenate([events, events + n_events])
        values.append(roc_auc_score(labels[rows], scores[rows]))
    return float(np.std(values, ddof=1))


def classifier_two_sample_test(
    gen: ObservableTable,
    candidate: ObservableTable,
    reference: ObservableTable,
    seed: int = 0,
    n_bootstrap: int = 200,
    max_iter: int = 200,
) -> ClassifierResult:
    """Train a classifier to separate candidate (label 1) from reference (label 0) events.

    The events are split in halves by a seeded shuffle; the candidate and reference rows
    of an event go to the same half, so the test half holds only events the classifier
    never saw. The AUC error is the bootstrap spread over test events.

    Arguments:
        gen: GEN observables of the n events.
        candidate: e.g. DL observables of the same events.
        reference: RECO observables of the same events.
        seed: seed of the split, the classifier and the bootstrap.
        n_bootstrap: bootstrap resamplings of the test half (at least 2).
        max_iter: boosting iterations (early stopping on 10% of the training half).

    Raises:
        ValueError: shapes differ or fewer than 20 events.
    """
    shapes = {table.features.shape for table in (gen, candidate, reference)}
    n_features = len(gen.analysis.features)
    if len(shapes) != 1 or next(iter(shapes))[1:] != (n_features,):
        raise ValueError(f"need three samples of the same shape (n, {n_features}), got {shapes}")
    n_events = len(gen)
    if n_events < 20:
        raise ValueError(f"need at least 20 events for the classifier test, got {n_events}")
    if n_bootstrap < 2:
        raise ValueError(f"n_bootstrap must be at least 2, got {n_bootstrap}")
    order = np.random.default_rng(seed).permutation(n_events)
    halves = order[: n_events // 2], order[n_events // 2 :]

    def rows(events: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        gen_rows = gen.take(events)
        x = np.concatenate(
            [
                classifier_inputs(gen_rows, candidate.take(events)),
                classifier_inputs(gen_rows, reference.take(events)),
            ]
        )
        y = np.concatenate([np.ones(len(events)), np.zeros(len(events))])
        return x, y

    x_train, y_train = rows(halves[0])
    x_test, y_test = rows(halves[1])
    classifier = HistGradientBoostingClassifier(
        max_iter=max_iter, early_stopping=True, validation_fraction=0.1, random_state=seed
    )
    classifier.fit(x_train, y_train)
    scores = classifier.predict_proba(x_test)[:, 1]
    auc = float(roc_auc_score(y_test, scores))
    false_positive, true_positive, _ = roc_curve(y_test, scores)
    return ClassifierResult(
        auc=auc,
        auc_error=_bootstrap_auc(y_test, scores, len(halves[1]), n_bootstrap, seed),
        n_train=len(halves[0]),
        n_test=len(halves[1]),
        false_positive_rate=false_positive,
        true_positive_rate=true_positive,
    )
