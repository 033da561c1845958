"""Pythia8 generation, the GEN record and the NanoAOD-like file."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot
from coffea.nanoevents import NanoAODSchema, NanoEventsFactory

from coffea_fastsim.sim.generation import GenerationConfig, generate_sample
from coffea_fastsim.sim.nanoaod_writer import GEN_BRANCHES, RECO_BRANCHES, NanoAODWriter

SEED = 7
CONFIG = GenerationConfig(n_events=300, seed=SEED, events_per_job=150, progress=False)


def read_arrays(path: Path) -> ak.Array:
    with uproot.open(path) as file:
        return file["Events"].arrays()


def read_events(path: Path) -> ak.Array:
    factory = NanoEventsFactory.from_root(
        {str(path): "Events"}, schemaclass=NanoAODSchema, mode="eager"
    )
    return factory.events()


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> dict[str, Path]:
    """Files generated once: the same seed with 1 and 2 workers, the first job again with
    another detector seed (and one re-simulation), a GEN-only file of another seed, and a
    perfect-detector file."""
    directory = tmp_path_factory.mktemp("generation")
    configs = {
        "two_workers": dataclasses.replace(CONFIG, n_workers=2),
        "one_worker": dataclasses.replace(CONFIG, n_workers=1),
        "other_detector_seed": dataclasses.replace(
            CONFIG, n_events=150, n_workers=1, detector_seed=99, resimulations=1
        ),
        "gen_only": dataclasses.replace(
            CONFIG, n_events=150, seed=SEED + 1, n_workers=1, include_reco=False
        ),
        "perfect": dataclasses.replace(CONFIG, n_events=150, n_workers=1, detector="perfect"),
    }
    paths = {}
    for name, config in configs.items():
        summary = generate_sample(directory / f"{name}.root", config)
        assert summary.n_events == config.n_events
        paths[name] = summary.path
        paths |= {f"{name}.resim{k}": p for k, p in enumerate(summary.resimulations, start=1)}
    return paths


@pytest.fixture(scope="module")
def events(samples) -> ak.Array:
    return read_events(samples["two_workers"])


@pytest.mark.slow
def test_file_does_not_depend_on_worker_count(samples):
    one, two = read_arrays(samples["one_worker"]), read_arrays(samples["two_workers"])
    assert one.fields == two.fields
    for name in one.fields:
        assert ak.array_equal(one[name], two[name]), name


@pytest.mark.slow
def test_detector_seed_changes_only_reco(samples):
    first_job = read_arrays(samples["one_worker"])[:150]
    other = read_arrays(samples["other_detector_seed"])
    for name in ("GenPart_pt", "GenPart_pdgId", "GenJet_pt", "GenMET_pt", "event"):
        assert ak.array_equal(first_job[name], other[name]), name
    assert not ak.array_equal(first_job["MET_pt"], other["MET_pt"])


@pytest.mark.slow
def test_resimulation_has_same_gen_and_independent_reco(samples):
    first = read_arrays(samples["other_detector_seed"])
    again = read_arrays(samples["other_detector_seed.resim1"])
    assert samples["other_detector_seed.resim1"].name == "other_detector_seed.resim1.root"
    assert first.fields == again.fields
    for name in first.fields:
        if name.split("_")[0] in ("GenPart", "GenJet", "GenMET", "run", "event", "genWeight"):
            assert ak.array_equal(first[name], again[name]), name
    assert not ak.array_equal(first["MET_pt"], again["MET_pt"])
    # Same distributions: the mean MET agrees within a few standard errors.
    met, met_again = ak.to_numpy(first["MET_pt"]), ak.to_numpy(again["MET_pt"])
    assert abs(met.mean() - met_again.mean()) < 4 * met.std() / np.sqrt(met.size / 2)


@pytest.mark.slow
def test_other_seed_gives_other_events(samples):
    gen_only = read_arrays(samples["gen_only"])
    reference = read_arrays(samples["one_worker"])
    assert not ak.array_equal(gen_only["GenMET_pt"], reference["GenMET_pt"][:150])
    assert set(gen_only["run"].tolist()) == {SEED + 1}
    assert set(reference["run"].tolist()) == {SEED}


@pytest.mark.slow
def test_branches_and_dtypes(samples):
    with uproot.open(samples["two_workers"]) as file:
        tree = file["Events"]
        for collection, spec in (GEN_BRANCHES | RECO_BRANCHES).items():
            if isinstance(spec, np.dtype):
                assert tree[collection].interpretation.to_dtype == spec, collection
                continue
            assert f"n{collection}" in tree or collection in ("GenMET", "MET")
            for field, dtype in spec.items():
                content = tree[f"{collection}_{field}"].interpretation
                dtype_read = getattr(content, "content", content).to_dtype
                assert dtype_read == dtype, f"{collection}_{field}"


@pytest.mark.slow
def test_gen_only_file_has_no_reco(samples):
    fields = read_events(samples["gen_only"]).fields
    assert {"GenPart", "GenJet", "GenMET"} <= set(fields)
    assert not {"Muon", "Jet", "MET"} & set(fields)


@pytest.mark.slow
def test_event_ids_are_unique(events):
    ids = set(
        zip(
            events.run.tolist(), events.luminosityBlock.tolist(), events.event.tolist(), strict=True
        )
    )
    assert len(ids) == len(events) == CONFIG.n_events
    np.testing.assert_array_equal(ak.to_numpy(events.luminosityBlock), np.repeat([1, 2], 150))


@pytest.mark.slow
def test_matched_gen_links(events):
    muons = events.Muon[events.Muon.genPartIdx >= 0]
    assert ak.sum(ak.num(muons)) > 0.4 * len(events)
    matched = muons.matched_gen
    assert ak.all(abs(matched.pdgId) == 13)
    # mu- has PDG id +13 and charge -1.
    assert ak.all(muons.charge == -np.sign(matched.pdgId))
    assert ak.all(abs(muons.pt / matched.pt - 1) < 0.2)
    # Jets from particle flow: nearly all match a GEN jet within Delta R < 0.25, the rest
    # (fluctuations of the underlying event) have genJetIdx = -1.
    assert ak.mean(events.Jet.genJetIdx >= 0) > 0.9
    jets = events.Jet[events.Jet.genJetIdx >= 0]
    assert ak.all(jets.delta_r(jets.matched_gen) < 0.25)


@pytest.mark.slow
def test_w_decay_leptons_are_prompt(events):
    final = events.GenPart[(events.GenPart.status == 1)]
    leptons = final[(abs(final.pdgId) >= 11) & (abs(final.pdgId) <= 16)]
    from_w = ak.fill_none(abs(leptons.distinctParent.pdgId) == 24, False)
    assert ak.all(leptons.hasFlags(["isPrompt"]) == from_w)
    assert ak.all(leptons[from_w].hasFlags(["fromHardProcess", "isLastCopy"]))
    # Exactly one W -> mu nu decay per event.
    assert ak.all(ak.sum(from_w & (abs(leptons.pdgId) == 13), axis=1) == 1)


@pytest.mark.slow
def test_w_mass_from_decay_products(events):
    gen = events.GenPart
    hard_leptons = gen[gen.hasFlags(["isHardProcess"]) & (abs(gen.pdgId) >= 13)]
    hard_leptons = hard_leptons[abs(hard_leptons.pdgId) <= 14]
    last_w = gen[(abs(gen.pdgId) == 24) & gen.hasFlags(["isLastCopy"])]
    assert ak.all(ak.num(hard_leptons) == 2)
    assert ak.all(ak.num(last_w) == 1)
    assert ak.all(last_w.status == 62)
    # Masses from float32 (pt, eta, phi, mass): relative precision about 1e-4.
    pair_mass = (hard_leptons[:, 0] + hard_leptons[:, 1]).mass
    np.testing.assert_allclose(ak.to_numpy(pair_mass), ak.to_numpy(last_w.mass[:, 0]), rtol=1e-3)


@pytest.mark.slow
def test_gen_met_is_neutrino_sum(events):
    gen = events.GenPart
    neutrino_id = (abs(gen.pdgId) == 12) | (abs(gen.pdgId) == 14) | (abs(gen.pdgId) == 16)
    neutrinos = gen[(gen.status == 1) & neutrino_id]
    px = ak.to_numpy(ak.sum(neutrinos.pt * np.cos(neutrinos.phi), axis=1))
    py = ak.to_numpy(ak.sum(neutrinos.pt * np.sin(neutrinos.phi), axis=1))
    met = events.GenMET
    np.testing.assert_allclose(np.hypot(px, py), ak.to_numpy(met.pt), rtol=1e-4, atol=1e-3)


@pytest.mark.slow
def test_perfect_detector_closes(samples):
    events = read_events(samples["perfect"])
    # Transverse momentum conservation: minus the visible pT sum is the neutrino pT sum.
    np.testing.assert_allclose(
        ak.to_numpy(events.MET.pt), ak.to_numpy(events.GenMET.pt), rtol=1e-3, atol=1e-2
    )
    muons = events.Muon[events.Muon.genPartIdx >= 0]
    np.testing.assert_allclose(
        ak.to_numpy(ak.flatten(muons.pt)), ak.to_numpy(ak.flatten(muons.matched_gen.pt)), rtol=1e-6
    )
    assert ak.all(ak.num(events.Jet) == ak.num(events.GenJet))
    np.testing.assert_allclose(
        ak.to_numpy(ak.flatten(events.Jet.pt)), ak.to_numpy(ak.flatten(events.GenJet.pt))
    )


@pytest.mark.slow
def test_gen_jets_are_sorted_and_above_threshold(events):
    pt = events.GenJet.pt
    assert ak.all(pt > 10.0)
    assert ak.all(pt[:, :-1] >= pt[:, 1:])


@pytest.mark.parametrize(
    ("changes", "argument"),
    [
        ({"n_events": 0}, "n_events"),
        ({"events_per_job": -5}, "events_per_job"),
        ({"n_workers": 0}, "n_workers"),
        ({"seed": -1}, "seed"),
        ({"detector_seed": 2**32}, "detector_seed"),
        ({"pthat_min": 0.0}, "pthat_min"),
        ({"detector": "nope"}, "detector"),
        ({"mu": -1.0}, "mu"),
        ({"detector": "cms-card", "mu": 10.0}, "pileup"),
        ({"resimulations": -1}, "resimulations"),
    ],
)
def test_bad_arguments_name_the_argument(changes, argument):
    with pytest.raises(ValueError, match=argument):
        dataclasses.replace(CONFIG, **changes)


def test_missing_output_directory(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        generate_sample(tmp_path / "absent" / "out.root", CONFIG)


def test_writer_leaves_no_partial_file(tmp_path):
    path = tmp_path / "partial.root"
    with pytest.raises(RuntimeError, match="interrupted"), NanoAODWriter(path):
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []
