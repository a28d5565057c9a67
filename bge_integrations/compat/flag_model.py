"""FlagModel: FlagEmbedding's encoder embedder (``encode``, ``encode_queries``, ``encode_corpus``).

Same signature, defaults and results as ``FlagEmbedding.FlagModel`` (1.3/1.4). Instructions are
formatted into the texts here, as FlagEmbedding does; the core embeds them with the pooling and
normalisation asked for, never with its presets (no automatic instruction).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from bge_integrations.compat._checks import (
    check_formats,
    check_instructions,
    check_lengths,
    check_no_extra_kwargs,
    ignore_extra_kwargs,
)
from bge_integrations.compat._compute import Array, embed, with_instruction
from bge_integrations.compat._devices import DeviceSpec, Handles, target_devices
from bge_integrations.compat._hub import resolve_model
from bge_integrations.core.embedder import BGEEmbedder
from bge_integrations.core.validation import check_texts


class FlagModel:
    """FlagEmbedding's ``FlagModel`` on this package's engine: change the import line only.

    Arguments mean what they mean in FlagEmbedding 1.4 (docs/compat.md lists the differences).
    Queries get an instruction only if ``query_instruction_for_retrieval`` is given. Results are
    numpy arrays, float16 when fp16 runs (as FlagEmbedding's): one row per text of a list, 1-D
    for a single string. The model loads in the constructor.

    Example:
        >>> from bge_integrations.compat import FlagModel
        >>> model = FlagModel("BAAI/bge-base-en-v1.5", query_instruction_for_retrieval="...: ")  # doctest: +SKIP
        >>> q = model.encode_queries(["what is panda?"])  # doctest: +SKIP
        >>> p = model.encode_corpus(["The giant panda is a bear species endemic to China."])  # doctest: +SKIP
        >>> (q @ p.T).shape  # doctest: +SKIP
        (1, 1)

    """

    def __init__(
        self,
        model_name_or_path: str,
        normalize_embeddings: bool = True,
        use_fp16: bool = True,
        query_instruction_for_retrieval: str | None = None,
        query_instruction_format: str = "{}{}",
        devices: DeviceSpec = None,
        pooling_method: str = "cls",
        trust_remote_code: bool = False,
        cache_dir: str | None = None,
        batch_size: int = 256,
        query_max_length: int = 512,
        passage_max_length: int = 512,
        convert_to_numpy: bool = True,
        truncate_dim: int | None = None,
        passage_instruction_for_retrieval: str | None = None,
        passage_instruction_format: str = "{}{}",
        **kwargs: Any,
    ) -> None:
        ignore_extra_kwargs("FlagModel", kwargs)
        if pooling_method not in ("cls", "mean"):
            msg = f"pooling_method must be 'cls' or 'mean', got {pooling_method!r}"
            raise ValueError(msg)
        check_instructions(
            query_instruction_for_retrieval=query_instruction_for_retrieval,
            passage_instruction_for_retrieval=passage_instruction_for_retrieval,
        )
        check_formats(
            query_instruction_format=query_instruction_format, passage_instruction_format=passage_instruction_format
        )
        check_lengths(batch_size=batch_size, query_max_length=query_max_length, passage_max_length=passage_max_length)
        if truncate_dim is not None:
            check_lengths(truncate_dim=truncate_dim)
        self.model_name_or_path = model_name_or_path
        self.normalize_embeddings = normalize_embeddings
        self.use_fp16 = use_fp16
        self.query_instruction_for_retrieval = query_instruction_for_retrieval
        self.query_instruction_format = query_instruction_format.replace("\\n", "\n")  # as FlagEmbedding does
        self.passage_instruction_for_retrieval = passage_instruction_for_retrieval
        self.passage_instruction_format = passage_instruction_format
        self.cache_dir = cache_dir
        self.target_devices = target_devices(devices)
        self._model = resolve_model(model_name_or_path, cache_dir)
        self.pooling_method = pooling_method
        self.trust_remote_code = trust_remote_code
        self.batch_size = batch_size
        self.query_max_length = query_max_length
        self.passage_max_length = passage_max_length
        self.convert_to_numpy = convert_to_numpy
        self.truncate_dim = truncate_dim
        self._handles = Handles(BGEEmbedder)
        self._embedders(passage_max_length, batch_size)  # FlagEmbedding loads in the constructor

    def encode_queries(
        self,
        queries: str | Sequence[str],
        batch_size: int | None = None,
        max_length: int | None = None,
        convert_to_numpy: bool | None = None,
        **kwargs: Any,
    ) -> Array | torch.Tensor:
        """:meth:`encode` with ``query_instruction_for_retrieval``; max_length defaults to query_max_length."""
        check_no_extra_kwargs("encode_queries", kwargs)
        max_length = self.query_max_length if max_length is None else max_length
        instruction, fmt = self.query_instruction_for_retrieval, self.query_instruction_format
        return self.encode(queries, batch_size, max_length, convert_to_numpy, instruction, fmt)

    def encode_corpus(
        self,
        corpus: str | Sequence[str],
        batch_size: int | None = None,
        max_length: int | None = None,
        convert_to_numpy: bool | None = None,
        **kwargs: Any,
    ) -> Array | torch.Tensor:
        """:meth:`encode` with ``passage_instruction_for_retrieval`` (None by default: no instruction)."""
        check_no_extra_kwargs("encode_corpus", kwargs)
        instruction, fmt = self.passage_instruction_for_retrieval, self.passage_instruction_format
        return self.encode(corpus, batch_size, max_length, convert_to_numpy, instruction, fmt)

    def encode(
        self,
        sentences: str | Sequence[str],
        batch_size: int | None = None,
        max_length: int | None = None,
        convert_to_numpy: bool | None = None,
        instruction: str | None = None,
        instruction_format: str | None = None,
        **kwargs: Any,
    ) -> Array | torch.Tensor:
        """Embed texts as they are, or as ``instruction_format.format(instruction, text)``.

        Args:
            sentences: One text (1-D result) or a list of texts (one row each, in input order).
            batch_size: Texts per forward pass; None: ``self.batch_size``.
            max_length: Tokens read per text; None: ``self.passage_max_length``.
            convert_to_numpy: Numpy array, or torch tensor on the first device; None: the attribute.
            instruction: Put before every text with ``instruction_format`` (default ``"{}{}"``).
            instruction_format: See instruction.
            kwargs: None accepted (FlagEmbedding passes them to the tokenizer).

        Raises:
            TypeError: If sentences is not a string or a list of strings (naming the bad item),
                or for any keyword argument not listed here.

        """
        check_no_extra_kwargs("encode", kwargs)
        texts = [sentences] if isinstance(sentences, str) else check_texts(sentences, name="sentences")
        fmt = "{}{}" if instruction_format is None else instruction_format
        check_instructions(instruction=instruction)
        check_formats(instruction_format=fmt)
        texts = with_instruction(texts, instruction, fmt)
        max_length = self.passage_max_length if max_length is None else max_length
        batch_size = self.batch_size if batch_size is None else batch_size
        check_lengths(max_length=max_length, batch_size=batch_size)
        to_numpy = self.convert_to_numpy if convert_to_numpy is None else convert_to_numpy
        return embed(
            self._embedders(max_length, batch_size), texts, single=isinstance(sentences, str), to_numpy=to_numpy
        )

    def stop_self_pool(self) -> None:
        """Free this model's weights on every device (FlagEmbedding's clean-up call)."""
        self._handles.release()

    def _embedders(self, max_length: int, batch_size: int) -> list[BGEEmbedder]:
        return self._handles.get(
            self.target_devices,
            use_fp16=self.use_fp16,
            model_name=self._model,
            query_instruction="",  # never the core's preset instruction: FlagEmbedding's are explicit
            pooling=self.pooling_method,
            normalize=bool(self.normalize_embeddings),
            max_length=max_length,
            batch_size=batch_size,
            trust_remote_code=self.trust_remote_code,
            truncate_dim=self.truncate_dim,
        )


__all__ = ["FlagModel"]
