"""embed_file: a corpus file in, a folder of Parquet parts out; an interrupted run resumes.

Input: JSON Lines (``.jsonl``, ``.ndjson``, ``.json``, each optionally ``.gz``), one object per
line, or Parquet (``.parquet``, ``.pq``); the id and the text are read from ``id_field`` and
``text_field``. Output: a folder holding ``part-00000.parquet``, ``part-00001.parquet``, ...
(``part_size`` input rows each, in input order) with the columns ``id`` and ``embedding``
(``fixed_size_list<float32>[dimension]``), and ``error`` with ``on_bad_rows="report"``; plus
``_manifest.json``, which records the settings, the input's SHA-256 and the finished parts.
With a bge-m3 and ``outputs`` naming ``"sparse"`` or ``"colbert"``, the parts hold
``sparse_indices`` (``list<int32>``) and ``sparse_values`` (``list<float32>``), and ``colbert``
(``list<fixed_size_list<float32>[dim]>``), after ``embedding`` (left out unless ``"dense"`` is asked).
Each part's Parquet key-value metadata (key ``bge_integrations``) records the model, its
effective settings and where the part comes from. Readers skip names that start with ``_`` or
``.``, so ``pyarrow.parquet.read_table(folder)``, ``pandas.read_parquet(folder)`` and
``ray.data.read_parquet(folder)`` read exactly the vectors.

Every part is written to a temporary file and renamed into place, then the manifest is
replaced the same way: a run stopped at any moment leaves whole parts only. A rerun with the
same settings skips the finished parts and writes the others, so its result is the result
of an uninterrupted run; a rerun with other settings, or on a changed input, is refused.
One run at a time per output folder.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import os
import re
import time
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal, get_args

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bge_integrations.bulk.batches import (
    COLBERT_COLUMN,
    DENSE_ONLY,
    FIELD_METADATA_KEY,
    SPARSE_COLUMNS,
    BadRow,
    BadRowsError,
    EmbedBatch,
    OnBadRows,
    Role,
    check_choice,
    check_column_name,
    text_problem,
)
from bge_integrations.bulk.engines import BatchJob, Engine, LocalEngine
from bge_integrations.core.cache import is_model_folder, model_fingerprint
from bge_integrations.core.m3_model import COLBERT_HEAD, SPARSE_HEAD, MissingHeadError
from bge_integrations.core.m3_types import M3Output, check_outputs
from bge_integrations.core.progress import progress_bar
from bge_integrations.core.validation import check_positive_int, valid_unicode

EngineName = Literal["local", "ray"]
"""Former string engines of :func:`embed_file`, kept for imports: it takes an :class:`Engine` object now."""
MANIFEST = "_manifest.json"
FORMAT = 1
METADATA_KEY = b"bge_integrations"
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
PARQUET_SUFFIXES = (".parquet", ".pq")
RESULT_NEUTRAL_SETTINGS = frozenset(
    {"device", "batch_size", "max_batch_tokens", "show_progress_bar", "cache_dir", "backend_dir", "token"}
)
"""Embedder settings that do not change the vectors: a run may resume with other values."""
DEFAULT_ENGINE = {"backend": ("torch",), "backend_precision": (None, "fp32")}
"""Engine settings whose values here mean what leaving them out means: not recorded, so a run that
spells the default out (``--backend torch``) resumes one that did not, and the other way round."""
_TEMPORARY = re.compile(r"\.(?:_manifest\.json|part-\d{5,}\.parquet)\.\d+\.tmp")
"""What :func:`_write_part` and :func:`_write_manifest` write before renaming: ``.NAME.PID.tmp``."""
MAX_LINE_CHARS = 2**26
"""Longest JSON Lines line read by default, in characters (64 Mi): see ``embed_file(max_line_chars=)``."""
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_UNDECODED_BYTE = re.compile("[\udc80-\udcff]")
"""What ``errors="surrogateescape"`` makes of a byte that is not UTF-8."""


@dataclass(frozen=True)
class EmbedFileResult:
    """What :func:`embed_file` did.

    Args:
        output: The output folder.
        rows: Rows in the input (bad ones included).
        parts: Parts in the output.
        parts_written: Parts this run computed and wrote.
        parts_skipped: Parts found finished and kept.
        dimension: Width of the vectors (None when no part was written yet).
        bad_rows: Rows kept with a null vector (``on_bad_rows="report"``), in input order.
        seconds: Wall time of the run.
        outputs: The outputs written (``("dense",)`` unless bge-m3's were asked for).

    Example:
        >>> result = embed_file("corpus.jsonl", "vectors/", model="BAAI/bge-small-en-v1.5")  # doctest: +SKIP
        >>> f"{result.parts_written} parts written, {result.parts_skipped} kept from an earlier run"  # doctest: +SKIP
        '3 parts written, 2 kept from an earlier run'

    """

    output: Path
    rows: int
    parts: int
    parts_written: int
    parts_skipped: int
    dimension: int | None
    bad_rows: list[BadRow] = field(default_factory=list)
    seconds: float = 0.0
    outputs: tuple[M3Output, ...] = DENSE_ONLY


@dataclass(frozen=True)
class _LongLine:
    """A line longer than the limit, read past: its length in characters (without the newline)."""

    chars: int


def _lines(stream: IO[str], limit: int) -> Iterator[str | _LongLine]:
    """The lines of stream; one longer than limit characters is read past in pieces and given as a _LongLine."""
    while True:
        line = stream.readline(limit + 1)
        if not line:
            return
        if len(line) <= limit or line.endswith("\n"):
            yield line
            continue
        chars = len(line)
        while not line.endswith("\n"):
            line = stream.readline(1 << 20)
            if not line:
                break
            chars += len(line)
        yield _LongLine(chars - line.endswith("\n"))


@dataclass
class _Record:
    row: int
    line: int | None
    id: int | str
    text: Any
    problem: str | None


@dataclass
class _Part:
    index: int
    first_row: int
    records: list[_Record]

    @property
    def good_texts(self) -> list[str]:
        # Lone surrogates (from a JSON "\ud800" escape) become U+FFFD, as the embedder does; Arrow
        # strings are UTF-8 and could not hold them.
        return [valid_unicode(r.text) for r in self.records if r.problem is None]


class _Source:
    """An input file read record by record, as often as needed (a scan, then the parts)."""

    def __init__(self, path: Path, *, id_field: str, text_field: str, max_line_chars: int = MAX_LINE_CHARS) -> None:
        name = path.name.lower()
        base = name[:-3] if name.endswith(".gz") else name
        if base.endswith(JSONL_SUFFIXES):
            self.kind = "jsonl"
        elif name.endswith(PARQUET_SUFFIXES):
            self.kind = "parquet"
        else:
            msg = (
                f"cannot tell the format of {str(path)!r}: name JSON Lines files *.jsonl, *.ndjson or "
                "*.json (optionally .gz) and Parquet files *.parquet or *.pq"
            )
            raise ValueError(msg)
        if not path.is_file():
            msg = f"input file not found: {str(path)!r}"
            raise FileNotFoundError(msg)
        self.path = path
        self.id_field = id_field
        self.text_field = text_field
        self.max_line_chars = max_line_chars
        self._id_kind: type | None = None

    def digest(self) -> str:
        """SHA-256 of the file's bytes."""
        sha = hashlib.sha256()
        with self.path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                sha.update(chunk)
        return sha.hexdigest()

    def records(self) -> Iterator[_Record]:
        """Every row, checked: a row without a usable id raises; a bad text is marked."""
        self._id_kind = None
        yield from self._jsonl() if self.kind == "jsonl" else self._parquet()

    def _jsonl(self) -> Iterator[_Record]:
        opener = gzip.open if self.path.name.lower().endswith(".gz") else open
        row = 0
        # surrogateescape: a byte that is not UTF-8 becomes a lone surrogate in the raw line
        # (valid UTF-8 never decodes to one), so the line that holds it can be named.
        with opener(self.path, "rt", encoding="utf-8", errors="surrogateescape") as handle:
            stream: IO[str] = handle
            for line_number, line in enumerate(_lines(stream, self.max_line_chars), start=1):
                where = f"{self.path.name}, line {line_number}"
                if isinstance(line, _LongLine):  # read past, never held: one such line could exhaust memory
                    msg = (
                        f"{where} is {line.chars:,} characters long, over max_line_chars={self.max_line_chars:,} "
                        "(bge-integrations embed --max-line-chars); a model reads only the first few thousand "
                        "characters of a text: shorten or split it, or raise the limit"
                    )
                    raise ValueError(msg)
                if not line.strip():
                    continue
                undecoded = None if line.isascii() else _UNDECODED_BYTE.search(line)
                if undecoded is not None:
                    byte = ord(undecoded.group()) - 0xDC00
                    msg = f"{where} is not valid UTF-8 (byte 0x{byte:02x} at character {undecoded.start() + 1})"
                    raise ValueError(msg)
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    msg = f"{where} is not valid JSON: {exc.msg}"
                    raise ValueError(msg) from None
                if not isinstance(record, dict):
                    msg = f"{where} is a JSON {type(record).__name__}, not an object"
                    raise ValueError(msg)
                if self.id_field not in record:
                    msg = f"{where} has no {self.id_field!r} field (the id field; set id_field to change it)"
                    raise ValueError(msg)
                identifier = self._check_id(record[self.id_field], where)
                if self.text_field in record:
                    text = record[self.text_field]
                    problem = text_problem(text, name=self.text_field)
                else:
                    text, problem = None, f"no {self.text_field!r} field"
                yield _Record(row, line_number, identifier, text, problem)
                row += 1

    def _parquet(self) -> Iterator[_Record]:
        source = pq.ParquetFile(self.path)
        names = source.schema_arrow.names
        for name, what in ((self.id_field, "id_field"), (self.text_field, "text_field")):
            if name not in names:
                msg = f"{what}={name!r} is not a column of {self.path.name}; its columns are {names}"
                raise ValueError(msg)
        row = 0
        for batch in source.iter_batches(batch_size=8192, columns=[self.id_field, self.text_field]):
            ids = batch.column(self.id_field).to_pylist()
            texts = batch.column(self.text_field).to_pylist()
            for identifier, text in zip(ids, texts, strict=True):
                where = f"{self.path.name}, row {row}"
                yield _Record(
                    row, None, self._check_id(identifier, where), text, text_problem(text, name=self.text_field)
                )
                row += 1

    def _check_id(self, value: Any, where: str) -> int | str:
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            msg = f"{where}: the id must be a string or an integer, got {type(value).__name__}: {value!r:.60}"
            raise ValueError(msg)
        if isinstance(value, int) and not _INT64_MIN <= value <= _INT64_MAX:
            # Checked here, in the pass before the model runs: Parquet's int64 column cannot hold it.
            msg = (
                f"{where}: the integer id {value} does not fit in 64 bits (Parquet's int64 holds "
                f"{_INT64_MIN}..{_INT64_MAX}); store such ids as strings"
            )
            raise ValueError(msg)
        if isinstance(value, str) and valid_unicode(value) != value:
            msg = (
                f"{where}: the id {value!r:.60} holds a lone surrogate (not valid Unicode), which Parquet cannot store"
            )
            raise ValueError(msg)
        kind = type(value)
        if self._id_kind is None:
            self._id_kind = kind
        elif kind is not self._id_kind:
            msg = f"{where}: the id {value!r} is a {kind.__name__}, but the ids before it are {self._id_kind.__name__}s"
            raise ValueError(msg)
        return value

    def parts(self, part_size: int) -> Iterator[_Part]:
        """The rows in consecutive parts of part_size (the last may be shorter)."""
        records: list[_Record] = []
        index = 0
        for record in self.records():
            records.append(record)
            if len(records) == part_size:
                yield _Part(index, records[0].row, records)
                index, records = index + 1, []
        if records:
            yield _Part(index, records[0].row, records)


def embed_file(
    input_path: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    *,
    model: str,
    id_field: str = "id",
    text_field: str = "text",
    role: Role = "document",
    engine: Engine | None = None,
    batch_size: int = 32,
    part_size: int = 10_000,
    on_bad_rows: OnBadRows = "raise",
    progress: bool = False,
    num_actors: int | None = None,
    num_gpus_per_actor: float | None = None,
    num_cpus_per_actor: float | None = None,
    max_line_chars: int = MAX_LINE_CHARS,
    outputs: Any = DENSE_ONLY,
    **embedder_settings: Any,
) -> EmbedFileResult:
    """Embed every text of a JSON Lines or Parquet file into a folder of Parquet parts.

    The input is read twice: a first pass checks every row (and hashes the file) before any
    model runs, so a bad row fails the run at once; the second feeds the parts to the engine.

    Args:
        input_path: ``*.jsonl``, ``*.ndjson``, ``*.json`` (each optionally ``.gz``; one JSON
            object per line, blank lines skipped; a line that is not UTF-8 stops the run,
            named), or ``*.parquet``/``*.pq``. Every string text is embedded as it is, empty
            or whitespace-only ones included; lone surrogates become U+FFFD, as in the core.
        output_dir: The output folder (created). A folder of an earlier run with the same
            settings is resumed.
        model: Hub id or local path of a BGE embedding model.
        id_field: Field (or column) holding each row's id: a string or a 64-bit integer, the
            same kind in every row. A row without one (or with a larger integer) stops the run
            in the checking pass, named.
        text_field: Field (or column) holding the text.
        role: ``"document"`` (no instruction) or ``"query"`` (the model's query instruction).
        engine: Where the parts are embedded: an :class:`~bge_integrations.bulk.Engine`.
            None (the default) is :class:`~bge_integrations.bulk.LocalEngine` (this process);
            ``bge_integrations.ray.RayEngine(num_actors=..., num_gpus_per_actor=...)`` is a pool
            of Ray actors on the cluster that ``ray.init`` connects to. Not a setting: a run
            may resume on another engine. The former string ``"local"`` still works (with a
            FutureWarning); ``"ray"`` raises ValueError naming the ``RayEngine`` to pass, as
            this module does not import Ray.
        batch_size: Texts per forward pass.
        part_size: Rows per output part: the unit of work handed to an engine, of progress and
            of resumption.
        on_bad_rows: A text that is missing, None or not a string: ``"raise"`` stops the run
            before anything is embedded, with :class:`~bge_integrations.bulk.BadRowsError`
            naming every such row by id and line; ``"report"`` keeps the row with a null
            vector and the reason in an ``error`` column.
        progress: Show a progress bar (rows) on standard error.
        num_actors: Removed: a ``RayEngine`` argument now. Passing it (or
            ``num_gpus_per_actor``, ``num_cpus_per_actor``) raises ValueError naming the
            ``RayEngine(...)`` to pass instead.
        num_gpus_per_actor: Removed, as ``num_actors``.
        num_cpus_per_actor: Removed, as ``num_actors``.
        max_line_chars: A JSON Lines line longer than this (64 Mi characters by default) stops
            the run in the checking pass, named, before any model runs; it is read past, never
            held in memory. The model reads only a text's first few thousand characters.
        outputs: Any of ``"dense"`` (the default), ``"sparse"``, ``"colbert"``, as a list or a
            comma-separated string. ``"sparse"`` and ``"colbert"`` need a bge-m3 checkpoint with
            its heads (run as a :class:`~bge_integrations.BGEM3Embedder`, every asked output
            from one forward pass per batch) and add the columns ``sparse_indices`` and
            ``sparse_values``, and ``colbert``; without ``"dense"`` there is no ``embedding``
            column. Recorded in the manifest: a rerun must ask for the same outputs.
        **embedder_settings: Further :class:`~bge_integrations.BGEEmbedder` arguments
            (``device``, ``max_length``, ``query_instruction``, ...).

    Returns:
        What the run did; the vectors are in ``output_dir``.

    Raises:
        BadRowsError: If a text is bad and ``on_bad_rows="raise"``.
        ValueError: If the input is malformed (not JSON, an id missing, of another kind or an
            integer over 64 bits, a line over ``max_line_chars``), an argument is invalid
            (``engine="ray"`` or ``num_actors`` included: the message names the RayEngine to pass),
            ``model`` is a folder that holds no model, or ``output_dir`` holds a run with other
            settings (outputs included) or on another input (the message names the difference).
        MissingHeadError: If ``outputs`` needs a bge-m3 head the model lacks (a ValueError;
            checked before anything is written when the model is a local folder).
        TypeError: If engine is not an Engine (it has no ``map_tables``).
        FileNotFoundError: If the input file does not exist.

    Example:
        >>> from bge_integrations.bulk import embed_file
        >>> result = embed_file("corpus.jsonl.gz", "vectors/", model="BAAI/bge-small-en-v1.5")  # doctest: +SKIP
        >>> result.rows, result.parts_written, result.dimension  # doctest: +SKIP
        (52000, 6, 384)
        >>> import pyarrow.parquet as pq
        >>> pq.read_table("vectors/").column_names  # doctest: +SKIP
        ['id', 'embedding']
        >>> from bge_integrations.ray import RayEngine  # on Ray actors instead
        >>> engine = RayEngine(num_actors=4, num_gpus_per_actor=1)
        >>> embed_file("corpus.jsonl.gz", "vectors/", model="BAAI/bge-small-en-v1.5", engine=engine)  # doctest: +SKIP

    """
    started = time.perf_counter()
    check_choice(role, get_args(Role), name="role")
    check_choice(on_bad_rows, get_args(OnBadRows), name="on_bad_rows")
    check_column_name(id_field, name="id_field")
    check_column_name(text_field, name="text_field")
    check_positive_int(batch_size, name="batch_size")
    check_positive_int(part_size, name="part_size")
    check_positive_int(max_line_chars, name="max_line_chars")
    _check_model_folder(model)
    chosen = check_outputs(outputs)
    _check_heads(model, chosen)
    settings = {"batch_size": batch_size, **embedder_settings}
    arguments: dict[str, Any] = {"role": role, "id_column": None, "settings": settings}
    if chosen != DENSE_ONLY:
        arguments["outputs"] = chosen
    job = BatchJob(EmbedBatch, model, arguments)
    runner = _engine(engine, num_actors=num_actors, gpus=num_gpus_per_actor, cpus=num_cpus_per_actor)
    job.check()
    for _ in runner.map_tables(job, ()):  # no tables: the engine's checks of the job as it runs it (its device)
        pass

    output = Path(output_dir)
    choices = {"role": role, "id_field": id_field, "text_field": text_field, "part_size": part_size}
    if chosen != DENSE_ONLY:  # recorded only when asked: a dense run's manifest is as before
        choices["outputs"] = list(chosen)
    recorded = _recorded_settings(model, embedder_settings, **choices, on_bad_rows=on_bad_rows)
    manifest = _read_manifest(output)
    if manifest is not None:
        _check_same_settings(output, manifest["settings"], recorded)
    source = _Source(Path(input_path), id_field=id_field, text_field=text_field, max_line_chars=max_line_chars)
    digest = source.digest()
    if manifest is not None and manifest["input"]["sha256"] != digest:
        old = manifest["input"]["sha256"]
        msg = (
            f"{str(source.path)!r} is not the file that {str(output)!r} was started on (SHA-256 {old[:12]}... then, "
            f"{digest[:12]}... now); embed it into another folder, or delete this one"
        )
        raise ValueError(msg)

    rows, bad_rows = _scan(source)
    if bad_rows and on_bad_rows == "raise":
        raise BadRowsError(bad_rows, where=f"in {source.path.name}")
    finished = _finished_parts(output, manifest)
    total_parts = math.ceil(rows / part_size)
    manifest = {
        "format": FORMAT,
        "settings": recorded,
        "input": {"path": str(source.path.resolve()), "sha256": digest, "rows": rows},
        "dimension": manifest.get("dimension") if manifest else None,
        "parts": finished,
        "complete": False,
    }
    output.mkdir(parents=True, exist_ok=True)
    for stale in output.iterdir():  # left by a run that was killed
        if _temporary(stale):
            stale.unlink()
    _write_manifest(output, manifest)

    written = 0
    waiting: dict[int, _Part] = {}

    def todo() -> Iterator[tuple[int, pa.Table]]:
        for part in source.parts(part_size):
            if _part_name(part.index) not in finished:
                waiting[part.index] = part
                yield part.index, pa.table({"text": pa.array(part.good_texts, type=pa.string())})

    results = runner.map_tables(job, todo())
    with progress_bar(rows, enabled=progress, unit="text", desc="Embedding") as advance, _closing(results):
        if advance is not None:
            advance(sum(entry["rows"] for entry in finished.values()))
        for index, result in results:
            part = waiting.pop(index)
            table, dimension = _part_table(part, result, report=on_bad_rows == "report", outputs=chosen)
            if manifest["dimension"] not in (None, dimension):
                msg = f"part {index} has {dimension}-dimensional vectors, earlier parts {manifest['dimension']}"
                raise ValueError(msg)
            metadata = {
                "tool": "bge_integrations.bulk.embed_file",
                "settings": recorded,
                "embedder": json.loads(table.schema.field(1).metadata[FIELD_METADATA_KEY]),
                "input": {"path": manifest["input"]["path"], "sha256": digest},
                "part": index,
                "first_row": part.first_row,
                "rows": len(part.records),
            }
            _write_part(output, index, table, metadata)
            finished[_part_name(index)] = {"rows": len(part.records), "first_row": part.first_row}
            manifest["dimension"] = manifest["dimension"] if dimension is None else dimension
            _write_manifest(output, manifest)
            written += 1
            if advance is not None:
                advance(len(part.records))
    manifest["complete"] = len(finished) == total_parts
    _write_manifest(output, manifest)
    return EmbedFileResult(
        output=output,
        rows=rows,
        parts=total_parts,
        parts_written=written,
        parts_skipped=total_parts - written,
        dimension=manifest["dimension"],
        bad_rows=bad_rows,
        seconds=time.perf_counter() - started,
        outputs=chosen,
    )


def read_manifest(output_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The manifest of an :func:`embed_file` output folder, or None if it has none.

    Example:
        >>> read_manifest("vectors/")["complete"]  # doctest: +SKIP
        True

    """
    return _read_manifest(Path(output_dir))


def _check_model_folder(model: Any) -> None:
    """Refuse, at once and in one line, a folder that holds no model (before anything reads it)."""
    if isinstance(model, str) and Path(model).expanduser().is_dir() and not is_model_folder(model):
        msg = (
            f"model {model!r} is a folder but not a model folder (no config.json or modules.json at its top); "
            "pass a model folder or a hub id"
        )
        raise ValueError(msg)


def _check_heads(model: Any, outputs: tuple[M3Output, ...]) -> None:
    """Refuse bge-m3 outputs that a local model folder has no head file for, before anything is written.

    A hub id is checked where the model loads (the batch function raises the same error).
    """
    if not isinstance(model, str) or not Path(model).expanduser().is_dir():
        return
    heads: dict[M3Output, str] = {"sparse": SPARSE_HEAD, "colbert": COLBERT_HEAD}
    for output in outputs:
        if output in heads and not (Path(model).expanduser() / heads[output]).is_file():
            raise MissingHeadError(model, output)


def _engine(engine: Any, *, num_actors: Any, gpus: Any, cpus: Any) -> Engine:
    """The engine to run on: None is a LocalEngine; a former string is mapped or refused, saying what to pass."""
    ray_settings = {"num_actors": num_actors, "num_gpus_per_actor": gpus, "num_cpus_per_actor": cpus}
    given = ", ".join(f"{name}={value!r}" for name, value in ray_settings.items() if value is not None)
    instead = f"pass engine=RayEngine({given}) (from bge_integrations.ray import RayEngine)"
    if isinstance(engine, str) and engine == "ray":
        msg = f"engine='ray' is no longer accepted, since bge_integrations.bulk does not import Ray: {instead}"
        raise ValueError(msg)
    if given:
        msg = f"{given}: Ray actor settings are RayEngine arguments now: {instead}"
        raise ValueError(msg)
    if engine is None:
        return LocalEngine()
    if isinstance(engine, str) and engine == "local":
        warnings.warn(
            "engine='local' is deprecated: leave engine out, or pass engine=LocalEngine() "
            "(from bge_integrations.bulk import LocalEngine)",
            FutureWarning,
            stacklevel=3,
        )
        return LocalEngine()
    if isinstance(engine, str):
        msg = f"engine must be an Engine object (LocalEngine(), RayEngine(...)) or None, got {engine!r}"
        raise ValueError(msg)
    if isinstance(engine, type):
        msg = f"engine must be an Engine object, got the class {engine.__name__}: pass one, e.g. {engine.__name__}()"
        raise TypeError(msg)
    if not callable(getattr(engine, "map_tables", None)):
        msg = f"engine must be an Engine object (with a map_tables method) or None, got {type(engine).__name__}"
        raise TypeError(msg)
    runner: Engine = engine
    return runner


def _recorded_settings(model: str, embedder_settings: Mapping[str, Any], **choices: Any) -> dict[str, Any]:
    """Everything that decides the output, as plain JSON data (what a resumed run must match)."""
    recorded = {
        "model": model,
        "model_fingerprint": model_fingerprint(model, embedder_settings.get("revision"), resolve=False),
        **choices,
        "embedder": _deciding(embedder_settings),
    }
    normalised: dict[str, Any] = json.loads(json.dumps(recorded, default=str))
    return normalised


def _deciding(embedder_settings: Mapping[str, Any]) -> dict[str, Any]:
    """The embedder settings that decide the vectors, sorted: neutral ones and spelled-out defaults left out."""
    return {
        name: value
        for name, value in sorted(embedder_settings.items())
        if name not in RESULT_NEUTRAL_SETTINGS and value not in DEFAULT_ENGINE.get(name, ())
    }


def _check_same_settings(output: Path, then: dict[str, Any], now: dict[str, Any]) -> None:
    # A manifest without "outputs" holds dense vectors only (as every run before bge-m3's outputs).
    # One written before DEFAULT_ENGINE may record a spelled-out default: read it as a new run would.
    then = {"outputs": list(DENSE_ONLY), **then, "embedder": _deciding(then.get("embedder") or {})}
    now = {"outputs": list(DENSE_ONLY), **now}
    changes = [
        f"{key}: {_shown(key, then.get(key))} then, {_shown(key, now.get(key))} now"
        for key in sorted(set(then) | set(now))
        if then.get(key) != now.get(key)
    ]
    if changes:
        msg = (
            f"{str(output)!r} holds a run with other settings ({'; '.join(changes)}); rerun with the same "
            "settings to resume it, or write to another folder (or delete this one)"
        )
        raise ValueError(msg)


def _shown(key: str, value: Any) -> str:
    """A recorded setting as a message shows it: outputs as --outputs spells them ('dense,sparse')."""
    if key == "outputs" and isinstance(value, list):
        return repr(",".join(map(str, value)))
    return repr(value)


def _scan(source: _Source) -> tuple[int, list[BadRow]]:
    rows = 0
    bad: list[BadRow] = []
    for record in source.records():
        rows += 1
        if record.problem is not None:
            bad.append(BadRow(id=record.id, row=record.row, reason=record.problem, line=record.line))
    return rows, bad


def _part_name(index: int) -> str:
    return f"part-{index:05d}.parquet"


def _finished_parts(output: Path, manifest: dict[str, Any] | None) -> dict[str, dict[str, int]]:
    """The manifest's finished parts whose files are there, whole (the rest are redone)."""
    if manifest is None:
        return {}
    finished = {}
    for name, entry in manifest["parts"].items():
        path = output / name
        try:
            whole = path.is_file() and pq.ParquetFile(path).metadata.num_rows == entry["rows"]
        except (OSError, pa.ArrowException):
            whole = False
        if whole:
            finished[name] = entry
    return finished


def _part_table(
    part: _Part, result: pa.Table, *, report: bool, outputs: tuple[M3Output, ...] = DENSE_ONLY
) -> tuple[pa.Table, int | None]:
    ids = pa.array([r.id for r in part.records])
    bad = [r.problem is not None for r in part.records]
    columns: dict[str, pa.Array] = {"id": ids}
    fields = [pa.field("id", ids.type, nullable=False)]
    dimension = None
    if "dense" in outputs:
        vectors = result.column("embedding").combine_chunks()
        vector_field = result.schema.field("embedding")
        dimension = vector_field.type.list_size
        if any(bad):
            values = np.zeros((len(part.records), dimension), dtype=np.float32)
            good = [i for i, is_bad in enumerate(bad) if not is_bad]
            values[good] = np.asarray(vectors.flatten(), dtype=np.float32).reshape(-1, dimension)
            vectors = pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), dimension, mask=pa.array(bad))
        columns["embedding"] = vectors
        fields.append(vector_field)
    extra = {"sparse": list(SPARSE_COLUMNS), "colbert": [COLBERT_COLUMN]}
    names = [name for output in outputs for name in extra.get(output, [])]
    if names and any(bad):
        rows = np.cumsum([not is_bad for is_bad in bad]) - 1  # each good record's row in result
        positions = pa.array([None if is_bad else int(row) for is_bad, row in zip(bad, rows, strict=True)], pa.int64())
    for name in names:
        column = result.column(name).combine_chunks()
        columns[name] = column.take(positions) if any(bad) else column
        fields.append(result.schema.field(name))
    if report:
        columns["error"] = pa.array([r.problem for r in part.records], type=pa.string())
        fields.append(pa.field("error", pa.string()))
    return pa.Table.from_arrays(list(columns.values()), schema=pa.schema(fields)), dimension


def _write_part(output: Path, index: int, table: pa.Table, metadata: dict[str, Any]) -> Path:
    """Write one part atomically: a temporary file, flushed, then renamed into place."""
    final = output / _part_name(index)
    temporary = output / f".{final.name}.{os.getpid()}.tmp"
    table = table.replace_schema_metadata({METADATA_KEY: json.dumps(metadata).encode()})
    pq.write_table(table, temporary)
    _fsync(temporary)
    os.replace(temporary, final)
    return final


def _read_manifest(output: Path) -> dict[str, Any] | None:
    path = output / MANIFEST
    if output.exists() and not output.is_dir():
        msg = f"output must be a folder, and {str(output)!r} is a file"
        raise ValueError(msg)
    if not path.is_file():
        # A run killed while writing its first manifest leaves only temporary files: not a run.
        if output.is_dir() and any(not _temporary(entry) for entry in output.iterdir()):
            msg = f"{str(output)!r} is not empty and holds no {MANIFEST}: embed into a new or empty folder"
            raise ValueError(msg)
        return None
    try:
        manifest: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        msg = f"{str(path)!r} is not valid JSON ({exc.msg}); delete the folder to start again"
        raise ValueError(msg) from None
    if manifest.get("format") != FORMAT:
        msg = f"{str(path)!r} has format {manifest.get('format')!r}; this version reads format {FORMAT}"
        raise ValueError(msg)
    return manifest


def _temporary(path: Path) -> bool:
    """Whether path is one of the temporary files a run writes before renaming (``.NAME.PID.tmp``)."""
    return _TEMPORARY.fullmatch(path.name) is not None and path.is_file()


def _write_manifest(output: Path, manifest: dict[str, Any]) -> None:
    temporary = output / f".{MANIFEST}.{os.getpid()}.tmp"
    temporary.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    _fsync(temporary)
    os.replace(temporary, output / MANIFEST)


@contextmanager
def _closing(results: Iterator[Any]) -> Iterator[None]:
    """Close an engine's result generator however the loop ends (a Ray engine stops its actors)."""
    try:
        yield
    finally:
        close = getattr(results, "close", None)
        if close is not None:
            close()


def _fsync(path: Path) -> None:
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


__all__ = ["EmbedFileResult", "EngineName", "embed_file", "read_manifest"]
