"""The house's import structure, read from the source with `ast` (nothing is imported):

* no import cycle between jaxcnn's modules (imports at module level and inside functions both count);
* no import from a lower layer to a higher one: base < ops < layers < models, base < data, and
  models, data < train < the applications (pretrained < finetune < ablation; detection) < the package root;
* an import of a jaxcnn module inside a function only where LAZY allows it, with its reason.
"""

from __future__ import annotations

import ast
import os
from typing import Optional

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "jaxcnn")

# Each part of the package and the parts it may import (besides itself). "base" is jaxcnn's private helpers
# (jaxcnn._validation, ._version, ...) and jaxcnn.runtime; "root" is the package jaxcnn itself.
BASE = {"base"}
MAY_IMPORT = {
    "base": set(),
    "ops": BASE,
    "layers": BASE | {"ops"},
    "models": BASE | {"ops", "layers"},
    "data": BASE,
    "train": BASE | {"ops", "layers", "models", "data"},
    "pretrained": BASE | {"ops", "layers", "models", "data", "train"},
    "finetune": BASE | {"ops", "layers", "models", "data", "train", "pretrained"},
    "detection": BASE | {"ops", "layers", "models", "data", "train"},
    "ablation": BASE | {"ops", "layers", "models", "data", "train", "pretrained", "finetune"},
    "root": BASE | {"ops", "layers", "models", "data", "train", "pretrained", "finetune", "ablation", "detection"},
}
# The configs (config-as-code) and the console entry points stand above every application.
MAY_IMPORT["configs"] = MAY_IMPORT["root"] | {"root"}
MAY_IMPORT["commands"] = MAY_IMPORT["root"] | {"root", "configs"}
# Parts whose function-level imports are all lazy by design.
LAZY_PARTS = {"commands": "an entry point imports the library only once its flags are read (--help stays fast, "
                          "and the XLA flags are set before JAX starts)"}

# Imports of jaxcnn modules inside a function, each lazy by design: {(importing module, imported module): why}.
LAZY = {
    ("jaxcnn.data.integrity", "jaxcnn.data.fashion_mnist"):
        "fashion_mnist imports tensorflow_datasets (seconds); needed only to name a damaged source file",
    ("jaxcnn.data.sources", "jaxcnn.data.fashion_mnist"):
        "fashion_mnist imports tensorflow_datasets (seconds); needed only to build the offline Fashion-MNIST",
    ("jaxcnn.ops.normalization", "jaxcnn.ops.native.norm"):
        "the native kernels (a compiled extension) are loaded when a CPU path is first traced",
    ("jaxcnn.ops.pooling", "jaxcnn.ops.native.pool"):
        "the native kernels (a compiled extension) are loaded when a CPU path is first traced",
    ("jaxcnn.ops.native.lowering", "jaxcnn.ops.native.partition"):
        "the partitioning rules need jax's custom_partitioning only when a lowering is registered",
    ("jaxcnn.data.proposals", "jaxcnn.data.datasets"):
        "the command-line entry (python -m jaxcnn.data.proposals) loads the canvases through datasets.load only "
        "when it runs; the module itself sits below the canvases, which import it",
    ("jaxcnn.ablation.carried", "jaxcnn.ablation.report"):
        "report imports matplotlib through plots; a carried record needs only its environment helpers",
}


def part_of(module: str) -> str:
    """The layer of a dotted jaxcnn module name."""
    parts = module.split(".")
    if len(parts) == 1:
        return "root"
    if parts[1].startswith("_") or parts[1] == "runtime":
        return "base"
    return parts[1]


def modules() -> dict[str, tuple[str, bool]]:
    """{dotted name: (path, is a package)} of every module under jaxcnn/."""
    out = {}
    for folder, _, files in os.walk(PACKAGE):
        for f in files:
            if f.endswith(".py"):
                rel = os.path.relpath(os.path.join(folder, f), ROOT)[:-3].split(os.sep)
                package = rel[-1] == "__init__"
                out[".".join(rel[:-1] if package else rel)] = (os.path.join(folder, f), package)
    return out


def _resolve(name: str, known) -> Optional[str]:
    """The module `name` is, or lives in (a name imported from a module is that module)."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def imports(module: str, path: str, package: bool, known) -> list[tuple[str, bool, int]]:
    """(imported jaxcnn module, inside a function, line) of each import statement in `path`; imports under
    `if TYPE_CHECKING:` are not run and do not count."""
    here = module if package else module.rpartition(".")[0]
    out = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and getattr(child.test, "id", getattr(child.test, "attr", "")) == \
                    "TYPE_CHECKING":
                continue
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                for alias in child.names:
                    if alias.name.split(".")[0] == "jaxcnn":
                        out.append((_resolve(alias.name, known), in_function, child.lineno))
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = here.split(".")[:len(here.split(".")) - child.level + 1]
                    source = ".".join(base + ([child.module] if child.module else []))
                else:
                    source = child.module or ""
                if source.split(".")[0] == "jaxcnn":
                    for alias in child.names:
                        full = f"{source}.{alias.name}"
                        out.append((full if full in known else _resolve(source, known), in_function, child.lineno))
            else:
                visit(child, inner)

    with open(path) as f:
        visit(ast.parse(f.read(), path), False)
    return [(target, lazy, line) for target, lazy, line in out if target and target != module]


@pytest.fixture(scope="module")
def graph():
    known = modules()
    return {m: imports(m, path, package, known) for m, (path, package) in known.items()}


def cycles(edges: dict[str, set]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]
    for start in edges:
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = counter[0]
        counter[0] += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    component.append(m)
                    if m == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_a_ring_and_leaves_a_chain():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_the_reader_sees_relative_function_level_and_type_checking_imports(tmp_path):
    known = {"jaxcnn.x": None, "jaxcnn.x.a": None, "jaxcnn.x.b": None, "jaxcnn.y": None}
    path = tmp_path / "a.py"
    path.write_text("from typing import TYPE_CHECKING\nfrom . import b\nif TYPE_CHECKING:\n    import jaxcnn.y\n"
                    "def f():\n    from jaxcnn.y import thing\n")
    assert imports("jaxcnn.x.a", str(path), False, known) == [("jaxcnn.x.b", False, 2), ("jaxcnn.y", True, 6)]
    assert part_of("jaxcnn._validation") == "base" and part_of("jaxcnn.models.detection.boxes") == "models"


def test_no_import_cycle_between_modules(graph):
    edges = {m: {target for target, _, _ in out} for m, out in graph.items()}
    assert cycles(edges) == [], "import cycles between modules (break each by moving what both need lower)"


def test_no_import_from_a_lower_layer_to_a_higher_one(graph):
    upward = [f"{m}:{line} imports {target}" for m, out in graph.items() for target, _, line in out
              if part_of(target) != part_of(m) and part_of(target) not in MAY_IMPORT[part_of(m)]]
    assert not upward, f"imports against the layering: {upward}"


def test_function_level_imports_are_lazy_by_design(graph):
    lazy = {(m, target): line for m, out in graph.items() for target, inside, line in out
            if inside and part_of(m) not in LAZY_PARTS}
    unexplained = sorted(f"{m}:{line} imports {target}" for (m, target), line in lazy.items()
                         if (m, target) not in LAZY)
    assert not unexplained, ("imports inside functions: move them to the module's imports, or add them to LAZY "
                             f"with the reason they must wait: {unexplained}")
    stale = sorted(set(LAZY) - set(lazy))
    assert not stale, f"LAZY lists imports that are gone (remove them): {stale}"
