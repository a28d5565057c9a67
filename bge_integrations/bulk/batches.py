"""Batch functions: a whole Arrow table in, the same table with one more column out.

:class:`EmbedBatch` embeds a text column; :class:`RerankBatch` scores (query, passage) columns.
Each loads its model once, in ``__init__``, through the core engine, then serves any number of
tables: Ray Data builds one per actor (``bge_integrations.ray``), the local engine one per process.
With ``outputs`` naming ``"sparse"`` or ``"colbert"``, :class:`EmbedBatch` runs a
:class:`~bge_integrations.BGEM3Embedder` and adds bge-m3's lexical weights and ColBERT vectors,
all asked outputs from one forward pass.

Bad rows (text missing, None or not a string) are never dropped. With ``on_bad_rows="raise"``
(the default) a table holding any raises :class:`BadRowsError`, which names each row by its id.
With ``"report"`` every row stays: a bad one gets a null output and the reason in
``error_column`` (null on good rows).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np
import pyarrow as pa

from bge_integrations.core.embedder import BGEEmbedder
from bge_integrations.core.m3_embedder import BGEM3Embedder
from bge_integrations.core.m3_types import M3Output, check_outputs
from bge_integrations.core.reranker import BGEReranker

Role = Literal["document", "query"]
OnBadRows = Literal["raise", "report"]
MAX_LISTED = 20
"""Bad rows named one by one in a :class:`BadRowsError` message; the rest are counted."""
FIELD_METADATA_KEY = b"bge_integrations"
"""Key of the output field's metadata: the model's effective settings, as JSON."""
DENSE_ONLY: tuple[M3Output, ...] = ("dense",)
"""The default ``outputs`` of :class:`EmbedBatch`: one dense vector per text, from any BGE embedder."""
SPARSE_COLUMNS = ("sparse_indices", "sparse_values")
"""Default columns of bge-m3's lexical weights: token ids (``list<int32>``) and weights (``list<float32>``)."""
COLBERT_COLUMN = "colbert"
"""Default column of bge-m3's ColBERT vectors: ``list<fixed_size_list<float32>[dim]>``, one vector per token."""


@dataclass(frozen=True)
class BadRow:
    """A row that cannot be embedded or scored.

    Args:
        id: The row's id (its id column or field), or None when there is none.
        row: Position of the row: in the table handed to the batch function, or in the input
            file for ``embed_file`` (0-based, blank lines not counted).
        reason: What is wrong, e.g. ``"text is None"``.
        line: Line number (1-based) in a JSON Lines input file, else None.

    Example:
        >>> BadRow(id="d7", row=11, reason="text is None", line=12).describe()
        "id 'd7' (row 11, line 12): text is None"

    """

    id: Any
    row: int
    reason: str
    line: int | None = None

    def describe(self) -> str:
        """The row in words, for messages."""
        where = f"row {self.row}" if self.line is None else f"row {self.row}, line {self.line}"
        name = "no id" if self.id is None else f"id {self.id!r}"
        return f"{name} ({where}): {self.reason}"


class BadRowsError(ValueError):
    """Rows whose text is missing, None or not a string; each is named by id and position.

    Args:
        rows: The bad rows, in input order.
        where: Where they are, for the message (``"in corpus.jsonl"``, ``"in a batch of 256 rows"``).

    Example:
        >>> error = BadRowsError([BadRow(id="d7", row=3, reason="text is None")], where="in a batch of 8 rows")
        >>> str(error).splitlines()[0]
        "1 bad row in a batch of 8 rows: id 'd7' (row 3): text is None"

    """

    def __init__(self, rows: list[BadRow], *, where: str) -> None:
        self.rows = list(rows)
        self.where = where
        listed = "; ".join(row.describe() for row in self.rows[:MAX_LISTED])
        more = f"; and {len(self.rows) - MAX_LISTED} more" if len(self.rows) > MAX_LISTED else ""
        count = f"{len(self.rows)} bad row{'s' if len(self.rows) != 1 else ''}"
        hint = (
            "Fix them, or pass on_bad_rows='report' to keep them with a null output and the reason in an error column."
        )
        super().__init__(f"{count} {where}: {listed}{more}\n{hint}")

    def __reduce__(self) -> tuple[Any, ...]:
        # Raised in Ray workers and pickled back to the driver: keep the rows.
        return (_rebuild_bad_rows_error, (self.rows, self.where))


def _rebuild_bad_rows_error(rows: list[BadRow], where: str) -> BadRowsError:
    return BadRowsError(rows, where=where)


def text_problem(value: Any, *, name: str = "text") -> str | None:
    """Why value cannot be embedded (``"text is None"``, ``"text is int: 5"``), or None if it can.

    Example:
        >>> text_problem("hello"), text_problem(None), text_problem(5)
        (None, 'text is None', 'text is int: 5')

    """
    if isinstance(value, str):
        return None
    if value is None:
        return f"{name} is None"
    return f"{name} is {type(value).__name__}: {value!r:.60}"


def check_choice(value: Any, choices: tuple[str, ...], *, name: str) -> None:
    """Raise ValueError naming value unless it is one of choices."""
    if value not in choices:
        msg = f"{name} must be one of {choices}, got {value!r}"
        raise ValueError(msg)


def check_column_name(value: Any, *, name: str) -> str:
    """Return value after checking that it is a non-empty string."""
    if not isinstance(value, str) or not value:
        msg = f"{name} must be a non-empty column name, got {value!r}"
        raise ValueError(msg)
    return value


class _BatchFunction:
    """What both batch functions share: columns, the bad-row policy, the output table."""

    output_column: str
    id_column: str | None
    on_bad_rows: OnBadRows
    error_column: str
    _checking = False

    @classmethod
    def check(cls, model: str, **arguments: Any) -> None:
        """Check the arguments as ``__init__`` does, without loading the model.

        What a driver runs before handing the arguments to remote workers, so that a typo
        fails at once, in the caller's process, instead of in every actor.

        Raises:
            ValueError: If an argument is invalid (a typo in settings raises TypeError).

        """
        probe = cls.__new__(cls)
        probe._checking = True
        probe.__init__(model, **arguments)  # type: ignore[misc]

    def _setup(self, *, output_column: str, id_column: str | None, on_bad_rows: OnBadRows, error_column: str) -> None:
        self.output_column = check_column_name(output_column, name="output_column")
        self.id_column = None if id_column is None else check_column_name(id_column, name="id_column")
        check_choice(on_bad_rows, get_args(OnBadRows), name="on_bad_rows")
        self.on_bad_rows = on_bad_rows
        self.error_column = check_column_name(error_column, name="error_column")

    def _column(self, table: pa.Table, name: str, *, what: str) -> list[Any]:
        if name not in table.column_names:
            msg = f"{what}={name!r} is not a column of the data; its columns are {table.column_names}"
            raise ValueError(msg)
        values: list[Any] = table.column(name).to_pylist()
        return values

    def _added_columns(self) -> list[str]:
        """The columns a call adds (the error column aside)."""
        return [self.output_column]

    def _check_outputs_are_new(self, table: pa.Table) -> None:
        added = self._added_columns() + ([self.error_column] if self.on_bad_rows == "report" else [])
        taken = [name for name in added if name in table.column_names]
        if taken:
            msg = f"the data already has a column named {taken[0]!r}; pick another output_column or error_column"
            raise ValueError(msg)

    def _bad_rows(self, table: pa.Table, problems: list[str | None]) -> list[BadRow]:
        rows = [i for i, problem in enumerate(problems) if problem is not None]
        if not rows:
            return []
        ids: list[Any] = [None] * table.num_rows
        if self.id_column is not None and self.id_column in table.column_names:
            ids = table.column(self.id_column).to_pylist()
        bad = [BadRow(id=ids[i], row=i, reason=problems[i] or "") for i in rows]
        if self.on_bad_rows == "raise":
            raise BadRowsError(bad, where=f"in a batch of {table.num_rows} rows")
        return bad

    def settings(self) -> dict[str, Any]:
        """The model's effective settings, recorded in the output field's metadata."""
        raise NotImplementedError

    def _finish(self, table: pa.Table, output: pa.Array, problems: list[str | None]) -> pa.Table:
        return self._finish_columns(table, [(self.output_column, output)], problems)

    def _finish_columns(
        self, table: pa.Table, outputs: list[tuple[str, pa.Array]], problems: list[str | None]
    ) -> pa.Table:
        metadata = {FIELD_METADATA_KEY: json.dumps(self.settings(), default=str).encode()}
        for name, output in outputs:
            table = table.append_column(pa.field(name, output.type, metadata=metadata), output)
        if self.on_bad_rows == "report":
            table = table.append_column(self.error_column, pa.array(problems, type=pa.string()))
        return table


class EmbedBatch(_BatchFunction):
    """Embeds a table's text column with one :class:`~bge_integrations.BGEEmbedder`, loaded once.

    Documents get no instruction; queries (``role="query"``) get the model's query instruction.
    The output column is ``fixed_size_list<float32>[dimension]``, one vector per row, in order;
    its field metadata (key ``b"bge_integrations"``) holds :meth:`settings` as JSON, so the
    settings travel with the vectors (through Ray Data and into Parquet files).

    ``outputs`` naming ``"sparse"`` or ``"colbert"`` makes the model a
    :class:`~bge_integrations.BGEM3Embedder` (a bge-m3 checkpoint with its heads), whose
    ``encode_documents``/``encode_queries`` give every asked output from one forward pass per
    batch; each output adds columns, in this order, each with the same field metadata:

    * ``"dense"``: ``output_column``, as above;
    * ``"sparse"``: ``sparse_columns``, token ids (``list<int32>``) and their weights
      (``list<float32>``), in :class:`~bge_integrations.core.m3_types.SparseEmbedding`'s order;
    * ``"colbert"``: ``colbert_column``, ``list<fixed_size_list<float32>[dim]>``, one vector per token.

    Args:
        model: Hub id or local path of a BGE embedding model.
        role: ``"document"`` or ``"query"``.
        text_column: Column holding the texts.
        output_column: Column to add with the vectors.
        id_column: Column naming rows in error messages; None, or a column the data lacks,
            names them by position only.
        on_bad_rows: ``"raise"`` (:class:`BadRowsError`) or ``"report"`` (null vector, reason in
            ``error_column``).
        error_column: Column added with ``on_bad_rows="report"``: the reason, or null.
        torch_threads: ``torch.set_num_threads`` for this process; None leaves it as it is.
        settings: Further :class:`~bge_integrations.BGEEmbedder` arguments (``batch_size``,
            ``device``, ``max_length``, ...).
        outputs: Any of ``"dense"``, ``"sparse"``, ``"colbert"`` (a list, or a comma-separated
            string); ``"dense"``, the default, needs any BGE embedder, the others a bge-m3
            (:class:`~bge_integrations.core.m3_model.MissingHeadError` when the model loads
            without the head an output needs).
        sparse_columns: The two columns of ``"sparse"``: token ids, then weights.
        colbert_column: The column of ``"colbert"``.

    Example:
        >>> import pyarrow as pa
        >>> embed = EmbedBatch("BAAI/bge-small-en-v1.5", settings={"device": "cpu"})  # doctest: +SKIP
        >>> embed(pa.table({"id": [1], "text": ["BGE maps text to vectors."]})).column_names  # doctest: +SKIP
        ['id', 'text', 'embedding']
        >>> m3 = EmbedBatch("BAAI/bge-m3", outputs="dense,sparse,colbert")  # doctest: +SKIP
        >>> m3(pa.table({"id": [1], "text": ["BGE M3"]})).column_names  # doctest: +SKIP
        ['id', 'text', 'embedding', 'sparse_indices', 'sparse_values', 'colbert']

    """

    def __init__(
        self,
        model: str,
        *,
        role: Role = "document",
        text_column: str = "text",
        output_column: str = "embedding",
        id_column: str | None = "id",
        on_bad_rows: OnBadRows = "raise",
        error_column: str = "error",
        torch_threads: int | None = None,
        settings: Mapping[str, Any] | None = None,
        outputs: Any = DENSE_ONLY,
        sparse_columns: tuple[str, str] = SPARSE_COLUMNS,
        colbert_column: str = COLBERT_COLUMN,
    ) -> None:
        check_choice(role, get_args(Role), name="role")
        self.role: Role = role
        self.text_column = check_column_name(text_column, name="text_column")
        self.outputs = check_outputs(outputs)
        self._setup(
            output_column=output_column, id_column=id_column, on_bad_rows=on_bad_rows, error_column=error_column
        )
        if not isinstance(sparse_columns, (tuple, list)) or len(sparse_columns) != 2:
            msg = f"sparse_columns must be two column names (ids, weights), got {sparse_columns!r}"
            raise ValueError(msg)
        self.sparse_columns = (
            check_column_name(sparse_columns[0], name="sparse_columns[0]"),
            check_column_name(sparse_columns[1], name="sparse_columns[1]"),
        )
        self.colbert_column = check_column_name(colbert_column, name="colbert_column")
        added = self._added_columns()
        if len(set(added)) != len(added):
            msg = f"the added columns must have distinct names, got {added}"
            raise ValueError(msg)
        check_torch_threads(torch_threads)
        self._m3: BGEM3Embedder | None = None
        if self.outputs == DENSE_ONLY:
            self.embedder = BGEEmbedder(model, **dict(settings or {}))
        else:
            self._m3 = BGEM3Embedder(model, **dict(settings or {}))
            self.embedder = self._m3
        if not self._checking:
            _set_torch_threads(torch_threads)
            self.embedder.warm_up()
            self.dimension = self.embedder.dimension
            if self._m3 is not None:
                heads = self._m3._heads()  # loaded now: a missing head fails here, before any table
                heads.require(self.outputs)
                self.colbert_dimension = None if heads.colbert is None else int(heads.colbert.out_features)

    def _added_columns(self) -> list[str]:
        names = {"dense": [self.output_column], "sparse": list(self.sparse_columns), "colbert": [self.colbert_column]}
        return [name for output in self.outputs for name in names[output]]

    def __call__(self, table: pa.Table) -> pa.Table:
        """Return table with the output columns (and, with ``"report"``, the error column) added.

        Every asked output comes from one encode call (one forward pass per ``batch_size`` texts).

        Raises:
            BadRowsError: If a text is missing, None or not a string and ``on_bad_rows="raise"``.
            ValueError: If the text column is missing, or an added column exists already.

        """
        self._check_outputs_are_new(table)
        texts = self._column(table, self.text_column, what="text_column")
        problems = [text_problem(text) for text in texts]
        bad = self._bad_rows(table, problems)
        good = [i for i, problem in enumerate(problems) if problem is None]
        if self._m3 is not None:
            return self._finish_columns(table, self._m3_columns(texts, good, bool(bad)), problems)
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if good:
            chosen = [texts[i] for i in good]
            embed = self.embedder.embed_queries if self.role == "query" else self.embedder.embed_documents
            vectors[good] = np.asarray(embed(chosen), dtype=np.float32)
        mask = pa.array([problem is not None for problem in problems]) if bad else None
        output = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), self.dimension, mask=mask)
        return self._finish(table, output, problems)

    def _m3_columns(self, texts: list[Any], good: list[int], any_bad: bool) -> list[tuple[str, pa.Array]]:
        """The asked bge-m3 outputs of the good rows (one forward pass), as columns; bad rows get nulls."""
        assert self._m3 is not None  # noqa: S101 - only called for bge-m3 outputs
        chosen = [texts[i] for i in good]
        encode = self._m3.encode_queries if self.role == "query" else self._m3.encode_documents
        encoded = encode(chosen, outputs=self.outputs) if good else None
        kept = set(good)
        mask = pa.array([i not in kept for i in range(len(texts))]) if any_bad else None
        columns: list[tuple[str, pa.Array]] = []
        if "dense" in self.outputs:
            vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
            if encoded is not None and encoded.dense is not None:
                vectors[good] = np.asarray(encoded.dense, dtype=np.float32)
            dense = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), self.dimension, mask=mask)
            columns.append((self.output_column, dense))
        rows: list[int | None] = [None] * len(texts)
        for position, i in enumerate(good):
            rows[i] = position
        if "sparse" in self.outputs:
            sparse = encoded.sparse if encoded is not None and encoded.sparse is not None else []
            indices = [np.asarray(s.indices, dtype=np.int32) for s in sparse]
            weights = [np.asarray(s.values, dtype=np.float32) for s in sparse]
            columns.append((self.sparse_columns[0], _list_array(indices, rows, pa.array([], pa.int32()), mask)))
            columns.append((self.sparse_columns[1], _list_array(weights, rows, pa.array([], pa.float32()), mask)))
        if "colbert" in self.outputs:
            width = self.colbert_dimension or 0
            colbert = encoded.colbert if encoded is not None and encoded.colbert is not None else []
            flat = [np.asarray(m, dtype=np.float32).reshape(-1) for m in colbert]
            empty = pa.FixedSizeListArray.from_arrays(pa.array([], pa.float32()), width)
            columns.append((self.colbert_column, _list_array(flat, rows, empty, mask, width=width)))
        return columns

    def settings(self) -> dict[str, Any]:
        """The embedder's effective settings (after presets) and the role (and bge-m3 outputs), for the record."""
        outputs = {} if self._m3 is None else {"outputs": list(self.outputs)}
        return {"role": self.role, **outputs, **self.embedder.config.to_dict()}


class RerankBatch(_BatchFunction):
    """Scores a table's (query, passage) rows with one :class:`~bge_integrations.BGEReranker`, loaded once.

    Rows sharing a query are scored together, in one :meth:`~bge_integrations.BGEReranker.score`
    call per distinct query of the table; the output column is float64, one score per row, on
    the reranker's scale (sigmoid unless ``normalize=False`` in settings).

    Args:
        model: Hub id or local path of a BGE reranker.
        query_column: Column holding the queries.
        passage_column: Column holding the passages.
        output_column: Column to add with the scores.
        id_column: Column naming rows in error messages (see :class:`EmbedBatch`).
        on_bad_rows: ``"raise"`` or ``"report"``, as in :class:`EmbedBatch`.
        error_column: Column added with ``on_bad_rows="report"``.
        torch_threads: ``torch.set_num_threads`` for this process; None leaves it as it is.
        settings: Further :class:`~bge_integrations.BGEReranker` arguments.

    Example:
        >>> import pyarrow as pa
        >>> score = RerankBatch("BAAI/bge-reranker-base", settings={"device": "cpu"})  # doctest: +SKIP
        >>> pairs = pa.table({"query": ["what is BGE?"], "passage": ["BGE is an embedding model."]})
        >>> score(pairs).column("score").to_pylist()  # doctest: +SKIP
        [0.98...]

    """

    def __init__(
        self,
        model: str,
        *,
        query_column: str = "query",
        passage_column: str = "passage",
        output_column: str = "score",
        id_column: str | None = "id",
        on_bad_rows: OnBadRows = "raise",
        error_column: str = "error",
        torch_threads: int | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        self.query_column = check_column_name(query_column, name="query_column")
        self.passage_column = check_column_name(passage_column, name="passage_column")
        self._setup(
            output_column=output_column, id_column=id_column, on_bad_rows=on_bad_rows, error_column=error_column
        )
        check_torch_threads(torch_threads)
        self.reranker = BGEReranker(model, **dict(settings or {}))
        if not self._checking:
            _set_torch_threads(torch_threads)
            self.reranker.warm_up()

    def __call__(self, table: pa.Table) -> pa.Table:
        """Return table with the score column (and, with ``"report"``, the error column) added.

        Raises:
            BadRowsError: If a query or passage is missing, None or not a string and
                ``on_bad_rows="raise"``.
            ValueError: If a named column is missing, or an added column exists already.

        """
        self._check_outputs_are_new(table)
        queries = self._column(table, self.query_column, what="query_column")
        passages = self._column(table, self.passage_column, what="passage_column")
        problems = [
            text_problem(query, name="query") or text_problem(passage, name="passage")
            for query, passage in zip(queries, passages, strict=True)
        ]
        self._bad_rows(table, problems)
        rows = [i for i, problem in enumerate(problems) if problem is None]
        scores: list[float | None] = [None] * table.num_rows
        for i, score in zip(rows, self.reranker.score_pairs([(queries[i], passages[i]) for i in rows]), strict=True):
            scores[i] = score
        return self._finish(table, pa.array(scores, type=pa.float64()), problems)

    def settings(self) -> dict[str, Any]:
        """The reranker's effective settings (after presets), for the record."""
        return self.reranker.config.to_dict()


def _list_array(
    values: list[np.ndarray], rows: list[int | None], empty: pa.Array, mask: pa.Array | None, *, width: int = 0
) -> pa.ListArray:
    """A list column: row i holds values[rows[i]] (null where rows[i] is None), grouped by width when > 0."""
    lengths = [0 if row is None else len(values[row]) // max(width, 1) for row in rows]
    offsets = np.zeros(len(rows) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    chosen = [values[row] for row in rows if row is not None]
    items = pa.array(np.concatenate(chosen)) if chosen else empty
    if width and chosen:
        items = pa.FixedSizeListArray.from_arrays(items, width)
    return pa.ListArray.from_arrays(pa.array(offsets), items, mask=mask)


def check_torch_threads(threads: Any) -> None:
    """Raise ValueError naming threads unless it is an int > 0 or None."""
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads <= 0):
        msg = f"torch_threads must be an int > 0 or None, got {threads!r}"
        raise ValueError(msg)


def _set_torch_threads(threads: int | None) -> None:
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


__all__ = [
    "BadRow",
    "BadRowsError",
    "EmbedBatch",
    "OnBadRows",
    "RerankBatch",
    "Role",
    "text_problem",
]
