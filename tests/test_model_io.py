"""The model file: round trip, metadata, and refusal of wrong, damaged or foreign files."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import coffea_fastsim
from coffea_fastsim.analysis.wjets import WJETS
from coffea_fastsim.surrogate.gaussian import GaussianSurrogate
from coffea_fastsim.surrogate.model_file import (
    FORMAT_VERSION,
    METADATA_FILE,
    ModelFormatError,
    load_model,
    sample_hash,
    save_model,
)
from coffea_fastsim.surrogate.scaling import Standardization

FEATURE_NAMES = WJETS.feature_names

PROVENANCE = {"sample_hash": "sha256:0", "training_config": {"seed": 0}, "best_epoch": 3}


@pytest.fixture
def model() -> GaussianSurrogate:
    torch.manual_seed(2)
    return GaussianSurrogate(
        Standardization(
            gen_mean=torch.linspace(-5.0, 5.0, 9),
            gen_std=torch.linspace(1.0, 50.0, 9),
            reco_mean=torch.linspace(5.0, -5.0, 9),
            reco_std=torch.linspace(2.0, 60.0, 9),
        )
    ).eval()


@pytest.fixture
def model_file(model: GaussianSurrogate, tmp_path: Path) -> Path:
    return save_model(model, tmp_path / "surrogate.pt", PROVENANCE, feature_names=FEATURE_NAMES)


def _resave(path: Path, target: Path, edit_module=None, edit_metadata=None) -> Path:
    """Rewrite a model file bypassing save_model, as a tampering tool would."""
    extra = {METADATA_FILE: ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        module = torch.jit.load(str(path), _extra_files=extra)
        metadata = json.loads(extra[METADATA_FILE])
        if edit_module:
            edit_module(module)
        if edit_metadata:
            edit_metadata(metadata)
        torch.jit.save(module, str(target), _extra_files={METADATA_FILE: json.dumps(metadata)})
    return target


def test_round_trip_gives_identical_outputs(model: GaussianSurrogate, model_file: Path) -> None:
    loaded = load_model(model_file)
    x_gen, eps = torch.randn(300, 9) * 40.0, torch.randn(300, 9)
    with torch.no_grad():
        assert torch.equal(loaded.module(x_gen, eps), model(x_gen, eps))
        for got, expected in zip(
            loaded.module.mean_and_width(x_gen), model.mean_and_width(x_gen), strict=True
        ):
            assert torch.equal(got, expected)


def test_metadata_is_stored(model: GaussianSurrogate, model_file: Path) -> None:
    metadata = load_model(model_file).metadata
    assert metadata["format"] == "torchscript"
    assert metadata["format_version"] == FORMAT_VERSION
    assert metadata["model_family"] == "gaussian"
    assert metadata["input_features"] == list(FEATURE_NAMES)
    assert metadata["output_features"] == list(FEATURE_NAMES)
    assert metadata["package_version"] == coffea_fastsim.__version__
    assert metadata["torch_version"] == torch.__version__
    assert metadata["checksum"].startswith("sha256:")
    for key, value in PROVENANCE.items():
        assert metadata[key] == value
    for name in ("gen_mean", "gen_std", "reco_mean", "reco_std"):
        assert metadata["standardization"][name] == getattr(model, name).tolist()


def test_save_and_load_do_not_warn(model: GaussianSurrogate, tmp_path: Path) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_model(save_model(model, tmp_path / "m.pt", PROVENANCE, feature_names=FEATURE_NAMES))
    assert [str(w.message) for w in caught] == []


def test_save_is_atomic_and_overwrites(model: GaussianSurrogate, model_file: Path) -> None:
    save_model(model, model_file, {**PROVENANCE, "best_epoch": 7}, feature_names=FEATURE_NAMES)
    assert load_model(model_file).metadata["best_epoch"] == 7
    assert sorted(p.name for p in model_file.parent.iterdir()) == ["surrogate.pt"]


def test_failed_save_leaves_nothing(model: GaussianSurrogate, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="Out of range float"):
        save_model(
            model,
            tmp_path / "m.pt",
            {**PROVENANCE, "loss": float("nan")},
            feature_names=FEATURE_NAMES,
        )
    assert list(tmp_path.iterdir()) == []


def test_save_requires_provenance(model: GaussianSurrogate, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"lacks the keys \['best_epoch'\]"):
        save_model(
            model,
            tmp_path / "m.pt",
            {"sample_hash": "x", "training_config": {}},
            feature_names=FEATURE_NAMES,
        )
    with pytest.raises(ValueError, match="file_format must be one of"):
        save_model(model, tmp_path / "m.pt", PROVENANCE, "onnx", feature_names=FEATURE_NAMES)


def test_wrong_feature_order_names_the_mismatch(model_file: Path) -> None:
    swapped = list(FEATURE_NAMES)
    swapped[0], swapped[1] = swapped[1], swapped[0]
    with pytest.raises(ModelFormatError, match=r"surrogate\.pt") as info:
        load_model(model_file, expected_features=swapped)
    assert "position 0: 'muon_px' instead of 'muon_py'" in str(info.value)
    assert "position 1: 'muon_py' instead of 'muon_px'" in str(info.value)


def test_wrong_feature_count_is_refused(model_file: Path) -> None:
    with pytest.raises(ModelFormatError, match="9 features instead of 10"):
        load_model(model_file, expected_features=[*FEATURE_NAMES, "extra"])


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelFormatError, match=r"absent\.pt: no such model file"):
        load_model(tmp_path / "absent.pt")


@pytest.mark.parametrize("content", [b"", b"not a model", b"PK\x03\x04garbage"])
def test_foreign_file_is_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "foreign.pt"
    path.write_bytes(content)
    with pytest.raises(ModelFormatError, match=r"foreign\.pt: not a coffea-fastsim model file"):
        load_model(path)


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.99])
def test_truncated_file_is_refused(model_file: Path, fraction: float) -> None:
    data = model_file.read_bytes()
    model_file.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(ModelFormatError, match=r"surrogate\.pt"):
        load_model(model_file)


def test_modified_weights_are_detected(model_file: Path, tmp_path: Path) -> None:
    def nudge(module: torch.nn.Module) -> None:
        with torch.no_grad():
            dict(module.named_parameters())["mean_net.0.weight"][0, 0] += 1e-3

    tampered = _resave(model_file, tmp_path / "tampered.pt", edit_module=nudge)
    with pytest.raises(ModelFormatError, match=r"tampered\.pt: checksum mismatch"):
        load_model(tampered)


def test_modified_metadata_is_detected(model_file: Path, tmp_path: Path) -> None:
    def relabel(metadata: dict) -> None:
        metadata["best_epoch"] = 99

    tampered = _resave(model_file, tmp_path / "tampered.pt", edit_metadata=relabel)
    with pytest.raises(ModelFormatError, match="checksum mismatch"):
        load_model(tampered)


def test_unchanged_resave_is_accepted(model_file: Path, tmp_path: Path) -> None:
    """Guards the two tests above: the resave itself does not break the checksum."""
    load_model(_resave(model_file, tmp_path / "copy.pt"))


def test_newer_format_version_is_refused(model_file: Path, tmp_path: Path) -> None:
    def bump(metadata: dict) -> None:
        metadata["format_version"] = FORMAT_VERSION + 1

    with pytest.raises(ModelFormatError, match="format_version 2 is not supported"):
        load_model(_resave(model_file, tmp_path / "newer.pt", edit_metadata=bump))


def test_archive_without_metadata_is_refused(model: GaussianSurrogate, tmp_path: Path) -> None:
    path = tmp_path / "bare.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(model), str(path))
    with pytest.raises(ModelFormatError, match=r"bare\.pt: the archive has no coffea_fastsim"):
        load_model(path)


def test_sample_hash_identifies_values() -> None:
    rng = np.random.default_rng(0)
    gen, reco = rng.normal(size=(50, 9)), rng.normal(size=(50, 9))
    reference = sample_hash(gen, reco)
    assert reference.startswith("sha256:")
    assert sample_hash(np.asfortranarray(gen), reco.astype(np.float64)) == reference
    changed = gen.copy()
    changed[10, 3] = np.nextafter(changed[10, 3], np.inf)
    assert sample_hash(changed, reco) != reference
    assert sample_hash(reco, gen) != reference
    assert sample_hash(gen[:49], reco[:49]) != reference
