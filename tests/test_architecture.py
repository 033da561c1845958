"""The package layout is the architecture: each layer imports only what it may.

Every ``import`` and ``from ... import`` statement of every module of ``coffea_fastsim`` is
read with :mod:`ast` (those inside functions too), resolved to the module it loads, and
checked against the layer rules of docs/architecture.md.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import NamedTuple

import pytest

REPOSITORY = Path(__file__).resolve().parents[1]
PACKAGE = "coffea_fastsim"
PACKAGE_DIR = REPOSITORY / PACKAGE
ARCHITECTURE_DOC = REPOSITORY / "docs" / "architecture.md"
MAX_MODULE_LINES = 450
MAX_CLI_LINES = 350
# Modules at the top of the package: the command line, the public facade, the embedded data.
TOP_LEVEL = {"cli", "processor", "embedded", "__init__"}


class Import(NamedTuple):
    """One imported module, the name taken from it (``from m import name``; None for
    ``import m``) and the statement's line number in the importing file."""

    line: int
    target: str
    name: str | None = None


def module_name(path: Path) -> str:
    """Dotted name of a module file of the package (``coffea_fastsim.sim.detector.jets``)."""
    parts = path.relative_to(REPOSITORY).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_modules() -> dict[str, Path]:
    """Every module of the package, by dotted name."""
    return {module_name(path): path for path in sorted(PACKAGE_DIR.rglob("*.py"))}


def subpackages() -> list[str]:
    """Every subpackage directory, relative to the package (``analysis``, ``sim/detector``)."""
    return sorted(
        path.parent.relative_to(PACKAGE_DIR).as_posix()
        for path in PACKAGE_DIR.rglob("__init__.py")
        if path.parent != PACKAGE_DIR
    )


def imports_of(source: str, module: str, is_package: bool, known: set[str]) -> list[Import]:
    """Modules loaded by ``source``: ``from a import b`` loads ``a.b`` when that is a module
    in ``known``, else ``a``; relative imports are resolved against ``module``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend(Import(node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = module.split(".")
                anchor = parts if is_package else parts[:-1]
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                target = candidate if candidate in known else base
                found.append(Import(node.lineno, target, alias.name))
    return found


def layer_of(module: str) -> str:
    """``analysis``, ``sim``, ``surrogate``, ``processing``, ``validation`` or a top-level
    module's own name (``cli``)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _within(target: str, *prefixes: str) -> bool:
    return any(target == p or target.startswith(p + ".") for p in prefixes)


def _generate_extra() -> set[str]:
    """Import names of the optional ``generate`` dependencies (Pythia8, FastJet)."""
    text = (REPOSITORY / "pyproject.toml").read_text()
    line = re.search(r"^generate = \[(.*)\]$", text, re.MULTILINE)
    assert line, "pyproject.toml has no 'generate' extra"
    return set(re.findall(r'"([A-Za-z0-9_]+)', line.group(1)))


ANALYSIS, SIM, SURROGATE = f"{PACKAGE}.analysis", f"{PACKAGE}.sim", f"{PACKAGE}.surrogate"
DEFINITION, TRAINING = f"{ANALYSIS}.definition", f"{SURROGATE}.training"
#: Layers that may import only the listed parts of the package, and the rule's wording.
ONLY = {
    "analysis": ((ANALYSIS,), "analysis imports nothing of the package"),
    "sim": ((SIM,), "sim imports only sim"),
    "surrogate": (
        (SURROGATE, DEFINITION),
        "surrogate imports only surrogate and the analysis definition (plain data)",
    ),
}
#: The plugin side (what an analysis runs) never needs the simulation or training.
PLUGIN = {"processing", "validation", "processor", "embedded"}


def violation(layer: str, target: str, generate_extra: set[str]) -> str | None:
    """Why ``layer`` may not import ``target``, or None when it may."""
    top = target.split(".")[0]
    if top in generate_extra and layer != "sim":
        return "the generate extra (Pythia8, FastJet) is for the simulation only"
    if layer == "analysis" and top in {"torch", "zuko"}:
        return "the analysis needs no torch"
    if top != PACKAGE or layer in {"cli", "__init__"}:
        return None
    if target == PACKAGE:
        return "import the module that defines it, not the package's lazy re-export"
    if layer in ONLY and not _within(target, *ONLY[layer][0]):
        return ONLY[layer][1]
    if layer in PLUGIN and _within(target, SIM):
        return f"{layer} never imports the simulation"
    if layer in PLUGIN and _within(target, TRAINING):
        return f"{layer} never imports training"
    return None


def _statement(source_lines: list[str], line: int) -> str:
    return source_lines[line - 1].strip()


def violations_in(module: str, path: Path, known: set[str], extra: set[str]) -> list[str]:
    source = path.read_text()
    lines = source.splitlines()
    is_package = path.name == "__init__.py"
    layer = layer_of(module)
    problems = []
    for imported in imports_of(source, module, is_package, known):
        # The package root defines __version__ itself; its other names are lazy re-exports.
        if imported.target == PACKAGE and imported.name == "__version__":
            continue
        reason = violation(layer, imported.target, extra)
        if reason:
            where = f"{path.relative_to(REPOSITORY)}:{imported.line}"
            problems.append(f"{where} {_statement(lines, imported.line)!r}: {reason}")
    return problems


LAYERS = ["analysis", "sim", "surrogate", "processing", "validation", *sorted(TOP_LEVEL)]


@pytest.mark.parametrize("layer", LAYERS)
def test_layer_imports_only_what_it_may(layer: str) -> None:
    modules = package_modules()
    known, extra = set(modules), _generate_extra()
    in_layer = {name: path for name, path in modules.items() if layer_of(name) == layer}
    assert in_layer, f"no module in layer {layer!r}"
    problems = [
        problem
        for name, path in in_layer.items()
        for problem in violations_in(name, path, known, extra)
    ]
    assert not problems, "\n".join(problems)


def test_every_subpackage_is_a_layer() -> None:
    layers = {layer_of(name) for name in package_modules()}
    assert layers == set(LAYERS), f"layers without rules: {sorted(layers - set(LAYERS))}"


@pytest.mark.parametrize(
    ("source", "module", "expected"),
    [
        ("def f():\n    import torch\n", "coffea_fastsim.analysis.x", ["torch"]),
        (
            "from coffea_fastsim.sim import generation, CONSTANT",
            "coffea_fastsim.cli",
            ["coffea_fastsim.sim.generation", "coffea_fastsim.sim"],
        ),
        (
            "from . import generation",
            "coffea_fastsim.sim.presets",
            ["coffea_fastsim.sim.generation"],
        ),
        (
            "from ..response import wrap_phi",
            "coffea_fastsim.sim.detector.jets",
            ["coffea_fastsim.sim.response"],
        ),
        (
            "from .observables import X",
            "coffea_fastsim.analysis",
            ["coffea_fastsim.analysis.observables"],
        ),
    ],
)
def test_imports_are_found_and_resolved(source: str, module: str, expected: list[str]) -> None:
    known = {"coffea_fastsim.sim.generation", "coffea_fastsim.analysis.observables"}
    is_package = module == "coffea_fastsim.analysis"
    targets = [found.target for found in imports_of(source, module, is_package, known)]
    assert targets == expected


@pytest.mark.parametrize(
    ("layer", "target", "allowed"),
    [
        ("analysis", "coffea_fastsim.analysis.observables", True),
        ("analysis", "coffea_fastsim.surrogate.noise", False),
        ("analysis", "torch", False),
        ("sim", "coffea_fastsim.sim.detector.jets", True),
        ("sim", "coffea_fastsim.analysis.observables", False),
        ("sim", "fastjet", True),
        ("surrogate", "coffea_fastsim.analysis.definition", True),
        ("surrogate", "coffea_fastsim.analysis.reading", False),
        ("surrogate", "coffea_fastsim.analysis.features", False),
        ("processing", "coffea_fastsim.surrogate.inference", True),
        ("processing", "coffea_fastsim.surrogate.training", False),
        ("processing", "coffea_fastsim.sim.generation", False),
        ("processing", "pythia8mc", False),
        ("validation", "coffea_fastsim.sim.detector.registry", False),
        ("validation", "coffea_fastsim.surrogate.ensemble", True),
        ("cli", "coffea_fastsim.sim.generation", True),
    ],
)
def test_rules(layer: str, target: str, allowed: bool) -> None:
    assert (violation(layer, target, {"pythia8mc", "fastjet"}) is None) == allowed


def test_no_module_is_too_long() -> None:
    lengths = {
        str(path.relative_to(REPOSITORY)): len(path.read_text().splitlines())
        for path in [*package_modules().values(), *(REPOSITORY / "processors").rglob("*.py")]
    }
    too_long = {name: n for name, n in lengths.items() if n > MAX_MODULE_LINES}
    assert not too_long, f"modules over {MAX_MODULE_LINES} lines: {too_long}"


@pytest.mark.parametrize("path", sorted((PACKAGE_DIR / "cli").glob("*.py")), ids=lambda p: p.name)
def test_cli_only_parses_calls_and_prints(path: Path) -> None:
    """Target of the layout: the command line defines no class (no exception, no policy
    object), its modules are short, and it does not import the example processors
    (``run --processor``)."""
    source = path.read_text()
    classes = [node.name for node in ast.walk(ast.parse(source)) if isinstance(node, ast.ClassDef)]
    assert not classes, f"{path} defines classes {classes}: they belong in the library"
    n_lines = len(source.splitlines())
    assert n_lines < MAX_CLI_LINES, f"{path} has {n_lines} lines (limit {MAX_CLI_LINES})"
    modules = package_modules()
    examples = [
        found.target
        for found in imports_of(source, module_name(path), False, set(modules))
        if found.target.split(".")[0] == "processors"
    ]
    assert not examples, f"{path} imports the example processors {examples}"


def test_architecture_doc_names_every_subpackage() -> None:
    text = ARCHITECTURE_DOC.read_text()
    layer_map = text.partition("## Layers")[2].partition("\n## ")[0]
    assert layer_map, f"{ARCHITECTURE_DOC} has no '## Layers' section"
    missing = [name for name in subpackages() if f"`{name}/`" not in layer_map]
    assert not missing, f"the layer map of {ARCHITECTURE_DOC} does not name {missing}"
