"""The scale-out modules import what they need and say what to install when it is missing."""

from __future__ import annotations

import subprocess
import sys

import pytest


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)


def test_bulk_and_its_local_engine_do_not_import_ray() -> None:
    result = _run(
        "import sys, bge_integrations.bulk\n"
        "from bge_integrations.bulk import LocalEngine, embed_file\n"
        "print('ray' in sys.modules)\n"
    )
    assert result.stdout.strip() == "False", result.stderr


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
