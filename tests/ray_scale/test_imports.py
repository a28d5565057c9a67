"""The scale-out modules import what they need and say what to install when it is missing.

Layering: ``bge_integrations.ray`` builds on ``bge_integrations.bulk`` (its public API), never the
reverse: bulk takes engine objects and the caller (or the CLI's ``--engine ray``) brings a RayEngine.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import bge_integrations

PACKAGE = Path(bge_integrations.__file__).resolve().parent


def _run(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=False)


def test_bulk_and_its_local_engine_do_not_import_ray() -> None:
    result = _run(
        "import sys, bge_integrations.bulk\n"
        "from bge_integrations.bulk import LocalEngine, embed_file\n"
        "print('ray' in sys.modules)\n"
    )
    assert result.stdout.strip() == "False", result.stderr


def test_embed_file_runs_and_refuses_engine_ray_without_importing_ray(tmp_path: Path, tiny_embedder_path: str) -> None:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"id": 1, "text": "one"}\n{"id": 2, "text": "two"}\n', encoding="utf-8")
    code = (
        "import sys\n"
        "from bge_integrations.bulk import embed_file\n"
        "corpus, out, model = sys.argv[1:]\n"
        "print(embed_file(corpus, out, model=model, device='cpu').parts_written)\n"
        "try:\n"
        "    embed_file(corpus, out, model=model, engine='ray')\n"
        "except ValueError as exc:\n"
        "    print(str(exc).split(':')[0])\n"
        "ours = ('ray.', 'bge_integrations.ray')\n"
        "print(sorted(name for name in sys.modules if name == 'ray' or name.startswith(ours)))\n"
    )
    result = _run(code, str(corpus), str(tmp_path / "out"), tiny_embedder_path)

    assert result.stdout.splitlines() == [
        "1",
        "engine='ray' is no longer accepted, since bge_integrations.bulk does not import Ray",
        "[]",
    ], result.stderr


def test_bge_integrations_ray_is_ray_inside() -> None:
    result = _run("import bge_integrations.ray as ours, ray\nprint(ray.__name__, ours.__name__, ray.data.Dataset)")
    assert result.stdout.split()[:2] == ["ray", "bge_integrations.ray"], result.stderr


EXTRA = 'pip install "bge-integrations[ray]"'


@pytest.mark.parametrize(
    ("module", "missing", "hint"),
    [
        ("bge_integrations.ray", "ray", f"bge_integrations.ray needs Ray Data: {EXTRA}"),
        ("bge_integrations.bulk", "pyarrow", f"bge_integrations.bulk needs pyarrow: {EXTRA}"),
    ],
)
def test_a_missing_dependency_names_the_extra(module: str, missing: str, hint: str) -> None:
    result = _run(f"import sys\nsys.modules[{missing!r}] = None\nimport {module}")
    assert result.returncode != 0
    assert f"ImportError: {hint}" in result.stderr


# --- the import graph, read from the source (every import statement, wherever it sits) ---------------


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[tuple[str, str]]:
    """(module, name) for each import in the file: top level, in functions or under TYPE_CHECKING alike.

    ``import a.b`` gives ("a.b", ""); ``from a import b`` gives ("a", "b"), relative imports resolved;
    ``importlib.import_module("a")`` and ``__import__("a")`` with a literal give ("a", "").
    """
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[tuple[str, str]] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update((alias.name, "") for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            found.update((target, alias.name) for alias in node.names)
        elif isinstance(node, ast.Call):
            function = getattr(node.func, "attr", None) or getattr(node.func, "id", None)
            first = node.args[0] if node.args else None
            if function in {"import_module", "__import__"} and isinstance(first, ast.Constant):
                found.add((str(first.value), ""))
    return found


MODULES = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _edges(module: str) -> set[str]:
    """The modules of the package (and third-party top-level names) that importing `module` runs."""
    targets: set[str] = set()
    for target, name in _imports(MODULES[module]):
        for candidate in (f"{target}.{name}", target):
            if candidate in MODULES:
                targets.add(candidate)
                break
        else:
            targets.add(target.split(".")[0])  # third party: its top-level name
    return targets


def _reachable(start: set[str]) -> set[str]:
    seen, todo = set(start), list(start)
    while todo:
        module = todo.pop()
        if module not in MODULES:
            continue  # third party: not followed
        for target in _edges(module) - seen:
            seen.add(target)
            todo.append(target)
    return seen


BULK = {name for name in MODULES if name == "bge_integrations.bulk" or name.startswith("bge_integrations.bulk.")}
RAY = {name for name in MODULES if name == "bge_integrations.ray" or name.startswith("bge_integrations.ray.")}


def test_no_bulk_module_imports_ray_even_through_another_module() -> None:
    assert {"bge_integrations.bulk", "bge_integrations.bulk.files", "bge_integrations.bulk.engines"} <= BULK
    reached = _reachable(BULK)

    assert "bge_integrations.core.embedder" in reached  # the graph is read: bulk does reach the core
    assert not reached & RAY, f"bge_integrations.bulk imports {sorted(reached & RAY)}"
    assert "ray" not in reached, "bge_integrations.bulk imports Ray"


def test_ray_builds_on_the_public_bulk_api_only() -> None:
    for module in sorted(RAY):
        into_bulk = {(t, n) for t, n in _imports(MODULES[module]) if t.startswith("bge_integrations.bulk")}
        assert {t for t, _ in into_bulk} <= {"bge_integrations.bulk"}, f"{module} imports bulk's submodules"
        assert not [n for _, n in into_bulk if n.startswith("_")], f"{module} imports bulk's private names"
    assert ("bge_integrations.bulk", "BatchJob") in _imports(MODULES["bge_integrations.ray.engine"])
    assert "bge_integrations.bulk" in _reachable(RAY)  # ray depends on bulk: one direction, no cycle
