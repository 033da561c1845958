"""The model file: a serialized surrogate with its metadata inside the same file.

The serialization is a registry entry keyed by the metadata's "format" (only "torchscript"
today: what ``coffea.ml_tools.torch_wrapper`` loads). Another format (torch.export, ONNX) is
one more ``_Format`` with a writer and a reader; the metadata, checksum and checks here stay
the same.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import uuid
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from coffea_fastsim import __version__
from coffea_fastsim.model import GaussianSurrogate
from coffea_fastsim.observables import FEATURE_NAMES

__all__ = [
    "FORMAT_VERSION",
    "METADATA_FILE",
    "PROVENANCE_KEYS",
    "LoadedModel",
    "ModelFormatError",
    "load_model",
    "sample_hash",
    "save_model",
]

#: Version of the metadata layout; files with a newer version are refused.
FORMAT_VERSION = 1
#: Name of the JSON metadata entry inside the model file.
METADATA_FILE = "coffea_fastsim.json"
#: Metadata keys the caller of ``save_model`` provides (``TrainingResult.metadata()``).
PROVENANCE_KEYS = ("sample_hash", "training_config", "best_epoch")
_MODEL_FAMILY = "gaussian"
_STANDARDIZATION_BUFFERS = ("gen_mean", "gen_std", "reco_mean", "reco_std")


class ModelFormatError(ValueError):
    """A model file is missing, unreadable, tampered with, or does not fit the analysis."""


@dataclass(frozen=True)
class LoadedModel:
    """A model read from a file.

    Arguments:
        module: the serialized surrogate, in eval mode: ``module(x_gen, eps)`` and
            ``module.mean_and_width(x_gen)`` as in ``GaussianSurrogate``.
        metadata: the metadata stored in the file (see docs/model.md).
    """

    module: nn.Module
    metadata: Mapping[str, Any]


class _NotThisFormat(Exception):
    """A reader does not recognize the file."""


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


def _read_torchscript(path: Path, map_location: str | torch.device) -> tuple[nn.Module, str]:
    extra_files = {METADATA_FILE: ""}
    try:
        with _quiet_torch_jit():
            module = torch.jit.load(str(path), map_location=map_location, _extra_files=extra_files)
    except RuntimeError as err:
        raise _NotThisFormat(f"not a TorchScript archive ({str(err).splitlines()[0]})") from err
    text = extra_files[METADATA_FILE]
    return module, text.decode() if isinstance(text, bytes) else text


@dataclass(frozen=True)
class _Format:
    write: Callable[[nn.Module, Path, str], None]
    read: Callable[[Path, str | torch.device], tuple[nn.Module, str]]


_FORMATS: dict[str, _Format] = {
    "torchscript": _Format(write=_write_torchscript, read=_read_torchscript),
}


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
    model: GaussianSurrogate,
    path: str | os.PathLike[str],
    metadata: Mapping[str, Any],
    file_format: str = "torchscript",
) -> Path:
    """Write a trained surrogate and its metadata to one file, atomically.

    The file appears complete or not at all: it is written to a temporary file in the same
    directory and renamed.

    Arguments:
        model: the trained surrogate (9 features, order of ``FEATURE_NAMES``).
        path: destination file.
        metadata: JSON-serializable provenance with at least ``PROVENANCE_KEYS``
            (``TrainingResult.metadata()`` gives them); other keys are kept as they are.
        file_format: key of the serialization registry ("torchscript").

    Returns:
        The path written.
    """
    if file_format not in _FORMATS:
        raise ValueError(f"file_format must be one of {sorted(_FORMATS)}, got {file_format!r}")
    missing = [key for key in PROVENANCE_KEYS if key not in metadata]
    if missing:
        raise ValueError(f"metadata lacks the keys {missing}")
    n_features = int(model.gen_mean.shape[0])
    if n_features != len(FEATURE_NAMES):
        raise ValueError(f"model has {n_features} features, FEATURE_NAMES has {len(FEATURE_NAMES)}")
    model = copy.deepcopy(model).cpu().eval()
    full_metadata: dict[str, Any] = {
        **metadata,
        "format": file_format,
        "format_version": FORMAT_VERSION,
        "model_family": _MODEL_FAMILY,
        "input_features": list(FEATURE_NAMES),
        "output_features": list(FEATURE_NAMES),
        "standardization": {
            name: getattr(model, name).tolist() for name in _STANDARDIZATION_BUFFERS
        },
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


def _read_any_format(path: Path, map_location: str | torch.device) -> tuple[str, nn.Module, str]:
    """(format name, module, metadata text) from the first registered reader that succeeds."""
    reasons = []
    for name, file_format in _FORMATS.items():
        try:
            module, text = file_format.read(path, map_location)
        except _NotThisFormat as err:
            reasons.append(str(err))
        else:
            return name, module, text
    raise ModelFormatError(f"{path}: not a coffea-fastsim model file: {'; '.join(reasons)}")


def load_model(
    path: str | os.PathLike[str],
    expected_features: Sequence[str] = FEATURE_NAMES,
    map_location: str | torch.device = "cpu",
) -> LoadedModel:
    """Read a model file written by ``save_model`` and check it.

    Arguments:
        path: the model file.
        expected_features: feature names, in order, that the caller feeds and expects back.
        map_location: device for the weights ("cpu", "cuda", torch.device).

    Raises:
        ModelFormatError: (naming the file) missing file, not a model archive, no or invalid
            metadata, unsupported format version or model family, checksum mismatch
            (weights or metadata modified), or input/output features that differ from
            ``expected_features``.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFormatError(f"{path}: no such model file")
    format_name, module, text = _read_any_format(path, map_location)
    if not text:
        raise ModelFormatError(f"{path}: the archive has no {METADATA_FILE} metadata")
    try:
        metadata = json.loads(text)
    except json.JSONDecodeError as err:
        raise ModelFormatError(f"{path}: {METADATA_FILE} is not valid JSON ({err})") from err

    if metadata.get("format") != format_name:
        raise ModelFormatError(
            f"{path}: metadata format {metadata.get('format')!r} but file is {format_name!r}"
        )
    version = metadata.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelFormatError(
            f"{path}: format_version {version!r} is not supported (at most {FORMAT_VERSION}); "
            "update coffea-fastsim"
        )
    if metadata.get("model_family") != _MODEL_FAMILY:
        raise ModelFormatError(
            f"{path}: model_family {metadata.get('model_family')!r}, expected {_MODEL_FAMILY!r}"
        )
    if metadata.get("checksum") != _checksum(module, metadata):
        raise ModelFormatError(
            f"{path}: checksum mismatch, the weights or the metadata were modified"
        )
    for key in ("input_features", "output_features"):
        mismatch = _feature_mismatch(metadata.get(key, []), expected_features)
        if mismatch:
            raise ModelFormatError(f"{path}: {key} differ from the expected ones: {mismatch}")
    module.eval()
    return LoadedModel(module=module, metadata=metadata)
