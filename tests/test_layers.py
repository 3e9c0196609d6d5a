"""The package's shape, as docs/architecture.md draws it: every import statement of every module
(inside functions and under TYPE_CHECKING too) points down the layers, there are no cycles, no
module imports the package root, and no module is over 600 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "zeromamba"

# layer -> the module-name prefixes in it (a prefix ending in "." is a subpackage)
LAYERS: dict[str, tuple[str, ...]] = {
    "leaf": (
        "errors",
        "version",
        "cpu_info",
        "constants",
        "fileio",
        "architectures",
        "pretrained_variant",
        "zoo",
        "network_failure",
        "hubcheck",
        "sources",
        "scoring",
        "confidence",
        "classes",
        "class_table",
        "class_definitions",
        "runtime",
        "letterbox",
        "pickle_scan",
        "pickle_report",
        "torch_container",
        "npy",
        "framing",
        "terminal",
        "deadline_http",
        "manifests",
    ),
    "ops": ("ops",),
    "models": ("models", "attribution"),
    "format": ("format", "official"),
    "hub": ("hub", "convert"),
    "predict": (
        "images",
        "preprocess_config",
        "results",
        "record_table",
        "explain",
        "batch",
        "ranking",
        "predictor",
        "exporter",
    ),
    "factory": ("factory",),
    "data": ("data", "metrics", "explanation_metrics"),
    "training": ("evaluate", "train"),
    "app": (
        "demo",
        "cli",
        "__main__",
        "webapp",
        "webapp_inputs",
        "serving",
        "batch_classifier",
        "ray_engine",
        "partial_output",
    ),
}
# layer -> the layers its modules may import (its own included)
ALLOWED: dict[str, set[str]] = {
    "leaf": {"leaf"},
    "ops": {"leaf", "ops"},
    "models": {"leaf", "ops", "models"},
    "format": {"leaf", "models", "format"},
    "hub": {"leaf", "models", "format", "hub", "data"},  # convert reads .mat files with data.matlab
    "predict": {"leaf", "models", "format", "predict"},
    "factory": {"leaf", "models", "hub", "predict", "factory"},
    "data": {"leaf", "data"},
    "training": {"leaf", "models", "format", "hub", "data", "training"},
    "app": set(LAYERS),
}
MAX_LINES = 600


def module_name(path: Path, package: Path) -> str:
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(package: Path = PACKAGE) -> dict[str, Path]:
    return {module_name(p, package): p for p in sorted(package.rglob("*.py"))}


def imports_of(name: str, path: Path, known: dict[str, Path]) -> list[tuple[int, str]]:
    """``(line, imported zeromamba module)`` for every import statement; ``from X import y`` counts
    as ``X.y`` when that is a module, else as ``X``."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "zeromamba"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "zeromamba":
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.append((node.lineno, sub if sub in known else target))
    return found


def layer_of(name: str) -> str:
    short = name.removeprefix("zeromamba").removeprefix(".")
    for layer, prefixes in LAYERS.items():
        if any(short == p or short.startswith(p + ".") for p in prefixes):
            return layer
    raise AssertionError(f"{name} belongs to no layer: add it to LAYERS (and docs/architecture.md)")


def all_imports(package: Path = PACKAGE) -> dict[str, list[tuple[int, str]]]:
    known = modules(package)
    return {name: imports_of(name, path, known) for name, path in known.items()}


def root_imports(package: Path = PACKAGE) -> list[str]:
    return [
        f"{name}:{line}"
        for name, found in all_imports(package).items()
        if name != "zeromamba"
        for line, target in found
        if target == "zeromamba"
    ]


def upward_imports(package: Path = PACKAGE) -> list[str]:
    wrong = []
    for name, found in all_imports(package).items():
        if name == "zeromamba":
            continue
        for line, target in found:
            if target != "zeromamba" and layer_of(target) not in ALLOWED[layer_of(name)]:
                wrong.append(f"{name}:{line} ({layer_of(name)}) imports {target} ({layer_of(target)})")
    return wrong


def find_cycles(package: Path = PACKAGE) -> list[list[str]]:
    edges = {name: {t for _, t in found} for name, found in all_imports(package).items()}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            # a package's __init__ importing its own submodules is how packages work, not a cycle
            if nxt == node or nxt.startswith(node + ".") or nxt not in edges:
                continue
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt] if nxt in stack else [node, nxt])
            elif not state.get(nxt):
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for name in sorted(edges):
        if not state.get(name):
            visit(name, [name])
    return cycles


def test_every_module_has_a_layer() -> None:
    for name in modules():
        if name != "zeromamba":
            layer_of(name)


def test_no_module_imports_the_package_root() -> None:
    assert not root_imports(), "import from the defining module instead"


def test_imports_point_down_the_layers() -> None:
    wrong = upward_imports()
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles() -> None:
    cycles = find_cycles()
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize("name", sorted(modules()))
def test_module_size(name: str) -> None:
    lines = len(modules()[name].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines: split it by concept"


def test_the_checks_catch_a_cycle_an_upward_import_and_a_root_import(tmp_path: Path) -> None:
    fake = tmp_path / "zeromamba"
    (fake / "ops").mkdir(parents=True)
    (fake / "models").mkdir()
    (fake / "__init__.py").write_text("from . import models\n")
    (fake / "ops" / "b.py").write_text("def f():\n    from ..models import a\n    import zeromamba\n")
    (fake / "models" / "a.py").write_text("from ..ops import b\n")
    assert find_cycles(fake) == [["zeromamba.models.a", "zeromamba.ops.b", "zeromamba.models.a"]]
    assert upward_imports(fake) == ["zeromamba.ops.b:2 (ops) imports zeromamba.models.a (models)"]
    assert root_imports(fake) == ["zeromamba.ops.b:3"]
