"""The house's rules, checked on the source: the flow's direction, no circles, light planning."""

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from fer3d_bench.cli import COMMANDS, main
from fer3d_bench.evaluation.launchers import LAUNCHERS
from fer3d_bench.render.backends import BACKENDS
from fer3d_bench.sources import SOURCES
from fer3d_bench.train.config import ABLATIONS, PRESETS

PACKAGE = Path(__file__).parents[1] / "fer3d_bench"
# room -> rooms it must never import: producers never import their consumers
NEVER = {
    "formats": ("sources", "render", "dataset", "train", "evaluation", "report", "pipeline"),
    "sources": (
        "render",
        "dataset",
        "splits",
        "train",
        "evaluation",
        "report",
        "pipeline",
        "compare",
    ),
    "render": ("dataset", "train", "evaluation", "report", "pipeline"),
    "dataset": ("splits", "manifests", "train", "evaluation", "report", "pipeline"),
    # splits deal names: no dataset file, no training, nothing that consumes manifests
    "splits": (
        "dataset",
        "manifests",
        "train",
        "evaluation",
        "report",
        "pipeline",
        "tune",
        "compare",
    ),
    "manifests": ("train", "evaluation", "report", "pipeline", "tune", "folds", "cli"),
    "records": ("train", "evaluation", "report", "pipeline", "render", "dataset", "compare"),
    "train": ("splits", "manifests", "evaluation", "report", "pipeline", "tune", "folds"),
    "evaluation": ("report", "pipeline", "cli", "tune", "folds"),
    "report": ("evaluation", "train", "pipeline", "compare", "leaderboard"),
    # comparisons and the leaderboard read finished runs: they never train or plan
    "compare": ("evaluation", "train", "pipeline", "cli", "tune", "folds", "leaderboard"),
    "leaderboard": ("evaluation", "train", "pipeline", "cli", "tune", "folds"),
    "weights": ("train", "evaluation", "report", "pipeline", "cli"),
    "experiments": ("evaluation", "pipeline", "cli"),
    "explain": ("evaluation", "pipeline", "cli", "report"),
    "pipeline": ("cli",),
    # folds and tune use the public rooms (manifests, train), never evaluation's internals
    "tune": ("evaluation", "report", "pipeline", "cli"),
    "folds": ("evaluation", "report", "pipeline", "cli", "tune", "explain", "experiments"),
    # the generator and the readers must not share format code (a shared wrong guess passes)
    "synthetic": ("formats", "sources", "render", "dataset", "splits", "train", "evaluation"),
}


def _modules() -> dict[str, Path]:
    names = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def _imports(path: Path, modules: dict) -> list[tuple[str, int, bool]]:
    """(imported fer3d_bench module, line, inside a function) for every import statement, and
    for every module a command loads when it runs (`importlib.import_module("fer3d_bench...")`,
    or a "module:attribute" entry of the command registry): those are dependencies too, loaded
    late on purpose, so they count for the layering and not as function-local imports."""
    tree = ast.parse(path.read_text())
    local = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            local |= {id(sub) for sub in ast.walk(node)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):  # the registry's
            late = re.fullmatch(r"(fer3d_bench(?:\.\w+)+):\w+", node.value)
            if late and late.group(1) in modules:
                found.append((late.group(1), node.lineno, False))
            continue
        if _loads_module(node) and node.args[0].value in modules:
            found.append((node.args[0].value, node.lineno, False))
            continue
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            targets = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
            targets = [t for t in targets if t in modules][:1] or [node.module]
        else:
            continue
        found += [(t, node.lineno, id(node) in local) for t in targets]
    return found


def _loads_module(node) -> bool:
    """Whether `node` is `importlib.import_module("...")` (or `import_module("...")`)."""
    if not isinstance(node, ast.Call) or not node.args:
        return False
    name = getattr(node.func, "attr", getattr(node.func, "id", None))
    first = node.args[0]
    return (
        name == "import_module" and isinstance(first, ast.Constant) and isinstance(first.value, str)
    )


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {
        name: {t for t, _, _ in _imports(path, modules) if t in modules and t != name}
        for name, path in modules.items()
    }


def test_no_room_imports_its_consumers():
    wrong = []
    for name, targets in _graph().items():
        room = name.split(".")[1] if "." in name else ""
        for target in targets:
            other = target.split(".")[1] if "." in target else ""
            if other in NEVER.get(room, ()):
                wrong.append(f"{name} imports {target}")
    assert wrong == []


def test_no_import_circle():
    graph, state, circles = _graph(), {}, []

    def visit(node, stack):
        state[node] = "open"
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                circles.append(" -> ".join([*stack[stack.index(target) :], target]))
            elif target not in state:
                visit(target, [*stack, target])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert circles == []


def test_no_function_local_imports_but_the_renderers_ordered_ones():
    """Dependencies stand at the top of each module; only the backends load pyrender (and
    OpenGL's functions, which pyrender loads) and open3d when a renderer is built, after triton
    (backends.py says why the order matters)."""
    modules = _modules()
    local = sorted(
        f"{path.relative_to(PACKAGE.parent)}:{line} imports {target}"
        for path in modules.values()
        for target, line, inside in _imports(path, modules)
        if inside
    )
    assert [entry.split(":")[0] for entry in local] == ["fer3d_bench/render/backends.py"] * 3
    assert {entry.split(" imports ")[1] for entry in local} == {"pyrender", "OpenGL", "open3d"}


@pytest.mark.parametrize(
    "module",
    [
        "fer3d_bench.evaluation.plan",
        "fer3d_bench.evaluation.slurm",
        "fer3d_bench.splits",
        "fer3d_bench.manifests",
        "fer3d_bench.records.job",
        "fer3d_bench.train.environment",
        "fer3d_bench.weights.request",
        "fer3d_bench.folds",
        "fer3d_bench.dataset.statistics",
        "fer3d_bench.report",
        "fer3d_bench.records.run",
        "fer3d_bench.train.config",
        "fer3d_bench.weights.known",
        "fer3d_bench.pipeline.splits",
        "fer3d_bench.cli.splits",
        "fer3d_bench.cli.report",
        "fer3d_bench.compare",
        "fer3d_bench.cli.compare",
        "fer3d_bench.leaderboard",
        "fer3d_bench.cli.leaderboard",
    ],
)
def test_planning_reporting_and_splits_never_import_torch(module):
    code = f"import sys, {module}; print(sorted(m for m in ('torch', 'timm') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_cli_choices_come_from_the_registries():
    def choices(command: list[str], option: str) -> list[str]:
        context = main.make_context("fer3d-bench", [*command[:1], "--help"], resilient_parsing=True)
        cmd = main.get_command(context, command[0])
        for name in command[1:]:
            cmd = cmd.get_command(context, name)
        (param,) = [p for p in cmd.params if option in p.opts]
        return list(param.type.choices)

    assert choices(["scan"], "--dataset") == list(SOURCES)
    assert choices(["render-depth"], "--backend") == list(BACKENDS)
    assert choices(["build-dataset"], "--backend") == list(BACKENDS)
    for command in ("train", "evaluate"):
        assert choices([command], "--preset") == list(PRESETS)
        assert choices([command], "--ablation") == list(ABLATIONS)
    assert choices(["evaluate"], "--launcher") == list(LAUNCHERS)
    build = main.get_command(None, "build-dataset")
    assert {f"--{name}" for name in SOURCES} <= {o for p in build.params for o in p.opts}


def test_every_command_loads_and_is_listed_in_the_flow_order():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0, result.output
    listed = [line.split()[0] for line in result.output.split("Commands:")[1].splitlines() if line]
    assert listed == list(COMMANDS)


def test_modules_a_command_loads_when_it_runs_count_as_imports():
    """The registry's "module:command" entries and `importlib.import_module` calls are edges of
    the graph, so the layering rules above hold for them too."""
    graph = _graph()
    assert "fer3d_bench.cli.evaluation" in graph["fer3d_bench.cli"]
    assert {"fer3d_bench.tune.study", "fer3d_bench.tune.storage"} <= graph["fer3d_bench.cli.tune"]


def test_every_module_imports():
    """A name moved between rooms and imported from its old one fails here, not in a user's
    hands: every module of the package is imported (in a process of its own)."""
    code = (
        "import importlib, pkgutil, fer3d_bench\n"
        "for m in pkgutil.walk_packages(fer3d_bench.__path__, 'fer3d_bench.'):\n"
        "    if not m.name.endswith('__main__'):\n"
        "        importlib.import_module(m.name)\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
