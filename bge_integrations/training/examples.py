"""Training examples in FlagEmbedding's JSONL format: read, write, and build from a BEIR collection.

One JSON object per line, the format FlagEmbedding's fine-tuning scripts read::

    {"query": str, "pos": [str, ...], "neg": [str, ...]}

with the optional fields ``"pos_scores"`` and ``"neg_scores"`` (teacher scores for distillation,
one per text), ``"prompt"`` (an instruction for this example) and ``"type"`` (FlagEmbedding's
task type, e.g. ``"symmetric_class"``), all kept through :func:`read_examples` and
:func:`write_examples`. Files ending in ``.gz`` are gzip-compressed.
"""

from __future__ import annotations

import gzip
import io
import json
import math
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from bge_integrations.core.notices import warn_user
from bge_integrations.core.validation import valid_unicode
from bge_integrations.evaluation.beir import RetrievalDataset, load_beir

_FIELDS = ("query", "pos", "neg", "pos_scores", "neg_scores", "prompt", "type")
"""The keys of the format, in FlagEmbedding's order (the order :meth:`TrainingExample.to_dict` writes)."""


@dataclass(frozen=True)
class TrainingExample:
    """One query with its relevant (``pos``) and non-relevant (``neg``) texts.

    Checked when made: texts are strings (lone surrogates become U+FFFD), ``pos`` holds at
    least one text, and each score list has one number per text of its list. Tuples are
    stored as lists.

    Args:
        query: The query, without instruction (the trainer adds it).
        pos: Relevant texts, at least one.
        neg: Non-relevant texts (hard negatives), e.g. from
            :func:`~bge_integrations.training.mining.mine_hard_negatives`.
        pos_scores: A teacher's score per ``pos`` text (FlagEmbedding's distillation field).
        neg_scores: A teacher's score per ``neg`` text.
        prompt: An instruction for this example only.
        type: FlagEmbedding's task type of this example.

    Raises:
        TypeError: If a field has the wrong type (named, e.g. ``pos[1]``).
        ValueError: If ``pos`` is empty, or a score list does not match its texts in length.

    Example:
        >>> example = TrainingExample("what is BGE?", ["BGE is an embedding model."], neg=["Pandas eat bamboo."])
        >>> example.to_dict()
        {'query': 'what is BGE?', 'pos': ['BGE is an embedding model.'], 'neg': ['Pandas eat bamboo.']}
        >>> TrainingExample("q", [])
        Traceback (most recent call last):
        ...
        ValueError: pos must hold at least one text, got []

    """

    query: str
    pos: list[str]
    neg: list[str] = field(default_factory=list)
    pos_scores: list[float] | None = None
    neg_scores: list[float] | None = None
    prompt: str | None = None
    type: str | None = None

    def __post_init__(self) -> None:
        set_field = object.__setattr__
        set_field(self, "query", _text(self.query, "query"))
        set_field(self, "pos", _texts(self.pos, "pos"))
        if not self.pos:
            msg = f"pos must hold at least one text, got {self.pos!r}"
            raise ValueError(msg)
        set_field(self, "neg", _texts(self.neg, "neg"))
        for name, texts in (("pos_scores", self.pos), ("neg_scores", self.neg)):
            scores = getattr(self, name)
            if scores is not None:
                set_field(self, name, _scores(scores, name, texts))
        for name in ("prompt", "type"):
            value = getattr(self, name)
            if value is not None:
                set_field(self, name, _text(value, name))

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of this example: query, pos and neg, then the optional fields that are set.

        Example:
            >>> TrainingExample("q", ["p"], pos_scores=[0.9], prompt="Find: ").to_dict()
            {'query': 'q', 'pos': ['p'], 'neg': [], 'pos_scores': [0.9], 'prompt': 'Find: '}

        """
        record: dict[str, Any] = {"query": self.query, "pos": list(self.pos), "neg": list(self.neg)}
        for name in _FIELDS[3:]:
            value = getattr(self, name)
            if value is not None:
                record[name] = list(value) if isinstance(value, list) else value
        return record


def read_examples(path: str | os.PathLike[str]) -> list[TrainingExample]:
    """Read training examples from a JSONL file (``.gz``: gzip-compressed), in file order.

    Blank lines are skipped; keys outside the format are ignored. ``"neg"`` may be missing
    (an empty list, as before mining); the optional fields may be missing or null.

    Raises:
        FileNotFoundError: If there is no such file.
        ValueError / TypeError: For a line that is not a JSON object, lacks ``"query"`` or
            ``"pos"``, or has a bad field; the message starts with ``file:line:`` and names the field.

    Example:
        >>> import pathlib, tempfile
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> path = write_examples([TrainingExample("q", ["p"], neg=["n"])], folder / "train.jsonl")
        >>> read_examples(path)
        [TrainingExample(query='q', pos=['p'], neg=['n'], pos_scores=None, neg_scores=None, prompt=None, type=None)]

    """
    source = Path(path)
    examples: list[TrainingExample] = []
    with gzip.open(source, "rb") if source.suffix == ".gz" else source.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                msg = f"{source}:{number}: not UTF-8 text ({exc.reason} at byte {exc.start + 1})"
                raise ValueError(msg) from None
            if line.strip():
                examples.append(_parse_line(line, f"{source}:{number}"))
    return examples


def write_examples(examples: Iterable[TrainingExample], path: str | os.PathLike[str]) -> Path:
    """Write examples as JSONL (``.gz``: gzip-compressed), one object per line, UTF-8 as is.

    Missing parent folders are made; an existing file is replaced. A ``.gz`` file records no
    time stamp, so the same examples always give the same bytes.

    Returns:
        The path written.

    Raises:
        TypeError: If an item is not a :class:`TrainingExample` (named by index).

    Example:
        >>> import pathlib, tempfile
        >>> path = write_examples([TrainingExample("q", ["p"])], pathlib.Path(tempfile.mkdtemp()) / "train.jsonl.gz")
        >>> path.name, read_examples(path)[0].pos
        ('train.jsonl.gz', ['p'])

    """
    items = list(examples)
    for index, example in enumerate(items):
        if not isinstance(example, TrainingExample):
            msg = f"examples[{index}] must be a TrainingExample, got {type(example).__name__}: {example!r:.80}"
            raise TypeError(msg)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with _writer(target) as handle:
        for example in items:
            handle.write(json.dumps(example.to_dict(), ensure_ascii=False) + "\n")
    return target


def examples_from_beir(
    data: str | os.PathLike[str] | RetrievalDataset, *, min_grade: int = 1
) -> tuple[list[TrainingExample], list[str]]:
    """Training examples from a BEIR collection's judgements, and its corpus texts.

    One example per judged query that has at least one document graded ``min_grade`` or
    higher, in query order: ``pos`` = those documents' texts (title + text, as
    :func:`~bge_integrations.evaluation.beir.load_beir` reads them) in qrels order,
    ``neg`` = [] (mine them with
    :func:`~bge_integrations.training.mining.mine_hard_negatives`, the corpus texts as candidates).

    Args:
        data: A collection folder (read with ``load_beir(folder)``: the ``test`` qrels, all
            queries), or a :class:`RetrievalDataset` from ``load_beir`` (for another split or
            half: ``load_beir(folder, split="train")``, ``load_beir(folder, query_lines="odd")``).
        min_grade: The lowest grade that makes a document relevant.

    Returns:
        The examples, and the corpus texts in corpus order.

    Raises:
        ValueError: If min_grade is not a positive int.

    Warns:
        UserWarning: Naming how many judged queries have no document graded ``min_grade`` or
            higher (they get no example), and how many judged documents are not in the corpus.

    Example:
        >>> examples, corpus = examples_from_beir(load_beir("scifact", query_lines="odd"))  # doctest: +SKIP
        >>> len(examples), len(corpus)  # doctest: +SKIP
        (150, 5183)

    """
    if isinstance(min_grade, bool) or not isinstance(min_grade, int) or min_grade < 1:
        msg = f"min_grade must be an int >= 1, got {min_grade!r}"
        raise ValueError(msg)
    if isinstance(data, RetrievalDataset):
        dataset = data
    elif isinstance(data, (str, os.PathLike)):
        dataset = load_beir(Path(data))
    else:
        msg = f"data must be a BEIR folder or a RetrievalDataset, got {type(data).__name__}: {data!r:.80}"
        raise TypeError(msg)
    text_of = dict(zip(dataset.doc_ids, dataset.doc_texts, strict=True))
    examples: list[TrainingExample] = []
    without: list[str] = []
    unknown: set[str] = set()
    for query_id, query in dataset.queries.items():
        relevant = [doc for doc, grade in dataset.qrels.get(query_id, {}).items() if grade >= min_grade]
        unknown.update(doc for doc in relevant if doc not in text_of)
        texts = list(dict.fromkeys(text_of[doc] for doc in relevant if doc in text_of))
        if texts:
            examples.append(TrainingExample(query, texts))
        else:
            without.append(query_id)
    if without:
        warn_user(
            f"{len(without)} of {len(dataset.queries)} judged queries of {dataset.name!r} have no document "
            f"graded >= {min_grade} and got no training example, e.g. {without[:3]}",
            UserWarning,
        )
    if unknown:
        warn_user(
            f"{len(unknown)} judged documents of {dataset.name!r} are not in the corpus and were skipped, "
            f"e.g. {sorted(unknown)[:3]}",
            UserWarning,
        )
    return examples, list(dataset.doc_texts)


def _parse_line(line: str, where: str) -> TrainingExample:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        msg = f"{where}: not valid JSON ({exc.msg} at column {exc.colno})"
        raise ValueError(msg) from None
    if not isinstance(record, dict):
        msg = f"{where}: must be a JSON object, got {type(record).__name__}: {line.strip()!r:.80}"
        raise ValueError(msg)
    for name in ("query", "pos"):
        if name not in record:
            msg = f'{where}: missing field "{name}"'
            raise ValueError(msg)
    fields = {name: record[name] for name in _FIELDS if record.get(name) is not None}
    fields.setdefault("neg", [])
    try:
        return TrainingExample(**fields)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{where}: {exc}") from None


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str):
        msg = f"{name} must be a string, got {type(value).__name__}: {value!r:.80}"
        raise TypeError(msg)
    return valid_unicode(value)


def _texts(value: Any, name: str) -> list[str]:
    if not isinstance(value, (list, tuple)):
        msg = f"{name} must be a list of strings, got {type(value).__name__}: {value!r:.80}"
        raise TypeError(msg)
    return [_text(item, f"{name}[{index}]") for index, item in enumerate(value)]


def _scores(value: Any, name: str, texts: list[str]) -> list[float]:
    if not isinstance(value, (list, tuple)):
        msg = f"{name} must be a list of numbers, got {type(value).__name__}: {value!r:.80}"
        raise TypeError(msg)
    scores: list[float] = []
    for index, item in enumerate(value):
        if isinstance(item, bool) or not isinstance(item, (int, float)):
            msg = f"{name}[{index}] must be a number, got {type(item).__name__}: {item!r:.80}"
            raise TypeError(msg)
        if not math.isfinite(item):
            msg = f"{name}[{index}] must be a finite number, got {item!r}"
            raise ValueError(msg)
        scores.append(float(item))
    if len(scores) != len(texts):
        texts_name = name.removesuffix("_scores")
        msg = f"{name} must hold one score per {texts_name} text ({len(texts)}), got {len(scores)}: {scores!r:.80}"
        raise ValueError(msg)
    return scores


@contextmanager
def _writer(path: Path) -> Iterator[IO[str]]:
    """A UTF-8 text handle writing path, through gzip (no time stamp) when its name ends in ``.gz``."""
    if path.suffix != ".gz":
        with path.open("w", encoding="utf-8", newline="\n") as handle:
            yield handle
        return
    with gzip.GzipFile(path, "wb", mtime=0) as binary, io.TextIOWrapper(binary, encoding="utf-8", newline="\n") as text:
        yield text


__all__ = ["TrainingExample", "examples_from_beir", "read_examples", "write_examples"]
