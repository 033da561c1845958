"""The model file: a serialized surrogate with its metadata inside the same file.

The serialization is a registry entry keyed by the metadata's "format": "torchscript" (what
``coffea.ml_tools.torch_wrapper`` loads; the Gaussian model's default), "state_dict" (the
weights alone, the module rebuilt from the metadata by this package's classes; the flow
model's default, read in a fraction of a second) and "torch_export" (``torch.export`` with a
dynamic batch dimension: runs without this package's classes, but reading the graph of a
spline autoregressive flow, about 4,300 nodes, takes about 20 s). All are zip archives with
the metadata as an extra entry: the loader reads the metadata first and dispatches on its
"format", so a user loads any model family the same way. Another format is one more
``_Format`` with a writer and a reader; the metadata, checksum and checks stay the same.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import io
import json
import os
import uuid
import warnings
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from coffea_fastsim import __version__
from coffea_fastsim.analysis.definition import Response
from coffea_fastsim.surrogate.coordinates import TargetCoordinates
from coffea_fastsim.surrogate.flow import FlowConfig, FlowSurrogate
from coffea_fastsim.surrogate.gaussian import GaussianSurrogate, StandardizedSurrogate
from coffea_fastsim.surrogate.scaling import Standardization

__all__ = [
    "FORMAT_VERSION",
    "METADATA_FILE",
    "MODEL_FAMILIES",
    "PROVENANCE_KEYS",
    "LoadedModel",
    "ModelFormatError",
    "load_model",
    "rebuild_surrogate",
    "sample_hash",
    "save_model",
]

#: Version of the metadata layout; files with a newer version are refused.
FORMAT_VERSION = 1
#: Name of the JSON metadata entry inside the model file.
METADATA_FILE = "coffea_fastsim.json"
#: Metadata keys the caller of ``save_model`` provides (``TrainingResult.metadata()``).
PROVENANCE_KEYS = ("sample_hash", "training_config", "best_epoch")
#: Model family name of each surrogate class and the formats that can hold it (first: default).
MODEL_FAMILIES: dict[type[StandardizedSurrogate], tuple[str, tuple[str, ...]]] = {
    GaussianSurrogate: ("gaussian", ("torchscript", "torch_export", "state_dict")),
    FlowSurrogate: ("flow", ("state_dict", "torch_export")),
}
#: The standardization's buffers (the fields of ``Standardization``), metadata "standardization".
_STANDARDIZATION_BUFFERS = tuple(field.name for field in dataclasses.fields(Standardization))


class ModelFormatError(ValueError):
    """A model file is missing, unreadable, tampered with, or does not fit the analysis."""


@dataclass(frozen=True)
class LoadedModel:
    """A model read from a file.

    Arguments:
        module: the serialized surrogate, ready for inference: ``module(x_gen, eps)`` for
            every family; the "gaussian" family in "torchscript" format also has
            ``module.mean_and_width(x_gen)`` as in ``GaussianSurrogate``.
        metadata: the metadata stored in the file (see docs/model.md).
    """

    module: nn.Module
    metadata: Mapping[str, Any]


@contextmanager
def _quiet_torch_jit() -> Iterator[None]:
    """Hide the deprecation warnings of torch.jit (torch >= 2.10) from users."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*(torch.jit|TorchScript).*", DeprecationWarning)
        yield


def _write_torchscript(model: nn.Module, path: Path, metadata_json: str) -> None:
    with _quiet_torch_jit():
        scripted = torch.jit.script(model)
        torch.jit.save(scripted, str(path), _extra_files={METADATA_FILE: metadata_json})


def _read_torchscript(
    path: Path, map_location: str | torch.device, metadata: Mapping[str, Any]
) -> nn.Module:
    with _quiet_torch_jit():
        return torch.jit.load(str(path), map_location=map_location).eval()


def _write_torch_export(model: nn.Module, path: Path, metadata_json: str) -> None:
    # Example rows only fix dtypes and the feature dimension; the batch dimension is dynamic.
    n_features = int(model.gen_mean.shape[0])
    example = (torch.zeros(2, n_features), torch.zeros(2, n_features))
    batch = torch.export.Dim("batch", min=1)
    program = torch.export.export(model, example, dynamic_shapes=({0: batch}, {0: batch}))
    # A file object: torch.export expects a path to end in ".pt2", ours end in ".pt".
    with path.open("wb") as file:
        torch.export.save(program, file, extra_files={METADATA_FILE: metadata_json})


def _read_torch_export(
    path: Path, map_location: str | torch.device, metadata: Mapping[str, Any]
) -> nn.Module:
    # The exported graph has no training-mode behaviour (and refuses .eval()).
    with path.open("rb") as file:
        program = torch.export.load(file)
    return program.module().to(map_location)


#: Entry of the weights in a "state_dict" archive (``torch.save`` of the state dict).
_STATE_ENTRY = "model/state_dict.pt"


def _write_state_dict(model: nn.Module, path: Path, metadata_json: str) -> None:
    weights = io.BytesIO()
    torch.save(model.state_dict(), weights)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(_STATE_ENTRY, weights.getvalue())
        archive.writestr(f"model/extra/{METADATA_FILE}", metadata_json)


def _read_state_dict(
    path: Path, map_location: str | torch.device, metadata: Mapping[str, Any]
) -> nn.Module:
    with zipfile.ZipFile(path) as archive:
        weights = archive.read(_STATE_ENTRY)
    state = torch.load(io.BytesIO(weights), map_location="cpu", weights_only=True)
    module = rebuild_surrogate(metadata)
    module.load_state_dict(state)
    return module.to(map_location).eval()


def rebuild_surrogate(metadata: Mapping[str, Any]) -> StandardizedSurrogate:
    """An untrained surrogate of the family, architecture, target and feature count that
    ``metadata`` (a model file's, with its "architecture") describes, to load its weights
    into.

    Raises:
        KeyError, TypeError, ValueError: the metadata does not describe a surrogate.
    """
    names = metadata["input_features"]
    architecture = metadata["architecture"]
    responses = tuple(
        Response(**{k: tuple(v) if isinstance(v, list) else v for k, v in response.items()})
        for response in architecture["responses"]
    )
    standardization = Standardization(
        **{
            name: torch.tensor(metadata["standardization"][name], dtype=torch.float32)
            for name in _STANDARDIZATION_BUFFERS
        }
    )
    coordinates = TargetCoordinates(names, responses, architecture.get("eta_steps", ()))
    if metadata["model_family"] == "flow":
        config = FlowConfig(**architecture["flow"])
        return FlowSurrogate(standardization, coordinates, config=config)
    return GaussianSurrogate(standardization, coordinates)


@dataclass(frozen=True)
class _Format:
    write: Callable[[nn.Module, Path, str], None]
    read: Callable[[Path, str | torch.device, Mapping[str, Any]], nn.Module]


_FORMATS: dict[str, _Format] = {
    "torchscript": _Format(write=_write_torchscript, read=_read_torchscript),
    "torch_export": _Format(write=_write_torch_export, read=_read_torch_export),
    "state_dict": _Format(write=_write_state_dict, read=_read_state_dict),
}


def _read_metadata_text(path: Path) -> str:
    """The metadata entry of a model archive (every format stores it as ``*/extra/<name>``)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n.split("/")[1:] == ["extra", METADATA_FILE]]
            if not names:
                raise ModelFormatError(f"{path}: the archive has no {METADATA_FILE} metadata")
            return archive.read(names[0]).decode()
    except (zipfile.BadZipFile, EOFError, OSError, UnicodeDecodeError) as err:
        raise ModelFormatError(f"{path}: not a coffea-fastsim model file ({err})") from err


def _family_of(model: nn.Module) -> tuple[str, tuple[str, ...]]:
    """(family name, formats that hold it) of a surrogate instance."""
    for cls, family in MODEL_FAMILIES.items():
        if type(model) is cls:
            return family
    known = ", ".join(cls.__name__ for cls in MODEL_FAMILIES)
    raise TypeError(f"model must be one of {known}, got {type(model).__name__}")


def sample_hash(gen_features: np.ndarray, reco_features: np.ndarray) -> str:
    """SHA-256 of a training sample, as "sha256:<hex>".

    The arrays are hashed as C-ordered little-endian float64, with their shapes, so the
    hash identifies the values, not the memory layout or the input dtype.

    Arguments:
        gen_features: GEN features, shape (n_events, 9).
        reco_features: RECO features, shape (n_events, 9).
    """
    digest = hashlib.sha256()
    for array in (gen_features, reco_features):
        values = np.ascontiguousarray(array, dtype="<f8")
        digest.update(repr(values.shape).encode())
        digest.update(values.data)
    return f"sha256:{digest.hexdigest()}"


def _checksum(module: nn.Module, metadata: Mapping[str, Any]) -> str:
    """SHA-256 over the parameters and buffers (by name) and the rest of the metadata."""
    digest = hashlib.sha256()
    body = {key: value for key, value in metadata.items() if key != "checksum"}
    digest.update(json.dumps(body, sort_keys=True, separators=(",", ":")).encode())
    for name, tensor in sorted(module.state_dict().items()):
        values = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{values.dtype}:{tuple(values.shape)}".encode())
        digest.update(values.numpy().tobytes())
    return f"sha256:{digest.hexdigest()}"


def save_model(
    model: StandardizedSurrogate,
    path: str | os.PathLike[str],
    metadata: Mapping[str, Any],
    file_format: str | None = None,
    *,
    feature_names: Sequence[str],
) -> Path:
    """Write a trained surrogate and its metadata to one file, atomically.

    The file appears complete or not at all: it is written to a temporary file in the same
    directory and renamed.

    Arguments:
        model: the trained surrogate, a class of ``MODEL_FAMILIES``.
        path: destination file.
        metadata: JSON-serializable provenance with at least ``PROVENANCE_KEYS``
            (``TrainingResult.metadata()`` gives them); other keys are kept as they are,
            e.g. "analysis": the name and hash of the analysis definition.
        file_format: key of the serialization registry that the model's family allows;
            None: the family's default ("torchscript" for "gaussian", "state_dict" for
            "flow").
        feature_names: names of the model's input and output features, in order (the
            analysis's feature vector).

    Returns:
        The path written.
    """
    family, formats = _family_of(model)
    file_format = formats[0] if file_format is None else file_format
    if file_format not in formats:
        raise ValueError(
            f"file_format must be one of {list(formats)} for the {family!r} family, "
            f"got {file_format!r}"
        )
    missing = [key for key in PROVENANCE_KEYS if key not in metadata]
    if missing:
        raise ValueError(f"metadata lacks the keys {missing}")
    if model.n_features != len(feature_names):
        raise ValueError(
            f"model has {model.n_features} features, feature_names has {len(feature_names)}: "
            f"{list(feature_names)}"
        )
    model = copy.deepcopy(model).cpu().eval()
    full_metadata: dict[str, Any] = {
        **metadata,
        "format": file_format,
        "format_version": FORMAT_VERSION,
        "model_family": family,
        "input_features": list(feature_names),
        "output_features": list(feature_names),
        "standardization": {
            name: getattr(model, name).tolist() for name in _STANDARDIZATION_BUFFERS
        },
        "architecture": _architecture(model),
        "package_version": __version__,
        "torch_version": torch.__version__,
    }
    # The checksum is computed on what a reader will see: the metadata after a JSON round trip.
    full_metadata = json.loads(json.dumps(full_metadata, allow_nan=False))
    full_metadata["checksum"] = _checksum(model, full_metadata)
    metadata_json = json.dumps(full_metadata, indent=1, sort_keys=True)

    path = Path(path)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        _FORMATS[file_format].write(model, temporary, metadata_json)
        temporary.replace(path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def _architecture(model: StandardizedSurrogate) -> dict[str, Any]:
    """What ``rebuild_surrogate`` needs besides the standardization: the target's responses
    and, for a flow, its ``FlowConfig``."""
    return {
        "responses": [dataclasses.asdict(r) for r in model.coordinates.responses],
        "eta_steps": list(model.coordinates.eta_step_values),
        "flow": dataclasses.asdict(model.config) if isinstance(model, FlowSurrogate) else None,
    }


def _feature_mismatch(found: Sequence[str], expected: Sequence[str]) -> str:
    """Describe how two feature lists differ, or "" when they are equal."""
    if list(found) == list(expected):
        return ""
    parts = [
        f"position {i}: {f!r} instead of {e!r}"
        for i, (f, e) in enumerate(zip(found, expected, strict=False))
        if f != e
    ]
    if len(found) != len(expected):
        parts.append(f"{len(found)} features instead of {len(expected)}")
    return "; ".join(parts)


def load_model(
    path: str | os.PathLike[str],
    expected_features: Sequence[str] | None = None,
    map_location: str | torch.device = "cpu",
) -> LoadedModel:
    """Read a model file written by ``save_model`` and check it, whatever its family.

    The metadata is read first; its "format" names the reader of the module.

    Arguments:
        path: the model file.
        expected_features: feature names, in order, that the caller feeds and expects back;
            None: whatever the model maps (the output features must equal the input ones).
        map_location: device for the weights ("cpu", "cuda", torch.device).

    Raises:
        ModelFormatError: (naming the file) missing file, not a model archive, no or invalid
            metadata, unsupported format version, model family or format, checksum mismatch
            (weights or metadata modified), input/output features that differ from
            ``expected_features``, or a network that fails on (or returns another shape
            than) the features its metadata lists (a probe evaluation).
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFormatError(f"{path}: no such model file")
    text = _read_metadata_text(path)
    try:
        metadata = json.loads(text)
    except json.JSONDecodeError as err:
        raise ModelFormatError(f"{path}: {METADATA_FILE} is not valid JSON ({err})") from err
    if not isinstance(metadata, dict):
        raise ModelFormatError(f"{path}: {METADATA_FILE} is not a JSON object")

    version = metadata.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelFormatError(
            f"{path}: format_version {version!r} is not supported (at most {FORMAT_VERSION}); "
            "update coffea-fastsim"
        )
    formats_of_family = dict(MODEL_FAMILIES.values())
    family = metadata.get("model_family")
    if family not in formats_of_family:
        raise ModelFormatError(
            f"{path}: model_family {family!r}, expected one of {sorted(formats_of_family)}"
        )
    format_name = metadata.get("format")
    if format_name not in formats_of_family[family]:
        raise ModelFormatError(
            f"{path}: format {format_name!r} cannot hold the {family!r} family "
            f"(expected one of {list(formats_of_family[family])})"
        )
    try:
        module = _FORMATS[format_name].read(path, map_location, metadata)
    except (RuntimeError, ValueError, KeyError, TypeError, OSError, zipfile.BadZipFile) as err:
        raise ModelFormatError(
            f"{path}: not a readable {format_name!r} archive ({str(err).splitlines()[0]})"
        ) from err
    if metadata.get("checksum") != _checksum(module, metadata):
        raise ModelFormatError(
            f"{path}: checksum mismatch, the weights or the metadata were modified"
        )
    if expected_features is None:
        expected_features = metadata.get("input_features", [])
    for key in ("input_features", "output_features"):
        mismatch = _feature_mismatch(metadata.get(key, []), expected_features)
        if mismatch:
            raise ModelFormatError(f"{path}: {key} differ from the expected ones: {mismatch}")
    _probe(module, metadata, path, map_location)
    return LoadedModel(module=module, metadata=metadata)


def _probe(
    module: nn.Module, metadata: Mapping[str, Any], path: Path, device: str | torch.device
) -> None:
    """Evaluate the network once on its metadata's feature count, at the GEN mean.

    Raises:
        ModelFormatError: the network fails on, or returns another shape than, what its
            metadata describes.
    """
    n_in, n_out = len(metadata["input_features"]), len(metadata["output_features"])
    mean = metadata.get("standardization", {}).get("gen_mean", [0.0] * n_in)
    x_gen = torch.tensor([mean, mean], dtype=torch.float32, device=device)
    eps = torch.zeros((2, n_out), dtype=torch.float32, device=device)
    try:
        with torch.inference_mode():
            output = module(x_gen, eps)
    except Exception as err:
        raise ModelFormatError(
            f"{path}: the network fails on the {n_in} input features its metadata lists "
            f"({str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__})"
        ) from err
    shape = tuple(getattr(output, "shape", ()))
    if shape != (2, n_out) or getattr(output, "dtype", None) != torch.float32:
        raise ModelFormatError(
            f"{path}: the network returns {shape} {getattr(output, 'dtype', type(output))} "
            f"for 2 events, its metadata says (2, {n_out}) float32"
        )
