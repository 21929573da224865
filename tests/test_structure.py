"""The package's shape: layers that import only downwards, no import cycle, modules of a readable
size, a CLI that only parses arguments, and a public API that imports cheaply."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "benchmark"
#: Lowest first: a module may import its own layer and the layers below it, never one above.
LAYERS = ["core", "data", "log", "models", "metrics", "run", "analysis", "integrations", "cli"]
MAX_LINES = 420  # "split a module when it passes ~400 lines" (DESIGN.md)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(["wmbench", *parts])


def _imports(path: Path) -> set[str]:
    """Modules of the package that `path` imports, at any depth (lazy imports in functions too)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            candidates = [target] + [f"{target}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        else:
            continue
        found |= {c for c in candidates if c.startswith("wmbench") and c in MODULES}
    return found - {name}


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else None


def test_layers_import_only_downwards():
    upward = []
    for module, path in MODULES.items():
        mine = _layer(module)
        if mine is None:
            continue
        for target in _imports(path):
            theirs = _layer(target)
            if theirs is not None and theirs > mine:
                upward.append(f"{module} -> {target}")
    assert not upward, "imports that run up the layers " + " < ".join(LAYERS) + ":\n" + "\n".join(sorted(upward))


def test_no_import_cycle():
    # every edge counts, lazy imports inside functions too; the facade `wmbench` imports nothing
    # eagerly (its exports are looked up by name on first use), so edges into it are left out
    graph = {m: {t for t in _imports(p) if t != "wmbench"} for m, p in MODULES.items()}
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(node: str, stack: list[str]) -> bool:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle.extend(stack[stack.index(nxt):] + [node, nxt] if nxt in stack else [node, nxt])
                return True
            if state.get(nxt) is None and visit(nxt, stack + [node]):
                return True
        state[node] = 2
        return False

    for module in sorted(graph):
        if state.get(module) is None and visit(module, []):
            break
    assert not cycle, "import cycle: " + " -> ".join(cycle)


def test_modules_stay_readable():
    long = {m: n for m, p in MODULES.items() if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines (split them by concept): {long}"


def test_cli_run_is_a_thin_wrapper():
    from wmbench.cli import commands

    source = inspect.getsource(commands.cmd_run)
    assert len(source.splitlines()) < 50
    for internal in ("Evaluation", "RunStore", "write_outputs", "sqlite"):
        assert internal not in source, f"cmd_run reaches into {internal}: it should only call the API"


def test_import_wmbench_is_light_and_exports_the_api():
    code = ("import sys, wmbench; heavy = [m for m in ('torch', 'transformers', 'numpy', 'pandas') if m in sys.modules]; "
            "print(heavy); assert callable(wmbench.evaluate) and wmbench.BadInput and wmbench.Model; "
            "print(sorted(set(wmbench.__all__) - set(dir(wmbench))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[0] == "[]", f"`import wmbench` imported {out[0]}"
    assert out[1] == "[]"
