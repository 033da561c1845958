"""The W+jet selection and feature vectors against hand-computed kinematics."""

from __future__ import annotations

import dataclasses
import math

import awkward as ak
import numpy as np
import pytest
import vector
from hypothesis import given, settings
from hypothesis import strategies as st

from coffea_fastsim.analysis.features import build_features
from coffea_fastsim.analysis.wjets import WJETS

PROMPT = 1 << 0
LAST_COPY = 1 << 13


def particle(pt, eta, phi, mass=0.1057, pdg_id=13, status=1, flags=PROMPT | LAST_COPY):
    return {
        "pt": pt,
        "eta": eta,
        "phi": phi,
        "mass": mass,
        "pdgId": pdg_id,
        "status": status,
        "statusFlags": flags,
    }


def jet(pt, eta, phi, mass):
    return {"pt": pt, "eta": eta, "phi": phi, "mass": mass}


def event(genpart, genjet, genmet, muon=(), reco_jet=(), met=None, number=1):
    return {
        "run": 1,
        "luminosityBlock": 1,
        "event": number,
        "GenPart": list(genpart),
        "GenJet": list(genjet),
        "GenMET": {"pt": genmet[0], "phi": genmet[1]},
        "Muon": [jet(*m) for m in muon],
        "Jet": [jet(*j) for j in reco_jet],
        "MET": {"pt": (met or genmet)[0], "phi": (met or genmet)[1]},
    }


GOOD_MUON = particle(40.0, 0.0, 0.0)
GOOD_JET = jet(50.0, 1.0, math.pi / 2, 10.0)
# Fails the selection (soft muon) but gives every collection its record type, as ROOT files do.
FILLER = event(
    [particle(5.0, 0.0, 0.0)],
    [GOOD_JET],
    (1.0, 0.0),
    [(5.0, 0.0, 0.0, 0.1)],
    [(50.0, 1.0, 1.5, 9.0)],
)


def as_events(*records, drop=()):
    """Awkward events from records, plus a filler event that never passes the selection.

    ``drop`` names collections absent from the records, removed from the filler too.
    """
    filler = {key: value for key, value in FILLER.items() if key not in drop}
    return ak.Array([*records, {**filler, "event": 999_999}])


@pytest.fixture
def reference_event():
    """One event with exactly known GEN and RECO kinematics."""
    return event(
        genpart=[particle(5.0, 0.3, 0.2, pdg_id=211), GOOD_MUON],
        genjet=[GOOD_JET],
        genmet=(30.0, math.pi),
        muon=[(41.0, 0.0, 0.0, 0.1057), (10.0, 2.0, 3.0, 0.1057)],
        reco_jet=[(12.0, -2.0, -1.0, 3.0), (55.0, 1.0, math.pi / 2, 11.0)],
        met=(20.0, 0.0),
    )


def test_gen_features_match_hand_computation(reference_event):
    features = build_features(as_events(reference_event), WJETS)
    assert len(features) == 1
    expected = [40.0, 0.0, 0.0, 0.0, 50.0, 50.0 * math.sinh(1.0), math.log(10.0), -30.0, 0.0]
    np.testing.assert_allclose(features.gen[0], expected, atol=1e-5)


def test_reco_features_use_closest_objects(reference_event):
    features = build_features(as_events(reference_event), WJETS)
    assert features.reco_valid.tolist() == [True]
    expected = [41.0, 0.0, 0.0, 0.0, 55.0, 55.0 * math.sinh(1.0), math.log(11.0), 20.0, 0.0]
    np.testing.assert_allclose(features.reco[0], expected, atol=1e-5)


def test_auxiliary_observables_match_hand_computation():
    features = np.array(
        [[40.0, 0.0, 0.0, 0.0, 50.0, 50.0 * math.sinh(1.0), math.log(10.0), -30.0, 0.0]]
    )
    aux = WJETS.auxiliary_from_features(features)
    assert tuple(aux) == WJETS.auxiliary_names
    expected = {
        "muon_pt": 40.0,
        "muon_eta": 0.0,
        "muon_phi": 0.0,
        "jet_pt": 50.0,
        "jet_eta": 1.0,
        "jet_phi": math.pi / 2,
        "met": 30.0,
        "met_phi": math.pi,
        "mt": math.sqrt(2 * 40.0 * 30.0 * (1 - math.cos(math.pi))),
        "st": 120.0,
        "jet_mass": 10.0,
    }
    for name, value in expected.items():
        assert aux[name][0] == pytest.approx(value, abs=1e-9), name


def test_transverse_mass_formula_at_general_angle():
    muon_pt, met, delta_phi = 35.0, 42.0, 1.1
    features = np.zeros((1, 9))
    features[0, 0] = muon_pt
    features[0, 7] = met * math.cos(delta_phi)
    features[0, 8] = met * math.sin(delta_phi)
    features[0, 3] = 30.0
    mt = WJETS.auxiliary_from_features(features)["mt"][0]
    assert mt == pytest.approx(math.sqrt(2 * muon_pt * met * (1 - math.cos(delta_phi))))


@pytest.mark.parametrize(
    ("description", "genpart", "genjet"),
    [
        ("muon below 22 GeV", [particle(21.0, 0.0, 0.0)], [GOOD_JET]),
        ("non-prompt muon", [particle(40.0, 0.0, 0.0, flags=LAST_COPY)], [GOOD_JET]),
        ("not a muon", [particle(40.0, 0.0, 0.0, pdg_id=11)], [GOOD_JET]),
        ("unstable muon copy", [particle(40.0, 0.0, 0.0, status=23)], [GOOD_JET]),
        ("jet below 30 GeV", [GOOD_MUON], [jet(29.0, 0.5, 2.0, 5.0)]),
        ("jet beyond |eta| 2.4", [GOOD_MUON], [jet(80.0, 2.5, 2.0, 5.0)]),
        ("jet on the muon", [GOOD_MUON], [jet(80.0, 0.3, 0.3, 5.0)]),
        ("massless jet", [GOOD_MUON], [jet(80.0, 0.5, 2.0, 0.0)]),
        ("no jet", [GOOD_MUON], []),
    ],
)
def test_gen_selection_rejects(description, genpart, genjet):
    features = build_features(as_events(event(genpart, genjet, (10.0, 0.0))), WJETS)
    assert len(features) == 0, description
    assert features.gen.shape == (0, len(WJETS.features))


def test_leading_jet_away_from_muon_is_chosen():
    genjet = [jet(90.0, 0.2, 0.1, 5.0), jet(60.0, -1.0, 2.0, 7.0), jet(45.0, 0.0, -2.0, 4.0)]
    features = build_features(as_events(event([GOOD_MUON], genjet, (10.0, 0.0))), WJETS)
    np.testing.assert_allclose(features.gen[0, 3], 60.0 * math.cos(2.0))
    np.testing.assert_allclose(features.gen[0, 6], math.log(7.0))


def test_muon_residual_cut_invalidates_reco():
    record = event(
        [GOOD_MUON],
        [GOOD_JET],
        (30.0, 0.0),
        muon=[(45.0, 0.0, 0.0, 0.1)],
        reco_jet=[(50.0, 1.0, 1.5, 9.0)],
    )
    features = build_features(as_events(record), WJETS)
    assert features.reco_valid.tolist() == [False]
    assert np.isnan(features.reco[0]).all()


def test_missing_reco_objects_give_invalid_reco():
    features = build_features(as_events(event([GOOD_MUON], [GOOD_JET], (30.0, 0.0))), WJETS)
    assert features.has_reco
    assert features.reco_valid.tolist() == [False]


def test_gen_only_input_has_no_reco():
    record = event([GOOD_MUON], [GOOD_JET], (30.0, 0.0))
    for name in ("Muon", "Jet", "MET"):
        del record[name]
    features = build_features(as_events(record, drop=("Muon", "Jet", "MET")), WJETS)
    assert not features.has_reco
    assert features.reco is None


def test_delta_phi_is_that_of_the_detector_and_of_vector():
    from coffea_fastsim.analysis.flat import angular_distance
    from coffea_fastsim.sim.detector.response import wrap_phi

    phi = np.array([0.0, 1.0, -1.0, np.pi, -np.pi, 3.5, -3.5, 7.0, 100.0])
    zero = np.zeros_like(phi)
    expected = np.array([0.0, 1.0, 1.0, np.pi, np.pi, 2 * np.pi - 3.5, 2 * np.pi - 3.5])
    np.testing.assert_allclose(np.abs(wrap_phi(phi))[:7], expected, rtol=1e-15)
    np.testing.assert_array_equal(angular_distance(zero, phi, zero, zero), np.abs(wrap_phi(phi)))
    one = np.ones_like(phi)
    angle = vector.array({"rho": one, "phi": phi}).deltaphi(vector.array({"rho": one, "phi": zero}))
    np.testing.assert_array_equal(np.asarray(angle), wrap_phi(phi))


def test_missing_gen_branch_is_named():
    record = event([GOOD_MUON], [GOOD_JET], (30.0, 0.0))
    del record["GenJet"]
    with pytest.raises(KeyError, match="GenJet"):
        build_features(as_events(record, drop=("GenJet",)), WJETS)


def test_selection_cuts_are_configurable():
    record = event([particle(21.0, 0.0, 0.0)], [GOOD_JET], (10.0, 0.0))
    muon = dataclasses.replace(WJETS.objects[0], pt_min=20.0)
    looser = dataclasses.replace(WJETS, objects=(muon, *WJETS.objects[1:]))
    assert len(build_features(as_events(record), looser)) == 1


finite = st.floats(min_value=-1e4, max_value=1e4, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(
    muons=st.lists(st.tuples(st.floats(0.0, 5e3), finite, finite), max_size=4),
    jets=st.lists(
        st.tuples(st.floats(0.0, 5e3), finite, finite, st.floats(0.0, 500.0)), max_size=5
    ),
    met=st.tuples(st.floats(0.0, 1e4), finite),
)
def test_feature_builder_on_random_events(muons, jets, met):
    """Any event content gives either no selected event or finite features that pass the cuts."""
    genpart = [particle(pt, eta / 1e3, phi / 1e3) for pt, eta, phi in muons]
    genjet = [jet(pt, eta / 1e3, phi / 1e3, mass) for pt, eta, phi, mass in jets]
    features = build_features(
        as_events(event(genpart, genjet, met), event([], [], met, number=2)), WJETS
    )
    assert len(features) <= 1
    if len(features):
        assert np.isfinite(features.gen).all()
        aux = WJETS.auxiliary_from_features(features.gen)
        assert aux["muon_pt"][0] > 22.0
        assert aux["jet_pt"][0] > 30.0
        assert abs(aux["jet_eta"][0]) < 2.4


def test_objects_stay_in_their_own_events():
    """A muon in one event and a jet in the next never combine; RECO objects of a failing
    event are never matched to a selected one."""
    muon_only = event([GOOD_MUON], [], (10.0, 0.0), muon=[(40.0, 0.0, 0.0, 0.1)], number=1)
    jet_only = event(
        [particle(5.0, 0.0, 0.0)],
        [GOOD_JET],
        (10.0, 0.0),
        reco_jet=[(50.0, 1.0, math.pi / 2, 10.0)],
        number=2,
    )
    selected = event(
        [particle(30.0, -1.0, 1.0)],
        [jet(70.0, 0.5, -2.0, 8.0)],
        (25.0, 0.5),
        muon=[(30.5, -1.0, 1.0, 0.1)],
        reco_jet=[(65.0, 0.5, -2.0, 9.0)],
        number=3,
    )
    features = build_features(as_events(muon_only, jet_only, selected), WJETS)
    assert features.event.tolist() == [3]
    expected_gen = [
        30.0 * math.cos(1.0),
        30.0 * math.sin(1.0),
        30.0 * math.sinh(-1.0),
        70.0 * math.cos(-2.0),
        70.0 * math.sin(-2.0),
        70.0 * math.sinh(0.5),
        math.log(8.0),
        25.0 * math.cos(0.5),
        25.0 * math.sin(0.5),
    ]
    np.testing.assert_allclose(features.gen[0], expected_gen, rtol=1e-6, atol=1e-5)
    assert features.reco_valid.tolist() == [True]
    np.testing.assert_allclose(features.reco[0, 3], 65.0 * math.cos(-2.0), rtol=1e-6)
    np.testing.assert_allclose(features.reco[0, 6], math.log(9.0), rtol=1e-6)


def test_leading_muon_is_the_hardest_wherever_it_is_stored():
    genpart = [particle(30.0, 0.1, 0.0), particle(60.0, -0.2, 0.0), particle(45.0, 0.3, 0.0)]
    features = build_features(as_events(event(genpart, [GOOD_JET], (10.0, 0.0))), WJETS)
    np.testing.assert_allclose(features.gen[0, 0], 60.0, rtol=1e-6)
    np.testing.assert_allclose(features.gen[0, 2], 60.0 * math.sinh(-0.2), rtol=1e-6)


def test_ties_go_to_the_first_object():
    """Equal pT (GEN muons) and equal Delta R (RECO jets): the object stored first wins."""
    genpart = [particle(40.0, 0.4, 0.0), particle(40.0, -0.4, 0.0)]
    genjet = [jet(50.0, 1.0, math.pi / 2, 10.0)]
    reco_jets = [(48.0, 1.0, math.pi / 2 + 0.1, 9.0), (52.0, 1.0, math.pi / 2 - 0.1, 11.0)]
    record = event(genpart, genjet, (10.0, 0.0), muon=[(40.0, 0.4, 0.0, 0.1)], reco_jet=reco_jets)
    features = build_features(as_events(record), WJETS)
    np.testing.assert_allclose(features.gen[0, 2], 40.0 * math.sinh(0.4), rtol=1e-6)
    np.testing.assert_allclose(features.reco[0, 6], math.log(9.0), rtol=1e-6)
