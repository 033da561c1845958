"""The detector target: responses in the detector's coordinates, exact kinematics."""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
import pytest
import torch

from coffea_fastsim.analysis.definition import DefinitionError, Response
from coffea_fastsim.analysis.wjets import WJETS
from coffea_fastsim.analysis.zmumu import ZMUMU
from coffea_fastsim.surrogate.coordinates import TargetCoordinates
from coffea_fastsim.surrogate.flow import FlowConfig, FlowSurrogate
from coffea_fastsim.surrogate.gaussian import GaussianSurrogate
from coffea_fastsim.surrogate.model_file import load_model, save_model
from coffea_fastsim.surrogate.scaling import Standardization
from coffea_fastsim.surrogate.training import TrainingConfig, train_surrogate

# Feature order of the W+jet analysis: muon px py pz, jet px py pz, log M_j, MET x y.
MUON, JET, LOG_MASS, MET = slice(0, 3), slice(3, 6), 6, slice(7, 9)


@pytest.fixture
def wjets_coordinates() -> TargetCoordinates:
    return TargetCoordinates(WJETS.feature_names, WJETS.responses)


def _event(muon, jet, log_mass, met) -> torch.Tensor:
    return torch.tensor([[*muon, *jet, log_mass, *met]], dtype=torch.float64)


def _values(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def test_momentum_response_is_log_pt_ratio_and_angle_differences(wjets_coordinates) -> None:
    # GEN muon pT 50 GeV at eta 0; RECO 10% harder, same direction: (log 1.1, 0, 0).
    # GEN jet pT 100 GeV along x, eta 0; RECO pT 100 GeV at eta asinh(0.5) and phi 0.1.
    reco_jet = (100 * math.cos(0.1), 100 * math.sin(0.1), 50.0)
    gen = _event((30.0, 40.0, 0.0), (100.0, 0.0, 0.0), 2.0, (10.0, 0.0))
    reco = _event((33.0, 44.0, 0.0), reco_jet, 2.5, (15.0, 3.0))
    target = wjets_coordinates.encode(gen, reco)[0]
    torch.testing.assert_close(target[MUON], _values(math.log(1.1), 0.0, 0.0))
    torch.testing.assert_close(target[JET], _values(0.0, math.asinh(0.5), 0.1), atol=1e-12, rtol=0)
    # log(m_RECO / m_GEN) = 2.5 - 2.0.
    assert target[LOG_MASS].item() == pytest.approx(0.5)
    # MET difference (5, 3) GeV, along the GEN jet (the x axis) and across it.
    torch.testing.assert_close(target[MET], _values(5.0, 3.0))


def test_missing_momentum_axis_rotates_with_the_jet(wjets_coordinates) -> None:
    gen = _event((30.0, 40.0, 0.0), (0.0, 100.0, 0.0), 2.0, (10.0, 0.0))  # jet along +y
    reco = _event((30.0, 40.0, 0.0), (0.0, 100.0, 0.0), 2.0, (15.0, 3.0))
    along, across = wjets_coordinates.encode(gen, reco)[0, MET].tolist()
    assert (along, across) == pytest.approx((3.0, -5.0))


@pytest.mark.parametrize(
    ("gen_phi", "reco_phi", "expected"),
    [(3.1, -3.1, 2 * math.pi - 6.2), (-3.1, 3.1, 6.2 - 2 * math.pi), (0.2, -0.3, -0.5)],
)
def test_phi_difference_is_wrapped(wjets_coordinates, gen_phi, reco_phi, expected) -> None:
    def muon(phi: float) -> tuple[float, float, float]:
        return (40 * math.cos(phi), 40 * math.sin(phi), 10.0)

    jet, met = (100.0, 0.0, 0.0), (0.0, 0.0)
    target = wjets_coordinates.encode(
        _event(muon(gen_phi), jet, 2.0, met), _event(muon(reco_phi), jet, 2.0, met)
    )
    assert target[0, 2].item() == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("analysis", [WJETS, ZMUMU], ids=lambda a: a.name)
def test_decode_inverts_encode(analysis) -> None:
    coordinates = TargetCoordinates(analysis.feature_names, analysis.responses)
    rng = np.random.default_rng(3)
    gen = torch.as_tensor(rng.normal(0.0, 60.0, (500, len(analysis.features))))
    reco = gen * torch.as_tensor(rng.normal(1.0, 0.1, gen.shape)) + 1.0
    back = coordinates.decode(gen, coordinates.encode(gen, reco))
    torch.testing.assert_close(back, reco, atol=1e-9, rtol=1e-9)


@pytest.mark.parametrize("analysis", [WJETS, ZMUMU], ids=lambda a: a.name)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_zero_response_gives_back_the_gen_features_exactly(analysis, dtype) -> None:
    """A detector that measures everything exactly: RECO = GEN to the last bit, in float32
    too (no round trip through pT, eta and phi)."""
    coordinates = TargetCoordinates(analysis.feature_names, analysis.responses)
    generator = torch.Generator().manual_seed(5)
    gen = (torch.randn(4096, len(analysis.features), generator=generator) * 60.0).to(dtype)
    assert torch.equal(coordinates.decode(gen, torch.zeros_like(gen)), gen)


def test_decode_of_known_responses(wjets_coordinates) -> None:
    """GEN jet of pT 100 GeV along x at eta 0; response (log 1.1, asinh 0.5, 0.1): RECO pT
    110 GeV at eta asinh(0.5), phi 0.1, i.e. (110 cos 0.1, 110 sin 0.1, 55) GeV."""
    gen = _event((30.0, 40.0, 0.0), (100.0, 0.0, 0.0), 2.0, (10.0, 0.0))
    target = torch.zeros_like(gen)
    target[0, JET] = _values(math.log(1.1), math.asinh(0.5), 0.1)
    target[0, MET] = _values(5.0, 3.0)  # along and across the GEN jet (the x axis)
    reco = wjets_coordinates.decode(gen, target)[0]
    expected_jet = _values(110 * math.cos(0.1), 110 * math.sin(0.1), 55.0)
    torch.testing.assert_close(reco[JET], expected_jet, atol=1e-12, rtol=0)
    torch.testing.assert_close(reco[MET], _values(15.0, 3.0), atol=1e-12, rtol=0)
    torch.testing.assert_close(reco[MUON], _values(30.0, 40.0, 0.0), atol=0, rtol=0)


def test_context_is_log_pt_and_eta_of_each_momentum(wjets_coordinates) -> None:
    gen = _event((30.0, 40.0, 50.0 * math.sinh(1.2)), (100.0, 0.0, 0.0), 2.0, (1.0, 1.0))
    context = wjets_coordinates.context(gen)[0].tolist()
    assert context == pytest.approx([math.log(50.0), math.log(100.0), 1.2, 0.0])


def test_paper_target_is_the_reco_features() -> None:
    coordinates = TargetCoordinates(WJETS.feature_names)
    gen, reco = torch.randn(7, 9, dtype=torch.float64), torch.randn(7, 9, dtype=torch.float64)
    assert torch.equal(coordinates.encode(gen, reco), reco)
    assert torch.equal(coordinates.decode(gen, reco), reco)
    assert coordinates.context(gen).shape == (7, 0)
    assert coordinates.name == "paper"


def test_scripted_coordinates_decode_as_eager(wjets_coordinates) -> None:
    gen = torch.randn(64, 9) * 40.0
    target = torch.randn(64, 9) * 0.1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        scripted = torch.jit.script(wjets_coordinates)
    assert torch.equal(scripted.decode(gen, target), wjets_coordinates.decode(gen, target))


@pytest.mark.parametrize(
    ("responses", "field"),
    [
        (WJETS.responses[:-1], "responses"),  # MET not covered
        ((*WJETS.responses, Response("again", "difference", ("met_x",))), "responses"),
        (
            (*WJETS.responses[:3], Response("met", "transverse", ("met_x", "met_y"), "none")),
            "responses['met'].axis",
        ),
        (
            (Response("muon", "momentum", ("muon_px", "muon_py")), *WJETS.responses[1:]),
            "responses['muon'].features",
        ),
        (
            (Response("muon", "boost", ("muon_px",)), *WJETS.responses[1:]),
            "responses['muon'].kind",
        ),
    ],
    ids=["not-covered", "twice", "bad-axis", "arity", "kind"],
)
def test_definition_refuses_inconsistent_responses(responses, field: str) -> None:
    with pytest.raises(DefinitionError, match=field.replace("[", r"\[")):
        dataclasses.replace(WJETS, responses=tuple(responses))


@pytest.fixture(scope="module")
def exact_direction_sample() -> tuple[np.ndarray, np.ndarray]:
    """A detector that measures the muon direction exactly and its pT to 5%."""
    rng = np.random.default_rng(11)
    n = 6000
    pt = rng.uniform(25.0, 120.0, (n, 2))
    eta = rng.uniform(-2.0, 2.0, (n, 2))
    phi = rng.uniform(-math.pi, math.pi, (n, 2))

    def momenta(pt: np.ndarray) -> list[np.ndarray]:
        return [pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)]

    px, py, pz = momenta(pt)
    log_mass = rng.normal(2.0, 0.5, n)
    met = rng.normal(0.0, 30.0, (n, 2))
    gen = np.column_stack([px[:, 0], py[:, 0], pz[:, 0], px[:, 1], py[:, 1], pz[:, 1]])
    gen = np.column_stack([gen, log_mass, met])
    rpx, rpy, rpz = momenta(pt * rng.normal(1.0, [0.05, 0.15], (n, 2)))
    reco = np.column_stack([rpx[:, 0], rpy[:, 0], rpz[:, 0], rpx[:, 1], rpy[:, 1], rpz[:, 1]])
    reco = np.column_stack([reco, log_mass + rng.normal(0, 0.2, n), met + rng.normal(0, 5, (n, 2))])
    return gen, reco


@pytest.mark.slow
def test_detector_target_keeps_an_exact_direction_exact(exact_direction_sample, tmp_path) -> None:
    gen, reco = exact_direction_sample
    config = TrainingConfig(epochs=30, target="detector", progress=False)
    result = train_surrogate(gen, reco, config, WJETS.feature_names, WJETS.responses)
    path = save_model(
        result.model, tmp_path / "m.pt", result.metadata(), feature_names=WJETS.feature_names
    )
    module = load_model(path).module
    x_gen = torch.as_tensor(gen[:2000], dtype=torch.float32)
    with torch.inference_mode():
        x_dl = module(x_gen, torch.randn(x_gen.shape, generator=torch.Generator().manual_seed(0)))
    target = TargetCoordinates(WJETS.feature_names, WJETS.responses).encode(
        x_gen.double(), x_dl.double()
    )
    # The muon direction comes out as the GEN one (float32 precision), its pT smeared by
    # the detector's 5%; the paper target smears px, py and pz separately instead.
    assert target[:, 1].abs().max() < 1e-5
    assert target[:, 2].abs().max() < 1e-5
    assert target[:, 0].std().item() == pytest.approx(0.05, rel=0.2)
    assert target[:, 3].std().item() == pytest.approx(0.15, rel=0.2)
    assert result.metadata()["training_config"]["target"] == "detector"


def test_context_steps_in_eta_are_known_sigmoids() -> None:
    coordinates = TargetCoordinates(WJETS.feature_names, WJETS.responses, eta_steps=(0.5, 1.5))
    # Muon at eta -1.2, jet at eta 1.49: above the first step, below and just below the second.
    gen = _event(
        (30.0, 40.0, 50.0 * math.sinh(-1.2)), (100.0, 0.0, 100.0 * math.sinh(1.49)), 2.0, (1.0, 1.0)
    )
    context = coordinates.context(gen)[0]
    assert coordinates.n_context == 8 == context.numel()
    assert coordinates.context_names[4:] == (
        "muon |eta| step at 0.5",
        "muon |eta| step at 1.5",
        "jet |eta| step at 0.5",
        "jet |eta| step at 1.5",
    )
    torch.testing.assert_close(context[:4], _values(math.log(50.0), math.log(100.0), -1.2, 1.49))
    expected = [
        1 / (1 + math.exp(-(abs(eta) - step) / 0.02)) for eta in (-1.2, 1.49) for step in (0.5, 1.5)
    ]
    torch.testing.assert_close(context[4:], _values(*expected), atol=1e-12, rtol=1e-9)
    assert expected[3] == pytest.approx(1 / (1 + math.exp(0.5)))  # 0.01 below the step


@pytest.mark.parametrize(
    ("steps", "responses", "message"),
    [
        ((0.5, 0.5), WJETS.responses, "increasing"),
        ((-1.0, 1.0), WJETS.responses, "positive"),
        ((1.0,), (), "need momentum responses"),
    ],
)
def test_bad_context_steps_are_refused(steps, responses, message) -> None:
    with pytest.raises(ValueError, match=message):
        TargetCoordinates(WJETS.feature_names, responses, eta_steps=steps)


def test_context_steps_need_the_detector_target() -> None:
    with pytest.raises(ValueError, match="detector target"):
        TrainingConfig(target="paper", context_eta_steps=(1.0,))


def test_a_step_beyond_the_sample_is_refused(exact_direction_sample) -> None:
    """The sample's GEN |eta| stops at 2: a step at 2.5 would be a constant context column."""
    gen, reco = exact_direction_sample
    config = TrainingConfig(target="detector", context_eta_steps=(1.0, 2.5), progress=False)
    with pytest.raises(ValueError, match=r"step at \|eta\| = 2.5 has 0.00% .* GEN muon"):
        train_surrogate(gen, reco, config, WJETS.feature_names, WJETS.responses)


@pytest.mark.parametrize("family", ["gaussian", "flow"])
def test_context_steps_survive_the_model_file(family: str, tmp_path) -> None:
    coordinates = TargetCoordinates(WJETS.feature_names, WJETS.responses, eta_steps=(1.0, 1.8))
    standardization = Standardization(
        gen_mean=torch.zeros(9),
        gen_std=torch.full((9,), 40.0),
        reco_mean=torch.zeros(9),
        reco_std=torch.full((9,), 0.05),
        context_mean=torch.zeros(8),
        context_std=torch.ones(8),
    )
    torch.manual_seed(2)
    if family == "flow":
        config = FlowConfig(transform="spline", passes=1, transforms=1, hidden_features=(8,))
        model = FlowSurrogate(standardization, coordinates, config=config)
        for network in model.flow.networks:
            torch.nn.init.normal_(network.hyper[-1].weight, std=0.1)
    else:
        model = GaussianSurrogate(standardization, coordinates)
    provenance = {"sample_hash": "sha256:0", "training_config": {"seed": 0}, "best_epoch": 0}
    path = save_model(
        model.eval(), tmp_path / "m.pt", provenance, feature_names=WJETS.feature_names
    )
    loaded = load_model(path)
    assert loaded.metadata["architecture"]["eta_steps"] == [1.0, 1.8]
    gen = torch.randn(300, 9, generator=torch.Generator().manual_seed(3)) * 40.0
    eps = torch.randn(300, 9, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        assert torch.equal(loaded.module(gen, eps), model(gen, eps))


@pytest.mark.slow
def test_context_steps_resolve_a_resolution_step(tmp_path) -> None:
    """A muon pT resolution of 1% below |eta| = 1.5 and 4% above it: with a step at 1.5 in
    the context the flow's width on either side, next to the step, is the detector's."""
    rng = np.random.default_rng(12)
    n = 40_000
    pt = rng.uniform(25.0, 120.0, (n, 2))
    eta = rng.uniform(-2.4, 2.4, (n, 2))
    phi = rng.uniform(-math.pi, math.pi, (n, 2))

    def features(pt: np.ndarray, log_mass: np.ndarray, met: np.ndarray) -> np.ndarray:
        momenta = [pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)]
        return np.column_stack(
            [*(m[:, 0] for m in momenta), *(m[:, 1] for m in momenta), log_mass, met]
        )

    width = np.where(np.abs(eta[:, 0]) < 1.5, 0.01, 0.04)
    smear = np.column_stack([np.exp(rng.normal(0, width)), np.exp(rng.normal(0, 0.1, n))])
    log_mass, met = rng.normal(2.0, 0.5, n), rng.normal(0.0, 30.0, (n, 2))
    gen = features(pt, log_mass, met)
    reco = features(pt * smear, log_mass + rng.normal(0, 0.2, n), met + rng.normal(0, 5, (n, 2)))
    config = TrainingConfig(
        model="flow",
        target="detector",
        epochs=15,
        batch_size=256,
        learning_rate=0.01,
        progress=False,
        context_eta_steps=(1.5,),
        flow=FlowConfig(transform="spline", passes=1, groups="by-feature", transforms=2),
    )
    model = train_surrogate(gen, reco, config, WJETS.feature_names, WJETS.responses).model
    x_gen = torch.as_tensor(gen, dtype=torch.float32)
    with torch.no_grad():
        x_dl = model(x_gen, torch.randn(x_gen.shape, generator=torch.Generator().manual_seed(5)))
    x_dl = x_dl.numpy()
    response = np.log(np.hypot(x_dl[:, 0], x_dl[:, 1]) / pt[:, 0])
    abs_eta = np.abs(eta[:, 0])
    below, above = (abs_eta > 1.3) & (abs_eta < 1.5), (abs_eta > 1.5) & (abs_eta < 1.7)
    assert response[below].std() == pytest.approx(0.01, rel=0.15)
    assert response[above].std() == pytest.approx(0.04, rel=0.15)
