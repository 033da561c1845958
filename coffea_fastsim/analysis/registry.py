"""The built-in analyses, a user's analysis loaded from ``path/to/file.py:NAME``, and the check
that a model file was trained for the analysis it is run under."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cloudpickle

from coffea_fastsim.analysis.definition import AnalysisDefinition, DefinitionError

__all__ = [
    "ANALYSES",
    "DEFAULT_ANALYSIS",
    "UNRECORDED_ANALYSIS",
    "AnalysisMismatchError",
    "builtin_analyses",
    "check_model_analysis",
    "resolve_analysis",
]

#: Built-in analyses: name -> "module:ATTRIBUTE" (imported on first use).
ANALYSES: dict[str, str] = {
    "wjets": "coffea_fastsim.analysis.wjets:WJETS",
    "zmumu": "coffea_fastsim.analysis.zmumu:ZMUMU",
}
#: The analysis used when none is named.
DEFAULT_ANALYSIS = "wjets"
#: Model files written before models recorded their analysis were all trained for this one.
UNRECORDED_ANALYSIS = "wjets"


class AnalysisMismatchError(ValueError):
    """A model file was trained for another analysis than the one it is run under."""


def builtin_analyses() -> dict[str, AnalysisDefinition]:
    """Every built-in analysis, by name."""
    return {name: resolve_analysis(name) for name in ANALYSES}


def resolve_analysis(analysis: str | os.PathLike[str] | AnalysisDefinition) -> AnalysisDefinition:
    """The definition named by `analysis`.

    Arguments:
        analysis: a definition (returned as it is), a built-in name (a key of ANALYSES), or
            ``path/to/file.py:NAME``, the module-level definition NAME of a Python file.

    Raises:
        DefinitionError: unknown name, missing file, or NAME absent or not a definition.
    """
    if isinstance(analysis, AnalysisDefinition):
        return analysis
    spec = str(analysis)
    if spec in ANALYSES:
        module_name, attribute = ANALYSES[spec].split(":")
        return _definition(importlib.import_module(module_name), attribute, spec)
    path_text, separator, attribute = spec.rpartition(":")
    if not separator or not path_text.endswith(".py"):
        raise DefinitionError(
            f"analysis {spec!r} is neither a built-in ({', '.join(sorted(ANALYSES))}) "
            "nor path/to/file.py:NAME"
        )
    return _definition(_import_file(Path(path_text)), attribute, spec)


def _import_file(path: Path) -> Any:
    """Import a Python file as a module (cached by its resolved path).

    The module is pickled by value, so that worker processes (futures, dask) that never
    imported the file receive its functions with the processor.
    """
    if not path.is_file():
        raise DefinitionError(f"analysis file not found: {path}")
    resolved = path.resolve()
    digest = hashlib.sha256(str(resolved).encode()).hexdigest()[:16]
    module_name = f"coffea_fastsim_user_analysis_{digest}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, resolved)
    if spec is None or spec.loader is None:
        raise DefinitionError(f"{path} cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    # Registered before executing, so that dataclasses and pickling find the module.
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    cloudpickle.register_pickle_by_value(module)
    return module


def _definition(module: Any, attribute: str, spec: str) -> AnalysisDefinition:
    definition = getattr(module, attribute, None)
    if not isinstance(definition, AnalysisDefinition):
        found = sorted(
            name for name, value in vars(module).items() if isinstance(value, AnalysisDefinition)
        )
        raise DefinitionError(
            f"analysis {spec!r}: {module.__name__} has no AnalysisDefinition called "
            f"{attribute!r} (definitions there: {found or 'none'})"
        )
    return definition


def check_model_analysis(
    metadata: Mapping[str, Any], analysis: AnalysisDefinition, model_path: str | os.PathLike
) -> None:
    """Raise unless the model in `model_path` (its `metadata`) was trained for `analysis`.

    A model records the name and hash of its analysis; a model without the record was
    trained before analyses were definitions and counts as UNRECORDED_ANALYSIS (name only).

    Raises:
        AnalysisMismatchError: other name, other hash, or features that differ from the
            definition's (the message names both analyses).
    """
    record = metadata.get("analysis") or {"name": UNRECORDED_ANALYSIS, "hash": None}
    name, digest = record.get("name"), record.get("hash")
    if name != analysis.name or (digest is not None and digest != analysis.hash):
        raise AnalysisMismatchError(
            f"{model_path} was trained for the analysis {name!r} (hash {str(digest)[:12]}), "
            f"not for {analysis.name!r} (hash {analysis.hash[:12]}): use --analysis {name} or "
            f"a model trained for {analysis.name!r}"
        )
    features = list(metadata.get("input_features", []))
    if features != list(analysis.feature_names):
        raise AnalysisMismatchError(
            f"analysis {analysis.name!r}, field features: {len(analysis.features)} features "
            f"{list(analysis.feature_names)}, but {model_path} maps {len(features)}: {features}"
        )
