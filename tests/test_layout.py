"""The shape of the code, checked: no import cycle anywhere in physlm, tasks and flows; the layers import one
way (physlm never imports prefect; nothing in physlm imports tasks or flows); the SQL layer and the CLI's
start-up leave torch (and prefect) unimported; no function over 60 lines (the training loop: 80)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("physlm", "tasks", "flows")
LONG_OK = {("physlm/model/train.py", "train"): 80}
"""Functions allowed past 60 lines: nanoGPT-style training loop with its section rulers."""


def modules() -> dict[str, str]:
    """``{dotted module name: file path}`` of every module of the three packages."""
    out = {}
    for pkg in PACKAGES:
        for folder, _, files in os.walk(os.path.join(ROOT, pkg)):
            for f in files:
                if f.endswith(".py"):
                    path = os.path.join(folder, f)
                    rel = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                    out[rel[: -len(".__init__")] if rel.endswith(".__init__") else rel] = path
    return out


def imports(path: str, name: str, known: set[str]) -> set[str]:
    """The internal modules a module imports, at module level or inside functions alike."""
    tree = ast.parse(open(path).read())
    package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name in known}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            for a in node.names:
                sub = f"{base}.{a.name}"
                if sub in known:
                    out.add(sub)
                elif base in known:
                    out.add(base)
    out.discard(name)
    return out


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports(path, name, set(mods)) for name, path in mods.items()}


def test_no_import_cycle():
    g = graph()
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for dep in sorted(g[m]):
            if state.get(dep) == 1:
                cycle = stack[stack.index(dep) :] + [dep]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep)
        stack.pop()
        state[m] = 2

    for m in sorted(g):
        if m not in state:
            visit(m)


def test_layers_import_one_way():
    g = graph()
    for name, deps in g.items():
        if name.startswith("physlm"):
            assert not [d for d in deps if d.startswith(("tasks", "flows"))], f"{name} imports orchestration"
    for path in modules().values():
        if os.path.relpath(path, ROOT).startswith("physlm"):
            tree = ast.parse(open(path).read())
            names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
            names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
            assert not [x for x in names if x.split(".")[0] == "prefect"], f"{path} imports prefect"


def test_sql_layer_and_cli_start_up_import_no_torch():
    code = (
        "import sys\n"
        "import flows.cli, physlm.sql.warehouse, physlm.sql.queries, physlm.plan\n"
        "from physlm.presets import resolve\n"
        "from physlm import plan\n"
        "plan.steps(resolve('tiny'))\n"
        "print(sorted(m for m in ('torch', 'prefect', 'transformers') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_no_long_functions():
    too_long = []
    for path in modules().values():
        rel = os.path.relpath(path, ROOT)
        for node in ast.walk(ast.parse(open(path).read())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > LONG_OK.get((rel, node.name), 60):
                    too_long.append(f"{rel}:{node.lineno} {node.name} ({n} lines)")
    assert not too_long, "functions over 60 lines:\n" + "\n".join(too_long)
