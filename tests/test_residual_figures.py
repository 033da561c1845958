"""The residual figures: which residual each observable shows, its axis fitted to the RECO
spread, and the grids drawn with it, while the numbers keep the analysis's binning."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest

from coffea_fastsim.analysis.definition import Observable
from coffea_fastsim.analysis.histograms import RESIDUAL_PREFIX
from coffea_fastsim.analysis.table import ObservableTable
from coffea_fastsim.analysis.wjets import WJETS
from coffea_fastsim.analysis.zmumu import ZMUMU
from coffea_fastsim.validation.comparison import compare
from coffea_fastsim.validation.figures import plot_distributions
from coffea_fastsim.validation.residuals import (
    CENTRAL_FRACTION,
    SPREAD_FACTOR,
    residual_axis,
    shown_residual,
)

PT = Observable("pt", r"$p_T$ [GeV]", 60, 0.0, 300.0)
ETA = Observable("eta", r"$\eta$", 60, -3.0, 3.0, "")
PHI = Observable("phi", r"$\phi$", 64, -3.2, 3.2, "")
PX = Observable("px", r"$p_x$ [GeV]", 60, -150.0, 150.0)
LOG_MASS = Observable("log_mass", r"$\log(M / \mathrm{GeV})$", 60, -1.0, 5.0, "log(GeV)")


def _central_half_width(residuals: np.ndarray) -> float:
    tail = (1 - CENTRAL_FRACTION) / 2
    return float(np.abs(np.quantile(residuals, [tail, 1 - tail])).max())


@pytest.mark.parametrize(
    ("observable", "relative"),
    [(PT, True), (ETA, False), (PHI, False), (PX, False), (LOG_MASS, False)],
    ids=lambda value: getattr(value, "name", str(value)),
)
def test_relative_residuals_only_for_positive_scales(observable, relative):
    gen, values = np.array([1.0, 2.0]), np.array([1.2, 2.5])
    expected = (values - gen) / gen if relative else values - gen
    np.testing.assert_allclose(shown_residual(observable, values, gen), expected)


def test_the_azimuthal_difference_is_wrapped():
    residual = shown_residual(PHI, np.array([3.1, -3.1, 0.2]), np.array([-3.1, 3.1, 0.1]))
    np.testing.assert_allclose(residual, [6.2 - 2 * np.pi, 2 * np.pi - 6.2, 0.1], atol=1e-12)
    # |Delta phi| in [0, pi] is no azimuth: its difference can exceed pi and is kept.
    delta_phi = Observable("jet_dphi", r"$|\Delta\phi|$", 32, 0.0, 3.2, "")
    np.testing.assert_allclose(shown_residual(delta_phi, np.array([3.1]), np.array([0.0])), [3.1])


def test_an_unrelated_azimuth_fills_the_circle_and_no_more():
    rng = np.random.default_rng(3)
    gen, reco = rng.uniform(-np.pi, np.pi, (2, 10_000))
    axis = residual_axis(PHI, reco, gen, bins=80)
    assert axis.half_width == np.pi
    assert "(wrapped)" in axis.label


@pytest.mark.parametrize(
    ("name", "draw"),
    [
        ("gaussian", lambda rng, n: rng.normal(0.0, 0.1, n)),
        ("biased", lambda rng, n: rng.normal(-0.15, 0.05, n)),
        ("skewed", lambda rng, n: rng.lognormal(-2.0, 0.8, n) - 0.1),
        ("heavy tails", lambda rng, n: 0.05 * rng.standard_cauchy(n)),
    ],
)
def test_the_range_holds_the_central_reco_residuals_and_no_more(name, draw):
    rng = np.random.default_rng(1)
    gen = rng.uniform(40.0, 200.0, 50_000)
    reco = gen * (1.0 + draw(rng, gen.size))
    axis = residual_axis(PT, reco, gen, bins=80)
    central = _central_half_width((reco - gen) / gen)
    assert central <= axis.half_width <= SPREAD_FACTOR * central * (1 + 1e-12), name


def test_a_gaussian_response_spans_about_three_sigma():
    rng = np.random.default_rng(2)
    gen = rng.uniform(40.0, 200.0, 200_000)
    reco = gen * (1.0 + rng.normal(0.0, 0.02, gen.size))
    # 1.5 x the 97.5 % quantile of a normal distribution, 1.96 sigma.
    assert residual_axis(PT, reco, gen, bins=80).half_width == pytest.approx(
        1.5 * 1.96 * 0.02, rel=0.02
    )


@pytest.mark.parametrize(
    ("observable", "floor"), [(ETA, 0.1), (PHI, 0.1), (PX, 5.0), (PT, 5.0 / 100.0)]
)
def test_a_spike_of_exact_zeros_gives_the_floor(observable, floor):
    gen = np.full(1000, 100.0)
    axis = residual_axis(observable, gen.copy(), gen, bins=80)
    assert axis.half_width == pytest.approx(floor)
    assert axis.bins == 81
    histogram = axis.histogram()
    axis.fill(histogram, "reco", gen, gen)
    counts = histogram["reco", :].values()
    assert counts[40] == 1000, "0 is the centre of the middle bin"


def test_entries_outside_the_range_are_counted_in_the_edge_bins():
    gen = np.full(6, 100.0)
    axis = residual_axis(PX, gen, gen, bins=10)
    histogram = axis.histogram()
    axis.fill(histogram, "dl", gen + np.array([-1e6, -axis.half_width, 0.0, 1.0, 1e6, np.nan]), gen)
    counts = histogram["dl", :].values()
    assert counts.sum() == 5
    assert (counts[0], counts[-1]) == (2, 1)


@pytest.mark.parametrize("analysis", [WJETS, ZMUMU], ids=lambda a: a.name)
def test_every_residual_label_is_drawable(analysis):
    gen = np.ones(10)
    fig = plt.figure()
    for index, observable in enumerate(analysis.observables):
        fig.text(0.0, index / 30, residual_axis(observable, gen, gen, bins=80).label)
    fig.canvas.draw()
    plt.close(fig)


@pytest.fixture(scope="module")
def toy_events() -> tuple[ObservableTable, ObservableTable, ObservableTable]:
    """GEN; RECO smearing every feature but the jet mass; RECO' smearing all of them."""
    rng = np.random.default_rng(5)
    gen = rng.normal(size=(3000, 9)) * 40.0
    gen[:, 6] = rng.normal(2.0, 0.5, 3000)
    reco = gen + rng.normal(size=gen.shape) * 3.0
    reco[:, 6] = gen[:, 6]
    prime = gen + rng.normal(size=gen.shape) * 3.0
    return tuple(ObservableTable.of(table, WJETS) for table in (gen, reco, prime))


def test_the_numbers_keep_the_analysis_binning_and_the_figures_are_fitted(toy_events):
    gen, reco, prime = toy_events
    dl = ObservableTable.of(prime.features * 1.05, WJETS)
    model, floor = compare(gen, dl, reco), compare(gen, prime, reco)
    bins, low, high = WJETS.residual_binning
    key = f"{RESIDUAL_PREFIX}jet_log_mass"
    numbers, shown = model.histograms[key].axes[1], model.figure_histograms[key].axes[1]
    assert (numbers.size, numbers.edges[0], numbers.edges[-1]) == (bins, low, high)
    # RECO reproduces the GEN jet mass: the axis is the floor, one bin of log M_j.
    assert shown.edges[-1] == pytest.approx(0.1)
    assert np.array_equal(floor.figure_histograms[key].axes[1].edges, shown.edges)
    assert model.figure_histograms["muon_px"] is model.histograms["muon_px"]


def test_the_residual_grid_is_written_with_its_floor(toy_events, tmp_path):
    gen, reco, prime = toy_events
    model, floor = compare(gen, prime, reco), compare(gen, prime, reco)
    keys = [f"{RESIDUAL_PREFIX}{name}" for name in WJETS.feature_names]
    written = plot_distributions(model, floor, keys, tmp_path / "fig05", "Residuals")
    assert [p.name for p in written] == ["fig05.png", "fig05.pdf"]
    assert all(p.stat().st_size > 10_000 for p in written)


def test_a_floor_with_other_bins_is_refused(toy_events, tmp_path):
    gen, reco, prime = toy_events
    model = compare(gen, prime, reco)
    other = compare(gen, prime, prime)
    key = f"{RESIDUAL_PREFIX}jet_log_mass"
    with pytest.raises(ValueError, match="other bins"):
        plot_distributions(model, other, [key], tmp_path / "figure", "x")
