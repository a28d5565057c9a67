"""``python -m benchmarks --help`` names every benchmark script (no data needed, unlike test_benchmarks)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import run


def test_help_names_every_other_benchmark(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        run.main(["--help"])
    out = capsys.readouterr().out
    scripts = {path.stem for path in Path(run.__file__).parent.glob("*.py") if "def main(" in path.read_text()}
    assert scripts - {"run"}, "no benchmark script found"
    for name in sorted(scripts - {"run"}):
        assert f"\n  {name} " in out, f"python -m benchmarks --help does not name benchmarks.{name}"
