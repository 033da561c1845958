"""The held-out check of a freshly trained model: its agreement with RECO on events it never saw.

DL is :meth:`SurrogateEngine.predict` on the saved model file with the events' own
(run, luminosityBlock, event), the numbers the processor gives for the same events, so the
check does not depend on the order of the events. Training calls this check through the
argument ``check`` of :func:`coffea_fastsim.surrogate.ensemble_training.train_ensemble`:
the surrogate layer measures nothing itself.
"""

from __future__ import annotations

import os

import numpy as np

from coffea_fastsim.analysis.definition import AnalysisDefinition
from coffea_fastsim.analysis.reading import FeaturePairs
from coffea_fastsim.analysis.table import ObservableTable
from coffea_fastsim.surrogate.inference import SurrogateEngine
from coffea_fastsim.validation.metrics import agreement_table

__all__ = ["heldout_agreement"]


def heldout_agreement(
    pairs: FeaturePairs,
    analysis: AnalysisDefinition,
    model: str | os.PathLike[str],
    rows: np.ndarray,
    seed: int,
) -> dict[str, float]:
    """W1 / std(RECO) of every observable, DL of ``model`` vs RECO on ``pairs[rows]``.

    Arguments:
        pairs: the GEN/RECO pairs the model was trained on, with their identities.
        analysis: the analysis of the pairs.
        model: the saved model file.
        rows: the held-out events, indices into ``pairs``, shape (n,).
        seed: seed of the DL noise.

    Returns:
        Per observable of the analysis, W1 / std(RECO) (0: identical).
    """
    engine = SurrogateEngine(model, seed=seed)
    dl = engine.predict(
        pairs.gen[rows], pairs.run[rows], pairs.luminosity_block[rows], pairs.event[rows]
    )
    return agreement_table(
        ObservableTable.of(dl, analysis), ObservableTable.of(pairs.reco[rows], analysis)
    )
