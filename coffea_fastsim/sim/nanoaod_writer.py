"""Write events as a NanoAOD-like ``Events`` TTree that coffea's NanoAODSchema reads.

Layout (one entry per event; collections as a counter ``nX`` plus jagged ``X_field``
branches; kinematics in GeV):

=============== ==========================================================================
GenPart         pt, eta, phi, mass (float32), pdgId, status, statusFlags,
                genPartIdxMother (int32)
GenJet          pt, eta, phi, mass (float32)
GenMET          pt, phi (float32, one per event)
Muon            pt, eta, phi, mass (float32), charge, genPartIdx (int32; -> GenPart)
Jet             pt, eta, phi, mass (float32), genJetIdx (int32; -> GenJet)
MET             pt, phi, sumEt (float32, one per event)
Pileup          nPU (int32, one per event; optional)
Rho             fixedGridRhoFastjetCentral (float32, GeV, one per event; optional)
run             uint32
luminosityBlock uint32
event           uint64
genWeight       float32
=============== ==========================================================================

Muon, Jet and MET are absent from GEN-only files. Optional: ``Jet_area`` (float32), and the
Pileup and Rho branches, written when the detector model provides them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import awkward as ak
import numpy as np
import uproot

__all__ = [
    "GEN_BRANCHES",
    "OPTIONAL_RECO_BRANCHES",
    "OPTIONAL_RECO_FIELDS",
    "RECO_BRANCHES",
    "NanoAODWriter",
    "nanoaod_columns",
]

_F4, _I4 = np.dtype(np.float32), np.dtype(np.int32)
_P4 = {"pt": _F4, "eta": _F4, "phi": _F4, "mass": _F4}

#: Branch dtypes of the GEN content: collection -> {field: dtype}, or a flat dtype.
GEN_BRANCHES: dict[str, dict[str, np.dtype] | np.dtype] = {
    "GenPart": _P4 | {"pdgId": _I4, "status": _I4, "statusFlags": _I4, "genPartIdxMother": _I4},
    "GenJet": _P4,
    "GenMET": {"pt": _F4, "phi": _F4},
    "run": np.dtype(np.uint32),
    "luminosityBlock": np.dtype(np.uint32),
    "event": np.dtype(np.uint64),
    "genWeight": _F4,
}
#: Branch dtypes of the RECO content written by a detector model.
RECO_BRANCHES: dict[str, dict[str, np.dtype] | np.dtype] = {
    "Muon": _P4 | {"charge": _I4, "genPartIdx": _I4},
    "Jet": _P4 | {"genJetIdx": _I4},
    "MET": {"pt": _F4, "phi": _F4, "sumEt": _F4},
}
#: RECO collections a detector model may add (pileup interactions, median pileup density).
OPTIONAL_RECO_BRANCHES: dict[str, dict[str, np.dtype] | np.dtype] = {
    "Pileup": {"nPU": _I4},
    "Rho": {"fixedGridRhoFastjetCentral": _F4},
}
#: Fields a detector model may add to the RECO collections.
OPTIONAL_RECO_FIELDS: dict[str, dict[str, np.dtype]] = {"Jet": {"area": _F4}}


def nanoaod_columns(columns: Mapping[str, Any]) -> dict[str, Any]:
    """Cast `columns` (collection name -> per-event awkward records or flat array) to the
    NanoAOD dtypes; all of GEN_BRANCHES is required, RECO_BRANCHES all or none, and the
    OPTIONAL_RECO_BRANCHES and OPTIONAL_RECO_FIELDS present are written too."""
    reco = [name for name in RECO_BRANCHES if name in columns]
    if reco and len(reco) != len(RECO_BRANCHES):
        raise ValueError(f"columns have RECO collections {reco}, need all of {list(RECO_BRANCHES)}")
    expected = GEN_BRANCHES | (RECO_BRANCHES if reco else {})
    expected |= {name: spec for name, spec in OPTIONAL_RECO_BRANCHES.items() if name in columns}
    unknown = set(columns) - set(expected)
    missing = set(expected) - set(columns)
    if unknown or missing:
        raise ValueError(f"columns: missing {sorted(missing)}, unknown {sorted(unknown)}")
    out: dict[str, Any] = {}
    for name, spec in expected.items():
        array = columns[name]
        if isinstance(spec, np.dtype):
            out[name] = np.asarray(ak.to_numpy(array), dtype=spec)
            continue
        absent = set(spec) - set(ak.fields(array))
        if absent:
            raise ValueError(f"collection {name!r} lacks fields {sorted(absent)}")
        extra = OPTIONAL_RECO_FIELDS.get(name, {})
        spec = spec | {f: dtype for f, dtype in extra.items() if f in ak.fields(array)}
        out[name] = ak.zip({f: ak.values_astype(array[f], dtype) for f, dtype in spec.items()})
    return out


class NanoAODWriter:
    """Context manager appending events to the ``Events`` tree of a new ROOT file.

    The file is written under a temporary name in the same directory and moved to `path`
    only when the block exits without an exception, so `path` never holds a partial file.

    Arguments:
        path: the ROOT file to create (replaced if it exists).
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        self._file: Any = None
        self._tree: Any = None
        self._names: set[str] = set()

    def __enter__(self) -> NanoAODWriter:
        self._file = uproot.recreate(self._temporary)
        return self

    def extend(self, columns: Mapping[str, Any]) -> None:
        """Append events: `columns` as accepted by `nanoaod_columns`, every branch written
        by the first call present in later ones."""
        branches = nanoaod_columns(columns)
        if self._tree is None:
            types = {
                name: value.dtype if isinstance(value, np.ndarray) else value.type
                for name, value in branches.items()
            }
            self._tree = self._file.mktree("Events", types)
            self._names = set(branches)
        elif set(branches) != self._names:
            raise ValueError(
                f"{self.path}: events with collections {sorted(branches)} cannot be appended to "
                f"a tree with {sorted(self._names)}"
            )
        self._tree.extend(branches)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._file.close()
        if exc_type is None and self._tree is not None:
            self._temporary.replace(self.path)
            return
        self._temporary.unlink()
        if exc_type is None:
            raise ValueError(f"{self.path}: no events were written")
