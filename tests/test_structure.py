"""The layers do not import each other in circles, and pure modules do not import the CLI."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest


def imported_after(module: str) -> set[str]:
    code = (
        f"import sys, {module}; print(' '.join(m for m in sys.modules if m.startswith('hmmnlab')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_the_memory_bank_does_not_import_the_network():
    assert "hmmnlab.model" not in imported_after("hmmnlab.memory")


@pytest.mark.parametrize(
    "module",
    ["hmmnlab.viz", "hmmnlab.inside.trace", "hmmnlab.inference", "hmmnlab.inside.interventions"],
)
def test_pure_modules_do_not_import_the_cli(module):
    cli = {
        "hmmnlab.commands.cli",
        "hmmnlab.commands",
        "hmmnlab.evaluation.segment",
        "hmmnlab.evaluation.davis",
        "hmmnlab.evaluation.scoring",
    }
    assert not cli & imported_after(module), (
        f"{module} imports {sorted(cli & imported_after(module))}"
    )


def test_the_old_import_paths_still_work():
    from hmmnlab import features
    from hmmnlab.inside.trace import guidance_frames
    from hmmnlab.model import MemoryFeatures, QueryFeatures, ReadOut

    assert MemoryFeatures is features.MemoryFeatures and ReadOut is features.ReadOut
    assert QueryFeatures is features.QueryFeatures and callable(guidance_frames)


def test_a_moved_module_keeps_its_old_path_with_a_warning():
    """``import hmmnlab.evaluate`` (a module that moved into a subpackage) gives the module at its
    new place, the same object, with a DeprecationWarning naming the new path. One fresh process
    imports every old name for the first time (one process: each start costs seconds)."""
    from hmmnlab.moved import MOVED

    code = (
        "import importlib, json, warnings\n"
        "from hmmnlab.moved import MOVED\n"
        "found = {}\n"
        "for old, new in MOVED.items():\n"
        "    with warnings.catch_warnings(record=True) as w:\n"
        "        warnings.simplefilter('always')\n"
        "        module = importlib.import_module(old)\n"
        "    found[old] = [module is importlib.import_module(new), module.__name__,\n"
        "                  [str(x.message) for x in w if x.category is DeprecationWarning]]\n"
        "print(json.dumps(found))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    found = json.loads(out.stdout)
    assert set(found) == set(MOVED) and len(MOVED) == 16
    for old, (same, name, messages) in found.items():
        assert same and name == MOVED[old], old
        assert f"{old} moved to {MOVED[old]}; import it from there" in messages, (old, messages)


def test_moved_names_have_no_file_and_their_new_place_has_one():
    from hmmnlab.moved import MOVED

    for old, new in MOVED.items():
        assert not (PACKAGE.parent / (old.replace(".", "/") + ".py")).exists(), old
        assert (PACKAGE.parent / (new.replace(".", "/") + ".py")).exists(), new


def test_the_top_level_holds_the_papers_path_and_subpackages():
    """Issue 21: the top level is the read's path, module by module; every other module lives in a
    subpackage named by its job."""
    modules = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__", "__main__"}
    assert modules == {
        "registry", "config", "ops", "features", "hooks", "memory", "step", "inference",
        "weights", "precision", "allocator", "moved",
    }  # fmt: skip


def test_the_split_packages_keep_their_names():
    """viz.py and widgets.py became packages by job; every name stays importable from the
    package (``from hmmnlab.viz import overlay``, ``viz.AffinityFigure``)."""
    from hmmnlab import viz, widgets

    for package in (viz, widgets):
        assert all(hasattr(package, name) for name in package.__all__)
    assert {"overlay", "AffinityFigure", "TopkFigure", "render", "png_bytes", "animate",
            "read_diagram", "R4_STRIDE", "pixel_to_cell"} <= set(viz.__all__)  # fmt: skip
    assert {"TopkInspector", "topk_inspector", "FrameTrace", "InspectorVideo", "check_trace",
            "DavisVideos", "model_traces", "TRACE_NAMES"} <= set(widgets.__all__)  # fmt: skip


# --------------------------------------------------------------------------------------------------
# The drawing of imports, read from the source (imports inside functions included)

PACKAGE = Path(__file__).resolve().parents[1] / "hmmnlab"

#: Cycles the code still has, each as the set of its modules, with the reason it stays. None today.
KNOWN_CYCLES: list[frozenset[str]] = []


def source_modules() -> dict[str, Path]:
    """Module name -> file of every module of the package (packages by their ``__init__``)."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def import_graph() -> dict[str, set[str]]:
    """Module -> the hmmnlab modules it imports anywhere in its source (at the top, inside
    functions, under ``if``), with the packages above an imported module (importing
    ``hmmnlab.model.reads`` runs ``hmmnlab/model/__init__.py`` first) except the importer's own."""
    modules = source_modules()

    def known(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for module, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found |= {known(alias.name) for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:  # `from hmmnlab import ops` imports hmmnlab.ops
                    name = f"{node.module}.{alias.name}"
                    found.add(name if name in modules else known(node.module))
            elif isinstance(node, ast.ImportFrom):
                raise AssertionError(f"{path}: relative import; the package imports absolutely")
        for name in list(found - {None}):
            parts = name.split(".")
            for i in range(2, len(parts)):
                package = ".".join(parts[:i])
                if not f"{module}.".startswith(f"{package}."):
                    found.add(package)
        graph[module] = {name for name in found if name and name.startswith("hmmnlab.")} - {module}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_import_graph_sees_lazy_imports():
    graph = import_graph()
    assert "hmmnlab.data.lookalikes" in graph["hmmnlab.commands.samples"]  # inside its run
    assert "hmmnlab.model" in graph["hmmnlab.evaluation.resources"]  # the package above model.reads


def test_no_import_cycles():
    found = cycles(import_graph())
    unexpected = [sorted(c) for c in found if c not in KNOWN_CYCLES]
    assert not unexpected, f"import cycles among hmmnlab modules: {unexpected}"
    gone = [sorted(c) for c in KNOWN_CYCLES if c not in found]
    assert not gone, f"KNOWN_CYCLES lists cycles that are gone: {gone}"


def test_the_registry_is_the_ground_floor():
    graph = import_graph()
    assert graph["hmmnlab.registry"] == set()
    assert graph["hmmnlab.config"] == {"hmmnlab.registry"}


def test_the_registry_declares_every_built_in_read():
    from hmmnlab import registry
    from hmmnlab.model import reads

    assert set(registry.BUILTIN_KERNELS) <= set(reads.KERNELS)
    assert set(registry.BUILTIN_FINE_READS) <= set(reads.FINE_READS)
    assert set(registry.BUILTIN_FINE_READS) <= set(reads.FINE_READ_MEMORY)
    assert reads.KERNELS is registry.KERNELS and reads.VARIANT_DEFAULTS["kmn"] == {"sigma": 7.0}


def test_a_config_is_checked_without_torch():
    code = "from hmmnlab.config import ReadConfig; ReadConfig(variant='kmn', fine='dense')"
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys\nprint('torch' in sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.split() == ["False"]


#: Modules that import the CLI: its entry point only.
CLI_IMPORTERS = {"hmmnlab.__main__"}  # `python -m hmmnlab`


def test_nothing_below_the_commands_imports_the_cli():
    graph = import_graph()
    importers = {module for module, imported in graph.items() if "hmmnlab.commands.cli" in imported}
    assert importers == CLI_IMPORTERS


#: The modules that may know argparse: the parsers, their shared option groups, the commands (below
#: hmmnlab/commands/) and the maintainers' script ``python -m hmmnlab.train.export`` (no hmmnlab
#: command: it bundles named weights).
ARGPARSE_MODULES = {"hmmnlab.commands.cli", "hmmnlab.commands.options", "hmmnlab.train.export"}


def test_the_library_holds_no_command_line_adapters():
    """A ``run(args)`` that reads an argparse Namespace lives in ``hmmnlab/commands/``; the modules
    it calls take plain arguments."""
    adapters = []
    for module, path in source_modules().items():
        if module in ARGPARSE_MODULES or module.startswith("hmmnlab.commands"):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import) and any(a.name == "argparse" for a in node.names):
                adapters.append(f"{module} imports argparse")
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                if any("Namespace" in ast.unparse(a.annotation or ast.Constant(None))
                       for a in node.args.args):  # fmt: skip
                    adapters.append(f"{module}.{node.name}")
    assert not adapters, f"command-line adapters outside hmmnlab/commands/: {adapters}"
