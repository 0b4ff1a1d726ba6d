"""The package's dependencies point one way: no import cycle between its modules (imports inside functions and
under TYPE_CHECKING included), algorithms that never reach up to the workers, the app or the CLI, and analysis
modules that never import torch."""

from __future__ import annotations

import ast
from pathlib import Path

import fedrl_cli

PACKAGE = Path(fedrl_cli.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports() -> dict[str, set[str]]:
    """Every module of the package → the package's modules it imports, anywhere in its text."""
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                targets = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                continue
            found |= {target for target in targets if target in modules and target != name}
        graph[name] = found
    return graph


def test_no_import_cycle_between_the_package_modules() -> None:
    graph = imports()
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(graph[module]):
            if target.startswith(module + "."):
                continue  # a package importing its own submodules
            assert state.get(target) != "open", " → ".join([*path, module, target])
            if target not in state:
                visit(target, [*path, module])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [])


def test_layers_point_one_way() -> None:
    graph = imports()
    upper = ("fedrl_cli.workers", "fedrl_cli.experiments", "fedrl_cli.app", "fedrl_cli.cli")
    for module, targets in graph.items():
        if module.startswith("fedrl_cli.algos") or module.startswith("fedrl_cli.envs"):
            assert not targets & set(upper), (module, targets & set(upper))
        if module.startswith("fedrl_cli.envs"):
            assert not any(t.startswith("fedrl_cli.algos") for t in targets), module
    # analysis: plots → curves → stats → results, never the other way, and never torch
    below = {
        "fedrl_cli.results": set(),
        "fedrl_cli.stats": {"fedrl_cli.results"},
        "fedrl_cli.curves": {"fedrl_cli.results", "fedrl_cli.stats"},
    }
    analysis = ("fedrl_cli.plots", "fedrl_cli.curves", "fedrl_cli.stats", "fedrl_cli.results")
    for module, allowed in below.items():
        assert graph[module] & set(analysis) <= allowed, (module, graph[module])
    for module in analysis:
        text = (PACKAGE / f"{module.split('.')[1]}.py").read_text()
        assert "import torch" not in text and "from torch" not in text, module
