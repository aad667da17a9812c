"""The architecture, checked on the source: which package may import which, no import cycle
(imports inside functions counted), MLflow only in rnnflow/tracking/, Prefect nowhere in the
library, the flows started only by the CLI, and `rnnflow.api` the only module that a logged
model is told to load from."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import REPO

PACKAGES = ("rnnflow", "tasks", "flows")
# What each part may import, besides itself: the library's layers bottom-up, then the
# Prefect tasks over the library and the flows over the tasks. `rnnflow` (the package itself)
# is importable from everywhere. An entry is a part, or a single module of one. `rnnflow.api`,
# the public names, stands on the network alone, so that loading a logged model needs neither
# MLflow's tracking nor Prefect.
LIBRARY = {"rnnflow.config", "rnnflow.faults", "rnnflow.memory", "rnnflow.data", "rnnflow.network",
           "rnnflow.insight", "rnnflow.comparisons", "rnnflow.tracking", "rnnflow.api"}
ALLOWED = {
    "rnnflow.config": set(),
    "rnnflow.faults": set(),
    "rnnflow.memory": set(),
    "rnnflow.data": {"rnnflow.config", "rnnflow.faults", "rnnflow.memory"},
    "rnnflow.network": {"rnnflow.config", "rnnflow.data", "rnnflow.memory"},
    "rnnflow.insight": {"rnnflow.config", "rnnflow.data", "rnnflow.network"},
    # A params file's check cases are validated when it is read: insight's schema of them,
    # a module that imports neither pandas nor TensorFlow, and nothing else of insight.
    "rnnflow.comparisons": {"rnnflow.config", "rnnflow.data.locations", "rnnflow.insight.cases"},
    "rnnflow.tracking": set(),
    "rnnflow.api": {"rnnflow.config", "rnnflow.network"},
    # The old names that logged models import forward to wherever the names went; nothing
    # but the package itself (`rnnflow/__init__.py`) imports them.
    "rnnflow._compat": LIBRARY,
    "rnnflow.cli": LIBRARY | {"flows"},
    "tasks": LIBRARY,
    "flows": LIBRARY | {"tasks"},
}


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            parts = path.relative_to(REPO).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = _modules()


def _imports(path: Path) -> Iterator[tuple[str, int, bool]]:
    """(imported name, line, whether at module level) for every import in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top = {id(node) for node in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno, id(node) in top
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}:{node.lineno}: relative import"
            for alias in node.names:
                yield f"{node.module}.{alias.name}", node.lineno, id(node) in top


def _resolve(name: str) -> str | None:
    """The module of ours an imported name lies in (the longest known prefix), else None."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _part(module: str) -> str:
    """The part of the architecture a module belongs to (a key of ALLOWED)."""
    if module.split(".")[0] in ("tasks", "flows"):
        return module.split(".")[0]
    return ".".join(module.split(".")[:2])


def _edges() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {m: set() for m in MODULES}
    for module, path in MODULES.items():
        for name, _, _ in _imports(path):
            target = _resolve(name)
            if target and target != module:
                edges[module].add(target)
    return edges


def test_every_module_belongs_to_a_part():
    assert {_part(m) for m in MODULES} - {"rnnflow"} <= set(ALLOWED)


def test_each_part_imports_only_what_lies_below_it():
    wrong = []
    for module, path in MODULES.items():
        part = _part(module)
        if part == "rnnflow":
            continue
        for name, line, _ in _imports(path):
            target = _resolve(name)
            if target is None or target == "rnnflow":
                continue
            if _part(target) != part and not {_part(target), target} & ALLOWED[part]:
                wrong.append(f"{path.relative_to(REPO)}:{line} imports {target}")
    assert not wrong, "\n".join(wrong)


def test_no_import_cycle_between_modules():
    edges = _edges()
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(edges):
        if module not in index:
            visit(module)
    assert not cycles, cycles


@pytest.mark.parametrize(("library", "allowed_in"), [
    ("mlflow", ("rnnflow.tracking",)),
    ("prefect", ("tasks", "flows")),
    ("prefect_dask", ("flows",)),
])
def test_third_party_frameworks_stay_in_their_place(library, allowed_in):
    wrong = [f"{path.relative_to(REPO)}:{line}"
             for module, path in MODULES.items()
             for name, line, _ in _imports(path)
             if name.split(".")[0] == library and not module.startswith(allowed_in)]
    assert not wrong, f"{library} imported outside {allowed_in}: {wrong}"


def test_only_the_cli_starts_flows_and_only_inside_its_commands():
    wrong = [f"{path.relative_to(REPO)}:{line}"
             for module, path in MODULES.items() if module.startswith("rnnflow")
             for name, line, at_top in _imports(path)
             if name.split(".")[0] in ("flows", "tasks")
             and (module != "rnnflow.cli" or at_top)]
    assert not wrong, wrong


def test_tests_import_nothing_from_bench_but_its_own():
    """bench/ measures the product; the tests share their paths and builders through
    tests/helpers.py, so a change to a benchmark cannot break an unrelated test."""
    wrong = [f"{path.relative_to(REPO)}:{line}"
             for path in (REPO / "tests").rglob("*.py") if "bench" not in path.parts[-2:-1]
             for name, line, _ in _imports(path) if name.split(".")[0] == "bench"]
    assert not wrong, wrong


CHAIN = ("download_dataset", "read_reviews", "tokenize_reviews", "build_embeddings",
         "vectorize_tokens", "pad_sequences", "train_model", "evaluate_model", "log_results")


def test_the_chain_reads_straight_down_on_one_screen():
    """flows/chain.py calls the nine steps in the card's order, each once, within 40 lines,
    and the grid and the search import it rather than being handed it."""
    path = REPO / "flows" / "chain.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    calls = sorted((node.lineno, node.func.id) for node in ast.walk(tree)
                   if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                   and node.func.id in CHAIN)
    assert [name for _, name in calls] == list(CHAIN)
    functions = [node for node in tree.body if isinstance(node, ast.FunctionDef)]
    first, last = functions[0].lineno, functions[-1].end_lineno
    assert last - first + 1 <= 40, f"flows/chain.py's functions span {last - first + 1} lines"
    for runner in ("grid", "search"):
        imported = {name for name, _, _ in _imports(REPO / "flows" / f"{runner}.py")}
        assert "flows.chain.run_point" in imported, runner


def test_keras_only_through_its_public_names():
    """`keras.src` is Keras's private tree, which a minor release may rearrange without notice;
    the public names (`keras.activations`, `keras.tree`, `keras.layers`, ...) are the ones it
    keeps. Nothing of the product, the tests or the benchmarks reaches below them."""
    files = [path for folder in (*PACKAGES, "tests", "bench")
             for path in (REPO / folder).rglob("*.py")]
    wrong = [f"{path.relative_to(REPO)}:{line} imports {name}"
             for path in files for name, line, _ in _imports(path)
             if name == "keras.src" or name.startswith("keras.src.")]
    assert not wrong, "\n".join(wrong)


def test_reading_a_params_file_loads_nothing_heavy():
    """`rnnflow run` checks the params file, its check cases and its cluster section before
    anything heavy is imported, so a mistake is reported in a moment: none of the frameworks
    below may be pulled in by the command, the plan loader or the runner's cluster check."""
    heavy = ("tensorflow", "keras", "pandas", "prefect", "mlflow", "distributed", "optuna")
    code = ("import sys\n"
            "import rnnflow.cli\n"
            "from flows.dask_cluster import check_cluster\n"
            "from rnnflow.comparisons.plan import load_plan\n"
            "plan = load_plan('params/quick.yaml', {'evaluate.checks': 'default'})\n"
            "check_cluster(plan.dask_cluster, 'params/quick.yaml')\n"
            f"print(' '.join(m for m in {heavy!r} if m in sys.modules))\n")
    loaded = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                            text=True, check=True).stdout.split()
    assert not loaded, f"reading a params file imports {loaded}"


# "package.module:function", the form in which a logged model names what loads it.
LOADER_STRING = re.compile(r"\brnnflow(?:\.[A-Za-z_]\w*)+:[A-Za-z_]\w*")


def test_logged_models_are_told_to_load_from_rnnflow_api_alone():
    """A loader string written into a model outlives the code that wrote it: naming an internal
    module would freeze that module's path. Only rnnflow.api's names are promised to stay; the
    old names that models logged before still use are listed in rnnflow/_compat/ alone."""
    compat = REPO / "rnnflow" / "_compat"
    named = [f"{path.relative_to(REPO)}: {found}"
             for path in sorted(MODULES.values()) if not path.is_relative_to(compat)
             for found in LOADER_STRING.findall(path.read_text(encoding="utf-8"))
             if not found.startswith("rnnflow.api:")]
    assert not named, "\n".join(named)


def test_the_loader_new_text_models_name_is_rnnflow_api_load_text_model():
    import importlib

    from rnnflow import api

    assert api.LOADER == "rnnflow.api:load_text_model"
    module, _, function = api.LOADER.partition(":")
    assert getattr(importlib.import_module(module), function) is api.load_text_model


def _modules_imported_by(statement: str) -> set[str]:
    """The modules that `statement` adds to a fresh interpreter's sys.modules."""
    import json

    code = ("import json, sys; before = set(sys.modules); " + statement
            + "; print(json.dumps(sorted(set(sys.modules) - before)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=REPO)
    return set(json.loads(out.stdout))


def test_the_old_names_cost_import_rnnflow_one_small_module():
    """The shims of rnnflow/_compat/ are imported when a logged model asks for one, not before."""
    assert _modules_imported_by("import rnnflow") == {"rnnflow", "rnnflow._compat"}


def test_the_public_names_import_no_framework():
    """`import rnnflow.api` is what a logged model's loader costs before it loads anything:
    TensorFlow, Keras, pandas and MLflow wait until a model is loaded."""
    heavy = {"tensorflow", "keras", "pandas", "numpy", "pyarrow", "mlflow", "prefect"}
    found = {name.split(".")[0] for name in _modules_imported_by("import rnnflow.api")} & heavy
    assert not found, sorted(found)
