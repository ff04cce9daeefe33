"""The package's layers point one way: each module imports only its own layer and those below.

base (config, io, errors, runtime, extras, the package's version) < ops, data < model and
eval (side by side: neither imports the other; eval reads data) < viz (reads eval, data) < engine <
commands, cli, runlog (the commands' run records), the package root. Read from each module's source (ast), lazy imports included.
"""
from __future__ import annotations

import ast
from pathlib import Path

import dcltal

ROOT = Path(dcltal.__file__).parent
BASE = {"config", "io", "errors", "runtime", "extras"}
# the layers each layer may import (its own included)
ALLOWED = {
    "base": {"base"},
    "ops": {"base", "ops"},
    "data": {"base", "ops", "data"},
    "model": {"base", "ops", "data", "model"},
    "eval": {"base", "ops", "data", "eval"},
    "viz": {"base", "ops", "data", "eval", "viz"},
    "engine": {"base", "ops", "data", "model", "eval", "viz", "engine"},
}
TOP = {"commands", "cli", "runlog", "__init__", "__main__"}  # may import anything


def layer(parts: list[str]) -> str:
    """The layer of module ``dcltal.<parts>``; ``[]`` is the package root (its ``__version__``)."""
    if not parts:
        return "base"
    head = parts[0]
    return "base" if head in BASE else head


def imported(path: Path) -> list[tuple[int, list[str]]]:
    """(line, module parts under dcltal) of every dcltal import in ``path``."""
    package = path.relative_to(ROOT.parent).with_suffix("").parts[:-1]  # ("dcltal", ...)
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolved against the module's package
                base = list(package[: len(package) - node.level + 1])
                names = [".".join(base + ([node.module] if node.module else []))]
            else:
                names = [node.module or ""]
        else:
            continue
        out += [(node.lineno, n.split(".")[1:]) for n in names if n == "dcltal" or n.startswith("dcltal.")]
    return out


def test_layer_of_names_what_it_checks():
    assert layer([]) == "base" and layer(["config"]) == "base" and layer(["engine", "trainer"]) == "engine"
    assert imported(ROOT / "model" / "losses.py")  # the reader sees imports (an empty list would pass anything)


def test_no_module_imports_a_higher_layer():
    wrong = []
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        own = "__init__" if parts == ("__init__",) else layer(list(parts))
        if own in TOP:
            continue
        assert own in ALLOWED, f"{path}: no layer for {own!r}; add it to ALLOWED"
        for line, target in imported(path):
            if layer(target) not in ALLOWED[own]:
                wrong.append(f"{path.relative_to(ROOT.parent)}:{line} ({own}) imports dcltal.{'.'.join(target)}")
    assert not wrong, "\n".join(wrong)
