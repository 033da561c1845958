"""Rewrite a NanoAOD-like Events tree with uproot: slice it, change or drop collections."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import awkward as ak
import numpy as np
import uproot

Content = dict[str, object]


def copy_sample(
    source: Path,
    target: Path,
    transform: Callable[[Content], Content] | None = None,
    drop: tuple[str, ...] = (),
) -> Path:
    """Write the Events tree of ``source`` to ``target``: collections (``GenPart_pt`` with
    its counter ``nGenPart``) are zipped back into records, ``transform`` may change the
    content (name -> array), and collections or branches named in ``drop`` are left out."""
    with uproot.open(source) as file:
        arrays = file["Events"].arrays(library="ak")
    prefixes = {name.partition("_")[0] for name in arrays.fields}
    collections: dict[str, dict[str, ak.Array]] = {}
    flat: dict[str, ak.Array] = {}
    for name in arrays.fields:
        prefix, _, field = name.partition("_")
        if field and f"n{prefix}" in arrays.fields:
            collections.setdefault(prefix, {})[field] = arrays[name]
        elif not (name.startswith("n") and name[1:] in prefixes):
            flat[name] = arrays[name]
    content: Content = {name: ak.zip(fields) for name, fields in collections.items()}
    content.update({name: ak.to_numpy(values) for name, values in flat.items()})
    if transform is not None:
        content = transform(content)
    content = {
        name: value
        for name, value in content.items()
        if name not in drop and name.partition("_")[0] not in drop
    }
    types = {
        name: value.dtype if isinstance(value, np.ndarray) else value.type
        for name, value in content.items()
    }
    with uproot.recreate(target) as file:
        file.mktree("Events", types).extend(content)
    return target


def first_events(n: int) -> Callable[[Content], Content]:
    """A ``transform`` that keeps the first ``n`` events."""
    return lambda content: {name: value[:n] for name, value in content.items()}
