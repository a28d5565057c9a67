"""Loading a BGE embedding model as a sentence-transformers pipeline.

A checkpoint with its own sentence-transformers config (``modules.json``) keeps its pooling
(all-MiniLM-L6-v2 is mean-pooled, BGE's hub repos are CLS-pooled). A plain transformers
checkpoint, such as a BGE fine-tuned with ``transformers`` and saved with ``save_pretrained``,
gets what BGE needs: CLS pooling and L2 normalisation. sentence-transformers' own fallback
for such a folder is mean pooling, which would silently give wrong vectors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from bge_integrations.core.backends import (
    BackendUnavailableError,
    GraphRuntime,
    backend_folder,
    default_backend_dir,
    import_runtime,
    load_runtime,
)
from bge_integrations.core.batching import BatchRunner
from bge_integrations.core.cache import model_fingerprint
from bge_integrations.core.checkpoints import has_sentence_transformers_config
from bge_integrations.core.configs import EmbedderConfig
from bge_integrations.core.cpu_batches import cpu_batch_tokens
from bge_integrations.core.hf_options import dtype_option, given_options, without_dtype
from bge_integrations.core.loading import MODEL_LOAD_LOCK
from bge_integrations.core.notices import warn_user
from bge_integrations.core.text_features import FeaturePlan, TextFeatures, TokenCounter, Tokenized

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


@dataclass
class LoadedEmbedder:
    """A loaded pipeline, its tokenizer-side helpers and its batch runner.

    ``embed`` tokenises every text once, sorts by real token length, cuts batches under the
    item and token budgets, and runs the pipeline's own forward pass (pooling and
    normalisation included). Where the tokenizer or pipeline does not allow that (a slow
    tokenizer, a Router, features that differ from ``preprocess``), it calls
    sentence-transformers' ``encode`` instead. Same vectors either way.

    With a ``runtime`` (``backend="onnx"`` or ``"openvino"``), the same batches go through the
    exported graph instead of the torch pipeline; that needs the fast path.
    """

    model: SentenceTransformer
    counter: TokenCounter
    max_length: int
    device: str = "cpu"
    name: str = "model"
    runtime: GraphRuntime | None = None
    """The exported graph that runs the forward passes, or None for the torch pipeline."""
    runtime_optional: bool = False
    """True where ``backend="auto"`` chose the graph: what it cannot run raises
    :class:`~bge_integrations.core.backends.BackendUnavailableError`, and the embedder switches to torch."""
    fingerprint: str = ""
    """What identifies the weights that were loaded (:func:`model_fingerprint` right after loading)."""
    features: TextFeatures = field(init=False)
    runner: BatchRunner = field(init=False)

    def __post_init__(self) -> None:
        self.features = TextFeatures(self.model, self.max_length)
        self.runner = BatchRunner(self.name, default_max_tokens=cpu_batch_tokens(self.device))

    def embed(
        self,
        texts: list[str],
        prompt: str,
        *,
        query: bool,
        batch_size: int,
        max_batch_tokens: int | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> tuple[np.ndarray, list[bool]]:
        """Embed texts with prompt in front; returns the vectors (float32) and which texts were cut."""
        prompted = [prompt + text for text in texts] if prompt else texts
        cut: list[bool] | None = None
        if self.features.available:
            tokenized = self.features.tokenize(prompted)
            plan = self.features.plan_for(prompt, texts, tokenized)
            if plan is not None:
                vectors = self._run(tokenized, plan, batch_size, max_batch_tokens, progress)
                return vectors, tokenized.truncated
            # The pipeline's own encode below reads the same tokens from the part of each text
            # that was tokenised (a prefix of a huge text), so it never tokenises megabytes.
            texts = [tokenized.read(i, prompt, text) for i, text in enumerate(texts)]
            cut = tokenized.truncated
        if self.runtime is not None and self.runtime_optional:
            msg = (
                f"backend='auto' runs torch for {self.name!r}: the {self.runtime.backend} graph cannot embed "
                f"with prompt {prompt!r} (the tokenizer's features differ from the pipeline's own for it)"
            )
            raise BackendUnavailableError(msg)
        if self.runtime is not None:
            msg = (
                f"backend={self.runtime.backend!r} cannot embed with prompt {prompt!r}: the tokenizer's "
                "features differ from the pipeline's own preprocessing for it; use backend='torch'"
            )
            raise RuntimeError(msg)
        if cut is None:
            cut = [length > self.max_length for length in self.counter.lengths(prompted)]
        encode = self.model.encode_query if query else self.model.encode_document
        vectors = encode(texts, prompt=prompt, batch_size=batch_size, show_progress_bar=False, convert_to_numpy=True)
        if progress is not None:
            progress(len(texts))
        return np.asarray(vectors, dtype=np.float32), cut

    def _run(
        self,
        tokenized: Tokenized,
        plan: FeaturePlan,
        batch_size: int,
        max_batch_tokens: int | None,
        progress: Callable[[int], None] | None,
    ) -> np.ndarray:
        encodings = tokenized.encodings
        runtime = self.runtime

        def forward(rows: list[int]) -> torch.Tensor:
            features = self.features.batch([encodings[i] for i in rows], plan, device=self.device)
            if runtime is not None:
                return torch.from_numpy(runtime.run({key: features[key].numpy() for key in plan.keys}))
            with torch.inference_mode():
                embeddings: torch.Tensor = self.model(features)["sentence_embedding"]
            return embeddings.float().cpu()

        out = self.runner.run(
            tokenized.lengths, forward, max_items=batch_size, max_tokens=max_batch_tokens, on_batch=progress
        )
        return out.numpy()


def load_embedder(config: EmbedderConfig, *, token: str | None = None) -> LoadedEmbedder:
    """Load the sentence-transformers pipeline that config describes (token: for a private hub model)."""
    # Imported here: sentence-transformers takes seconds to import, and importing this
    # package (or an adapter) should not.
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    if config.backend != "torch" and not config.backend_fallback:
        import_runtime(config.backend)  # a missing runtime fails before the weights load
    hub_kwargs: dict[str, Any] = {"revision": config.revision, "trust_remote_code": config.trust_remote_code}
    if token is not None:
        hub_kwargs["token"] = token
    if config.cache_folder is not None:
        hub_kwargs["cache_dir"] = config.cache_folder
    if config.local_files_only:
        hub_kwargs["local_files_only"] = True
    _, other_dtype = dtype_option(config.model_kwargs, use_fp16=config.use_fp16)
    extra_model_kwargs = without_dtype(config.model_kwargs)
    if config.use_fp16:
        extra_model_kwargs["dtype"] = torch.float16
    elif other_dtype is not None:
        extra_model_kwargs["dtype"] = other_dtype
    model_kwargs: dict[str, Any] = {**hub_kwargs, **extra_model_kwargs}
    if has_sentence_transformers_config(
        config.model_name,
        config.revision,
        token=token,
        cache_folder=config.cache_folder,
        local_files_only=config.local_files_only,
    ):
        with MODEL_LOAD_LOCK:
            model = SentenceTransformer(
                config.model_name,
                device=config.device,
                revision=config.revision,
                trust_remote_code=config.trust_remote_code,
                token=token,
                cache_folder=config.cache_folder,
                local_files_only=config.local_files_only,
                model_kwargs=extra_model_kwargs or None,
                processor_kwargs=config.tokenizer_kwargs or None,
                config_kwargs=config.config_kwargs or None,
            )
        if config.pooling is not None:
            _set_pooling(model, config.pooling)
    else:
        if config.preset is None:
            msg = (
                f"{config.model_name!r} has no sentence-transformers config and is not a known BGE "
                "model; using BGE's conventions: CLS pooling, L2 normalisation, and "
                f"query_instruction={config.query_instruction!r}. Pass pooling= and "
                "query_instruction= to choose otherwise."
            )
            warn_user(msg, UserWarning)
        with MODEL_LOAD_LOCK:
            transformer = Transformer(
                config.model_name,
                max_seq_length=config.max_length,
                model_kwargs=model_kwargs,
                processor_kwargs={**hub_kwargs, **(config.tokenizer_kwargs or {})},
                config_kwargs={**hub_kwargs, **(config.config_kwargs or {})},
            )
        pooling = Pooling(transformer.get_embedding_dimension(), config.pooling or "cls")
        model = SentenceTransformer(modules=[transformer, pooling, Normalize()], device=config.device)
    if config.normalize is not None:
        _set_normalize(model, config.normalize)
    if config.max_length is not None:
        model.max_seq_length = config.max_length
    model.eval()
    max_length = int(model.max_seq_length or config.max_length or 512)
    loaded = LoadedEmbedder(
        model=model,
        counter=TokenCounter(model.tokenizer),
        max_length=max_length,
        device=config.device,
        name=config.model_name,
        # Read after the load: the hub cache now names the commit whose files were loaded.
        fingerprint=model_fingerprint(config.model_name, config.revision, cache_folder=config.cache_folder),
    )
    if config.backend != "torch":
        loaded.runtime_optional = config.backend_fallback
        try:
            if config.backend_fallback:
                import_runtime(config.backend)
            loaded.runtime = _load_runtime(loaded, config)
        except Exception as error:
            if not config.backend_fallback:
                raise
            msg = f"backend='auto' runs torch for {config.model_name!r}: the {config.backend} graph failed: {error}"
            raise BackendUnavailableError(msg) from error
    return loaded


def _load_runtime(loaded: LoadedEmbedder, config: EmbedderConfig) -> GraphRuntime:
    """The exported graph of loaded's pipeline for config's backend (exported on first use, then read back)."""
    from sentence_transformers.sentence_transformer.modules import Pooling

    backend = config.backend
    features = loaded.features
    if not features.available:
        msg = (
            f"backend={backend!r} needs a fast (Rust) tokenizer that pads on the right and a plain text "
            f"pipeline; {config.model_name!r} has not both. Use backend='torch'"
        )
        raise ValueError(msg)
    if any(isinstance(module, Pooling) and not module.include_prompt for module in loaded.model):
        msg = (
            f"backend={backend!r} cannot run {config.model_name!r}: its pooling leaves the prompt out "
            "(include_prompt=False), which the exported graph does not do. Use backend='torch'"
        )
        raise ValueError(msg)

    def make_inputs(texts: list[str]) -> dict[str, torch.Tensor]:
        tokenized = features.tokenize(texts)
        plan = features.plan_for("", texts, tokenized)
        if plan is None:
            msg = f"backend={backend!r}: the tokenizer's features differ from the pipeline's; use backend='torch'"
            raise ValueError(msg)
        batch = features.batch(tokenized.encodings, plan)
        return {key: batch[key] for key in plan.keys}

    settings = {
        "model": loaded.fingerprint,
        "pooling": config.pooling,
        "normalize": config.normalize,
        "max_length": loaded.max_length,
        "pipeline": repr(loaded.model),
        "torch": torch.__version__,
        # Options that may change the weights or the graph; absent (so older exports match) when not given.
        **given_options(config),
    }
    return load_runtime(
        loaded.model,
        make_inputs,
        backend=backend,
        precision=config.backend_precision or "fp32",
        folder=backend_folder(config.backend_dir or default_backend_dir(), config.model_name, settings),
    )


def _set_pooling(model: SentenceTransformer, mode: str) -> None:
    from sentence_transformers.sentence_transformer.modules import Pooling

    for index, module in enumerate(model):
        if isinstance(module, Pooling):
            if module.get_config_dict().get("pooling_mode") != mode:
                model[index] = Pooling(module.get_embedding_dimension(), mode)
            return
    model.insert(1, Pooling(model.get_embedding_dimension(), mode))


def _set_normalize(model: SentenceTransformer, normalize: bool) -> None:
    from sentence_transformers.sentence_transformer.modules import Normalize

    positions = [i for i, module in enumerate(model) if isinstance(module, Normalize)]
    if normalize and not positions:
        model.append(Normalize())
    elif not normalize:
        for index in reversed(positions):
            del model[index]


__all__ = ["LoadedEmbedder", "load_embedder"]
