"""The dependency direction theory → numerics → verify, and verify's own layers, checked on the import graph.

The static graph is read from the source (``ast``) of every module of theory/, numerics/ and verify/, function-local
imports included (they are where cycles hide), so no module can escape by not being imported in a test:

- theory imports no numerics, verify or torch;
- numerics imports no verify;
- the harness (``verify.harness``), the run store (``verify.store``), the claims kernel (``verify.claims``) and the
  statistics (``verify.stats``) import no study (``verify.studies.*``; studies plug in through registries);
- there is no import cycle between modules;
- a function-local import carries a comment (on its line or the line above) saying why it is local: only to keep a
  heavy or optional dependency out of import time.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("theory", "numerics", "verify")
KERNEL = ("verify.harness", "verify.store", "verify.claims", "verify.stats")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def sources() -> dict[str, tuple[Path, str]]:
    out = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            out[module_name(path)] = (path, path.read_text(encoding="utf-8"))
    return out


def _resolve(name: str, modules: set[str]) -> str:
    """The longest prefix of a dotted name that is one of ``modules`` (``verify.harness.loop.train`` → the module)."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        cand = ".".join(parts[:i])
        if cand in modules:
            return cand
    return name


def imports(module: str, path: Path, text: str, modules: set[str]) -> list[tuple[str, int, bool]]:
    """(imported name, line, inside a function) for every import statement of ``module``; project names resolved to
    their module, relative imports made absolute."""
    tree = ast.parse(text, str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, local: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = local or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            if isinstance(child, ast.Import):
                out.extend((_resolve(a.name, modules), child.lineno, local) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")[: len(package.split(".")) - (child.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                if base == "__future__":
                    continue
                for a in child.names:  # ``from verify.harness import loop`` imports the module verify.harness.loop
                    out.append((_resolve(f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base, modules),
                                child.lineno, local))
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                continue  # annotations only: never executed
            visit(child, inner)

    visit(tree, False)
    return list(dict.fromkeys(out))  # ``from m import a, b`` is one edge


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def graph(srcs: dict[str, tuple[Path, str]]) -> dict[str, list[tuple[str, int, bool]]]:
    mods = set(srcs)
    return {m: imports(m, p, t, mods) for m, (p, t) in srcs.items()}


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def layer_violations(g: dict[str, list[tuple[str, int, bool]]]) -> list[str]:
    rules = [
        ("theory", ("numerics", "verify", "torch"), "theory imports no numerics, verify or torch"),
        ("numerics", ("verify",), "numerics imports no verify"),
        *((k, ("verify.studies",), "the harness, store, claims kernel and stats import no study") for k in KERNEL),
    ]
    out = []
    for mod, edges in g.items():
        for src, banned, why in rules:
            if not _under(mod, src):
                continue
            for name, line, _ in edges:
                if any(_under(name, b) for b in banned):
                    out.append(f"{mod}:{line} imports {name} ({why})")
    return out


def cycles(g: dict[str, list[tuple[str, int, bool]]]) -> list[list[str]]:
    """Every import cycle between project modules (one per strongly connected component of size > 1)."""
    adj = {m: sorted({n for n, _, _ in edges if n in g and n != m}) for m, edges in g.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def strong(v: str) -> None:  # Tarjan
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in adj[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in adj:
        if v not in index:
            strong(v)
    return out


def uncommented_local_imports(srcs: dict[str, tuple[Path, str]],
                              g: dict[str, list[tuple[str, int, bool]]]) -> list[str]:
    out = []
    for mod, edges in g.items():
        lines = srcs[mod][1].splitlines()
        for name, line, local in edges:
            if not local:
                continue
            here, above = lines[line - 1], lines[line - 2] if line >= 2 else ""
            if "#" not in here and not above.strip().startswith("#"):
                out.append(f"{mod}:{line} imports {name} inside a function without a comment saying why")
    return out


@pytest.fixture(scope="module")
def srcs() -> dict[str, tuple[Path, str]]:
    return sources()


def test_layers(srcs) -> None:
    assert layer_violations(graph(srcs)) == []


def test_no_import_cycles(srcs) -> None:
    assert cycles(graph(srcs)) == []


def test_function_local_imports_say_why(srcs) -> None:
    bad = uncommented_local_imports(srcs, graph(srcs))
    assert bad == [], "\n".join(bad)


def test_the_checks_fail_when_a_harness_module_imports_a_study(srcs) -> None:
    """The graph checks can fail: make the loop import a study, the probes study import the loop back, and put an
    uncommented local import in the store."""
    path, text = srcs["verify.harness.loop"]
    bad = dict(srcs)
    bad["verify.harness.loop"] = (path, text + "\nimport verify.studies.probes\n")
    found = layer_violations(graph(bad))
    assert any(v.startswith("verify.harness.loop:") and "verify.studies.probes" in v for v in found)
    p_path, p_text = srcs["verify.studies.probes"]
    bad["verify.studies.probes"] = (p_path, p_text + "\nimport verify.harness.loop\n")
    assert any({"verify.harness.loop", "verify.studies.probes"} <= set(c) for c in cycles(graph(bad)))
    s_path, s_text = srcs["verify.store"]
    bad["verify.store"] = (s_path, s_text + "\n\ndef _late() -> None:\n    import json\n")
    assert any(v.startswith("verify.store:") for v in uncommented_local_imports(bad, graph(bad)))


def test_theory_never_imports_torch_at_run_time():
    code = "import sys, theory; from theory.derivation import all_derivations; all_derivations(); " \
           "print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_numerics_does_not_import_verify_at_run_time():
    code = "import sys, numerics; print(any(m == 'verify' or m.startswith('verify.') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
