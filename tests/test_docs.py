"""The docs site builds, its reference pages match the code, and its Python snippets run.

- ``mkdocs build --strict`` succeeds: no broken link or anchor, every page is in the nav.
- ``docs/presets.md`` lists exactly ``PRESETS``; ``docs/cli.md`` documents every subcommand and
  option of the parser (and nothing the parser lacks); ``docs/configuration.md`` has a row for
  every constructor argument of the core classes and names every adapter setting.
- ``docs/evaluation.md`` quotes ``PUBLISHED_NDCG_AT_10`` and the README's measured table.
- The Python snippets of the home and configuration pages, and each framework page's
  quickstart, run on the tiny models (as ``tests/test_readme.py`` runs the README's).
"""

from __future__ import annotations

import argparse
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bge_integrations import BGEEmbedder, BGEReranker
from bge_integrations.cli import _parser
from bge_integrations.core.instructions import EN_QUERY_INSTRUCTION, ZH_QUERY_INSTRUCTION
from bge_integrations.core.presets import PRESETS
from bge_integrations.evaluation.published import PUBLISHED_NDCG_AT_10

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _page(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def _sections(text: str, level: int = 2) -> dict[str, str]:
    """Heading text to the text under it, up to the next heading of the same or a higher level."""
    pattern = re.compile(rf"^#{{1,{level}}} (.+)$", re.M)
    matches = list(pattern.finditer(text))
    return {
        match.group(1).strip(): text[match.end() : matches[i + 1].start() if i + 1 < len(matches) else len(text)]
        for i, match in enumerate(matches)
    }


def _tables(text: str) -> list[tuple[str, list[list[str]]]]:
    """Each Markdown table as (the line of text before it, its body rows as lists of cells)."""
    tables: list[tuple[str, list[list[str]]]] = []
    caption, rows, in_code = "", None, False
    for line in [*text.splitlines(), ""]:
        in_code ^= line.startswith("```")
        if not in_code and line.startswith("|"):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            if rows is None:
                rows = []
                tables.append((caption, rows))
                rows.append(cells)  # the header; dropped below with the separator
            elif not set("".join(cells)) <= set("-: "):
                rows.append(cells)
            continue
        rows = None
        if line.strip():
            caption = line.strip()
    return [(caption, body[1:]) for caption, body in tables]


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, re.S | re.M)


# --- the site builds --------------------------------------------------------------------------


def test_site_builds_strict(tmp_path: Path) -> None:
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site), "-f", "mkdocs.yml"]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "WARNING" not in output, output
    for page in DOCS.glob("*.md"):
        built = site / ("index.html" if page.stem == "index" else f"{page.stem}/index.html")
        assert built.is_file(), f"{page.name} was not built"
    assert "fonts.googleapis.com" not in (site / "index.html").read_text(encoding="utf-8")


# --- presets ----------------------------------------------------------------------------------

INSTRUCTION_LABELS = {"EN": EN_QUERY_INSTRUCTION, "ZH": ZH_QUERY_INSTRUCTION, "none": ""}


def test_presets_page_lists_exactly_the_presets() -> None:
    sections = _sections(_page("presets.md"))
    [(_, embedder_rows), (_, labels)] = _tables(sections["Embedders"])
    [(_, reranker_rows)] = _tables(sections["Rerankers"])
    documented_embedders = [
        (name.strip("`"), INSTRUCTION_LABELS[label], pooling, {"yes": True, "no": False}[norm], int(length), int(dim))
        for name, label, pooling, norm, length, dim in embedder_rows
    ]
    expected_embedders = [
        (p.name, p.query_instruction, p.pooling, p.normalize, p.max_length, p.dimension)
        for p in PRESETS
        if p.kind == "embedder"
    ]
    assert documented_embedders == expected_embedders
    documented_rerankers = [(name.strip("`"), int(length)) for name, length in reranker_rows]
    assert documented_rerankers == [(p.name, p.max_length) for p in PRESETS if p.kind == "reranker"]
    assert [label for label, _ in labels] == list(INSTRUCTION_LABELS)
    assert EN_QUERY_INSTRUCTION.strip() in labels[0][1]
    assert ZH_QUERY_INSTRUCTION in labels[1][1]


# --- the command line -------------------------------------------------------------------------


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = _parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _parser_arguments(parser: argparse.ArgumentParser) -> tuple[set[str], set[str]]:
    """Option strings (without -h/--help) and positional names (as written in the docs: DATA)."""
    actions = [a for a in parser._actions if not isinstance(a, argparse._HelpAction)]
    options = {string for action in actions for string in action.option_strings}
    positionals = {str(action.metavar or action.dest).upper() for action in actions if not action.option_strings}
    return options, positionals


def _documented_arguments() -> dict[str, tuple[set[str], set[str]]]:
    """Subcommand to the option strings and positional names in the first column of its table."""
    documented = {}
    for heading, body in _sections(_page("cli.md")).items():
        match = re.fullmatch(r"`([a-z][a-z-]*)`", heading)
        if not match:
            continue
        first_cells = [row[0] for _, rows in _tables(body) for row in rows]
        options = {o for cell in first_cells for o in re.findall(r"`(--?[A-Za-z][\w-]*)", cell)}
        positionals = {p for cell in first_cells for p in re.findall(r"`([A-Z][A-Z_]*)`", cell)}
        documented[match.group(1)] = (options, positionals)
    return documented


def test_cli_page_documents_every_subcommand_and_option() -> None:
    documented = _documented_arguments()
    for name, parser in _subcommands().items():
        assert name in documented, f"docs/cli.md has no section '## `{name}`'"
        options, positionals = _parser_arguments(parser)
        documented_options, documented_positionals = documented[name]
        assert options <= documented_options, (
            f"{name}: options missing from docs/cli.md: {options - documented_options}"
        )
        missing = positionals - documented_positionals
        assert not missing, f"{name}: positional arguments missing from docs/cli.md: {missing}"


def test_cli_page_documents_nothing_the_parser_lacks() -> None:
    subcommands = _subcommands()
    for name, (documented_options, documented_positionals) in _documented_arguments().items():
        assert name in subcommands, f"docs/cli.md documents `{name}`, which the parser lacks"
        options, positionals = _parser_arguments(subcommands[name])
        stale = documented_options - options
        assert not stale, f"{name}: docs/cli.md documents options the parser lacks: {stale}"
        stale = documented_positionals - positionals
        assert not stale, f"{name}: docs/cli.md documents positional arguments the parser lacks: {stale}"


# --- configuration ----------------------------------------------------------------------------


def _init_parameters(cls: type) -> set[str]:
    parameters = inspect.signature(cls.__init__).parameters.values()
    return {p.name for p in parameters if p.name != "self" and p.kind is not inspect.Parameter.VAR_KEYWORD}


@pytest.mark.parametrize(("heading", "cls"), [("Embedder settings", BGEEmbedder), ("Reranker settings", BGEReranker)])
def test_configuration_table_has_a_row_per_core_argument(heading: str, cls: type) -> None:
    _, rows = _tables(_sections(_page("configuration.md"))[heading])[0]
    assert {row[0].strip("`") for row in rows} == _init_parameters(cls)


def _own_fields(cls: type, framework_base: type) -> set[str]:
    """The pydantic fields this package declares (or re-declares), not the framework base's own."""
    declared = {
        name
        for klass in cls.__mro__
        if klass.__module__.startswith("bge_integrations")
        for name in vars(klass).get("__annotations__", {})
    }
    return {name for name in cls.model_fields if name not in framework_base.model_fields or name in declared}


def _adapter_settings() -> list[tuple[str, set[str]]]:
    from langchain_core.documents import BaseDocumentCompressor
    from llama_index.core.base.embeddings.base import BaseEmbedding
    from llama_index.core.postprocessor.types import BaseNodePostprocessor
    from pydantic import BaseModel

    from bge_integrations import haystack, langchain, llama_index

    return [
        ("langchain.BGEEmbeddings", _own_fields(langchain.BGEEmbeddings, BaseModel)),
        ("langchain.BGERerank", _own_fields(langchain.BGERerank, BaseDocumentCompressor)),
        ("langchain.BGECrossEncoder", _own_fields(langchain.BGECrossEncoder, BaseModel)),
        ("llama_index.BGEEmbedding", _own_fields(llama_index.BGEEmbedding, BaseEmbedding)),
        ("llama_index.BGEEmbedding()", _init_parameters(llama_index.BGEEmbedding)),
        ("llama_index.BGERerank", _own_fields(llama_index.BGERerank, BaseNodePostprocessor)),
        ("haystack.BGETextEmbedder", _init_parameters(haystack.BGETextEmbedder)),
        ("haystack.BGEDocumentEmbedder", _init_parameters(haystack.BGEDocumentEmbedder)),
        ("haystack.BGERanker", _init_parameters(haystack.BGERanker)),
    ]


def test_configuration_page_names_every_adapter_setting() -> None:
    text = _page("configuration.md")
    for name, settings in _adapter_settings():
        missing = {setting for setting in settings if f"`{setting}`" not in text}
        assert not missing, f"{name}: settings missing from docs/configuration.md: {missing}"


def test_core_page_bge_m3_snippet_runs(tiny_m3_path: str, capsys: pytest.CaptureFixture[str]) -> None:
    (code,) = _python_blocks(_sections(_page("core.md"))["bge-m3: dense, sparse and ColBERT"])
    code = code.replace("BAAI/bge-m3", tiny_m3_path)
    assert "BAAI/" not in code
    exec(compile(code, "core.md bge-m3", "exec"), {"__name__": "docs"})
    assert capsys.readouterr().out.strip()


def test_llm_rerankers_page_snippet_runs(tiny_llm_gemma_path: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = _python_blocks(_sections(_page("llm_rerankers.md"))["Use"])[0]
    code = code.replace("BAAI/bge-reranker-v2-gemma", tiny_llm_gemma_path)
    assert "BAAI/" not in code
    exec(compile(code, "llm_rerankers.md Use", "exec"), {"__name__": "docs"})
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    assert all(0.0 <= float(line.split()[0]) <= 1.0 for line in lines)


# --- evaluation -------------------------------------------------------------------------------


def test_published_figures_match_the_package() -> None:
    section = _sections(_page("evaluation.md"))["Published BGE v1.5 figures"]
    documented: dict[str, dict[str, float]] = {}
    for caption, rows in _tables(section):
        collection = caption.rstrip(":").lower()
        for model, ndcg, *_ in rows:
            documented.setdefault(model.removeprefix("BAAI/"), {})[collection] = float(ndcg)
    assert documented == {name: scores for name, scores in PUBLISHED_NDCG_AT_10.items() if name.startswith("bge-")}


def _measured_table(text: str) -> list[list[str]]:
    header = "| collection | path | nDCG@10 | published | seconds |"
    [rows] = [rows for _, rows in _tables(text[text.index(header) :])[:1]]
    return rows


def test_measured_table_is_the_readmes_and_quotes_the_published_scores() -> None:
    rows = _measured_table(_page("evaluation.md"))
    assert rows == _measured_table((ROOT / "README.md").read_text(encoding="utf-8"))
    published = PUBLISHED_NDCG_AT_10["all-MiniLM-L6-v2"]
    assert {(collection, float(score)) for collection, _, _, score, _ in rows} == {
        ("SciFact", published["scifact"]),
        ("NFCorpus", published["nfcorpus"]),
    }


# --- snippets ---------------------------------------------------------------------------------

FRAMEWORK_PAGES = ("langchain.md", "llama_index.md", "haystack.md")


def _runnable_snippets() -> list[tuple[str, str]]:
    snippets = [
        (f"{page} snippet {i}", code)
        for page in ("index.md", "configuration.md")
        for i, code in enumerate(_python_blocks(_page(page)))
    ]
    for page in FRAMEWORK_PAGES:
        quickstart = _python_blocks(_sections(_page(page)).get("Quickstart", ""))
        snippets.append((f"{page} quickstart", quickstart[0] if quickstart else ""))
    return snippets


SNIPPETS = _runnable_snippets()


@pytest.mark.filterwarnings("ignore::bge_integrations.TruncationWarning")  # the windows=False snippet shows one
@pytest.mark.parametrize(("name", "code"), SNIPPETS, ids=[name for name, _ in SNIPPETS])
def test_docs_snippet_runs(
    name: str, code: str, tiny_embedder_path: str, tiny_reranker_path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert code, f"{name}: no Python block"
    code = re.sub(r"BAAI/bge-reranker[\w.-]*", tiny_reranker_path, code)
    code = re.sub(r"BAAI/bge-[\w.-]+", tiny_embedder_path, code)
    exec(compile(code, name, "exec"), {"__name__": "docs"})
    if "print(" in code:
        assert capsys.readouterr().out.strip()
