"""The run use case: processor choice, options, report."""

from __future__ import annotations

import pytest

from coffea_fastsim.cli import main
from coffea_fastsim.processing.processor import FastSimProcessor
from coffea_fastsim.processing.run import load_processor_class
from processors.wjets import WJetsProcessor


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("coffea_fastsim.processing.processor:FastSimProcessor", FastSimProcessor),
        ("processors.wjets:WJetsProcessor", WJetsProcessor),
    ],
)
def test_processor_spec_names_the_class(spec, expected):
    assert load_processor_class(spec) is expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("processors.wjets", "expected 'module:Class'"),
        ("no_such_module:Thing", "cannot import no_such_module"),
        ("processors.wjets:Missing", "no FastSimProcessor subclass Missing"),
        ("processors.wjets:SignalRegion", "no FastSimProcessor subclass SignalRegion"),
    ],
)
def test_bad_processor_spec_is_named(spec, message):
    with pytest.raises(ValueError, match=message) as error:
        load_processor_class(spec)
    assert spec in str(error.value)


def test_cli_names_a_bad_processor(embedded_sample, embedded_model, tmp_path, capsys):
    argv = ["run", str(embedded_sample), "--model", str(embedded_model), "-o", str(tmp_path / "o")]
    assert main([*argv, "--processor", "processors.wjets:Nope"]) == 2
    assert "processors.wjets:Nope" in capsys.readouterr().err
