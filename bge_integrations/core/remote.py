"""RemoteEmbedder and RemoteReranker: the embedder and reranker methods, answered by a server.

They speak to ``bge-integrations serve`` (or any server with the same endpoints): embeddings by
OpenAI's ``POST {base_url}/v1/embeddings`` with ``input_type`` ``"query"`` or ``"document"``, so
the server puts its model's instruction on queries only; reranking by the Cohere-style
``POST {base_url}/rerank`` (``query``, ``documents``, ``raw_scores``). The adapters use them when
given ``base_url=``: the same calls, no model in this process. Constructors only store settings;
an HTTP client is made on first use.

Every answer is checked: exactly one vector or score per input, each index once, else
:class:`RemoteError`. 429 and 503 answers (an overloaded or starting server) and connections
refused are retried with exponential backoff, waiting what ``Retry-After`` asks when the server
says it.
"""

from __future__ import annotations

import asyncio
import email.utils
import inspect
import math
import threading
import time
from collections.abc import Callable, Collection, Coroutine, Mapping, Sequence
from typing import Any, TypeVar

import httpx

from bge_integrations.core.types import RankedText
from bge_integrations.core.validation import (
    check_optional_float,
    check_pairs,
    check_positive_int,
    check_text,
    check_texts,
)

T = TypeVar("T")

RETRIED_STATUSES = frozenset({429, 503})
"""Answers that mean "busy, try again": the request is sent again after a wait."""
MAX_RETRY_WAIT = 60.0
"""Seconds waited at most before one retry, whatever ``Retry-After`` asks."""
_CONCURRENT_REQUESTS = 8
"""Requests one async call keeps in flight at most, when its inputs fill several."""


class RemoteError(RuntimeError):
    """A server did not answer as asked: unreachable, an error status, or a malformed answer.

    Args:
        message: What went wrong, naming the URL (and the server's own message, if any).
        url: The URL of the request.
        status: The HTTP status of the answer; None when no answer came.

    Example:
        >>> error = RemoteError("http://localhost:8080/rerank answered 401: bad key", url="http://localhost:8080/rerank")
        >>> error.url, error.status
        ('http://localhost:8080/rerank', None)

    """

    def __init__(self, message: str, *, url: str, status: int | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.status = status

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only arguments: pickle (worker processes, Ray) would lose them otherwise.
        return (_remote_error, (str(self), self.url, self.status))


def _remote_error(message: str, url: str, status: int | None) -> RemoteError:
    return RemoteError(message, url=url, status=status)


def check_base_url(base_url: Any) -> str:
    """Return base_url without its trailing ``/`` (and a trailing ``/v1``: the endpoints add it).

    Raises:
        ValueError: If base_url is not an ``http://`` or ``https://`` URL.

    Example:
        >>> check_base_url("http://localhost:8080/v1/")
        'http://localhost:8080'

    """
    if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
        msg = f"base_url must be an http:// or https:// URL, got {base_url!r}"
        raise ValueError(msg)
    url = base_url.rstrip("/")
    url = url.removesuffix("/v1")
    try:
        httpx.URL(url)
    except httpx.InvalidURL as exc:
        msg = f"base_url must be an http:// or https:// URL, got {base_url!r}: {exc}"
        raise ValueError(msg) from exc
    return url


def remote_arguments(
    owner: str,
    base_url: Any,
    api_key: str | None,
    settings: Mapping[str, Any],
    engine: Callable[..., Any],
    *,
    default_model: str,
    client_side: Collection[str],
    names: Mapping[str, str] | None = None,
    owned: Sequence[str] = (),
) -> dict[str, Any]:
    """An adapter's :class:`RemoteEmbedder`/:class:`RemoteReranker` arguments, after refusing server-owned settings.

    Args:
        owner: The adapter's class name, for the message.
        base_url: The adapter's ``base_url``.
        api_key: The key, resolved to a string (or None).
        settings: The keyword arguments the adapter would give the local ``engine``.
        engine: ``BGEEmbedder`` or ``BGEReranker``.
        default_model: The adapter's default model (not sent as a model name).
        client_side: Engine names the remote client honours; those among ``batch_size`` and
            ``normalize`` are passed on.
        names: Engine name -> the adapter's name for it, for the message.
        owned: More server-owned settings the adapter found itself (e.g. a Haystack token).

    Raises:
        ValueError: Naming every setting the server owns that was given.

    Example:
        >>> def engine(model_name="m", *, device=None, batch_size=32): ...
        >>> remote_arguments("E", "http://h:8080/v1", None, {"model_name": "m", "device": None, "batch_size": 8},
        ...                  engine, default_model="m", client_side={"model_name", "batch_size"})
        {'base_url': 'http://h:8080', 'api_key': None, 'model': None, 'batch_size': 8}

    """
    refused = [*server_owned_settings(settings, engine, client_side={"model_name", *client_side}, names=names), *owned]
    if refused:
        role = "reranker_settings" if getattr(engine, "kind", None) == "reranker" else "embedder_settings"
        msg = (
            f"{owner}(base_url={base_url!r}) runs on the server, which owns these settings: {', '.join(refused)}; "
            f"set them on the server (ServerSettings.{role}) and leave them here"
        )
        raise ValueError(msg)
    model = settings["model_name"]
    passed = {name: settings[name] for name in ("normalize", "batch_size") if name in client_side}
    return {
        "base_url": check_base_url(base_url),
        "api_key": api_key,
        "model": None if model == default_model else model,
        **passed,
    }


def server_owned_settings(
    settings: Mapping[str, Any],
    engine: Callable[..., Any],
    *,
    client_side: Collection[str],
    names: Mapping[str, str] | None = None,
) -> list[str]:
    """The settings a server owns that were set to something else than the engine's default.

    An adapter given ``base_url`` builds no model: the server's settings apply, so a value given
    here for one of them would be ignored. Adapters call this with the keyword arguments they
    would give the local engine and raise when it returns any.

    Args:
        settings: The engine's keyword arguments, by engine name.
        engine: The local engine (``BGEEmbedder``, ``BGEReranker``): its defaults are compared.
        client_side: Engine names that the remote client honours itself (never reported).
        names: Engine name -> the adapter's name for it, for the message.

    Returns:
        ``"name=value"`` for each such setting (a ``token`` is shown as ``'***'``).

    Example:
        >>> def engine(model_name="m", *, device=None, batch_size=32): ...
        >>> given = {"model_name": "x", "device": "cpu", "batch_size": 8}
        >>> server_owned_settings(given, engine, client_side={"model_name"})
        ["device='cpu'", 'batch_size=8']

    """
    defaults = {
        name: parameter.default
        for name, parameter in inspect.signature(engine).parameters.items()
        if parameter.default is not inspect.Parameter.empty
    }
    owned = []
    for name, value in settings.items():
        if name in client_side or name not in defaults or _same(value, defaults[name]):
            continue
        shown = "'***'" if name == "token" else f"{value!r:.80}"
        owned.append(f"{(names or {}).get(name, name)}={shown}")
    return owned


def _same(value: Any, default: Any) -> bool:
    try:
        return bool(value == default)
    except (TypeError, ValueError):  # arrays compare element-wise
        return False


class _RemoteClient:
    """The HTTP side shared by :class:`RemoteEmbedder` and :class:`RemoteReranker`."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None,
        model: str | None,
        batch_size: int,
        timeout: float,
        max_retries: int,
    ) -> None:
        self.base_url = check_base_url(base_url)
        if api_key is not None and (not isinstance(api_key, str) or not api_key.strip()):
            msg = f"api_key must be a non-empty string or None, got {type(api_key).__name__}"
            raise ValueError(msg)
        if model is not None and (not isinstance(model, str) or not model.strip()):
            msg = f"model must be a model name or None, got {model!r}"
            raise ValueError(msg)
        self.api_key = api_key
        self.model = model
        self.batch_size: int = check_positive_int(batch_size, name="batch_size")
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout < math.inf:
            msg = f"timeout must be a number of seconds > 0, got {timeout!r}"
            raise ValueError(msg)
        self.timeout = float(timeout)
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            msg = f"max_retries must be an int >= 0, got {max_retries!r}"
            raise ValueError(msg)
        self.max_retries = max_retries
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        """Nothing to load: the server holds the model (kept for the adapters' ``warm_up``)."""

    def release(self) -> bool:
        """Close the HTTP connections; False, as no model was loaded here."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()
        return False

    def __repr__(self) -> str:
        key = None if self.api_key is None else "'***'"
        return f"{type(self).__name__}({self.base_url!r}, api_key={key}, model={self.model!r})"

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_client"] = None
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def _headers(self) -> dict[str, str]:
        return {} if self.api_key is None else {"Authorization": f"Bearer {self.api_key}"}

    def _sync_client(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(timeout=self.timeout, headers=self._headers())
            return self._client

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        url = self.base_url + path
        client = self._sync_client()
        for attempt in range(self.max_retries + 1):
            last = attempt == self.max_retries
            try:
                response = client.post(url, json=body)
            except httpx.TransportError as exc:
                if last or not _retried_error(exc):
                    raise _unreachable(url, exc) from exc
                time.sleep(_backoff(attempt, None))
                continue
            if response.status_code in RETRIED_STATUSES and not last:
                time.sleep(_backoff(attempt, response))
                continue
            return _answer(url, response)
        raise AssertionError  # pragma: no cover - the last attempt returns or raises

    async def _apost(self, client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> Any:
        url = self.base_url + path
        for attempt in range(self.max_retries + 1):
            last = attempt == self.max_retries
            try:
                response = await client.post(url, json=body)
            except httpx.TransportError as exc:
                if last or not _retried_error(exc):
                    raise _unreachable(url, exc) from exc
                await asyncio.sleep(_backoff(attempt, None))
                continue
            if response.status_code in RETRIED_STATUSES and not last:
                await asyncio.sleep(_backoff(attempt, response))
                continue
            return _answer(url, response)
        raise AssertionError  # pragma: no cover - the last attempt returns or raises

    def _async_client(self) -> httpx.AsyncClient:
        # One per call: an AsyncClient belongs to the event loop it first ran in.
        return httpx.AsyncClient(timeout=self.timeout, headers=self._headers())

    def _chunks(self, items: list[T]) -> list[list[T]]:
        size = self.batch_size
        return [items[start : start + size] for start in range(0, len(items), size)]

    async def _gather(self, jobs: list[Callable[[], Coroutine[Any, Any, T]]]) -> list[T]:
        """Run jobs, a few at a time, and return their results in order."""
        limit = asyncio.Semaphore(_CONCURRENT_REQUESTS)

        async def run(job: Callable[[], Coroutine[Any, Any, T]]) -> T:
            async with limit:
                return await job()

        return list(await asyncio.gather(*(run(job) for job in jobs)))


class RemoteEmbedder(_RemoteClient):
    """Embeds queries and documents through a server's OpenAI ``/v1/embeddings`` endpoint.

    The same methods as :class:`~bge_integrations.BGEEmbedder`; queries are sent with
    ``input_type="query"`` and documents with ``"document"``, so the server applies its model's
    query instruction to queries only, exactly as a local embedder does. Every input gets one
    vector, in input order.

    Args:
        base_url: The server, e.g. ``"http://localhost:8080"`` (a trailing ``/v1`` is dropped:
            the endpoint paths add it).
        api_key: Sent as ``Authorization: Bearer <key>``; None sends none.
        model: Sent as the request's ``model``, for servers that route by it; None sends none
            (``bge-integrations serve`` serves one model and accepts any name).
        batch_size: Texts per request at most; more are split into several requests (sent
            concurrently by the async methods).
        timeout: Seconds to wait for each answer.
        max_retries: Retries of a request answered 429 or 503, or that could not connect.

    Raises:
        RemoteError: From the embedding methods, when the server is unreachable, answers with
            an error status (its message quoted) or answers with a wrong number of vectors.

    Example:
        >>> embedder = RemoteEmbedder("http://localhost:8080", api_key="secret")
        >>> embedder
        RemoteEmbedder('http://localhost:8080', api_key='***', model=None)
        >>> embedder.embed_query("what is BGE?")[:2]  # doctest: +SKIP
        [0.012..., -0.034...]

    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        model: str | None = None,
        batch_size: int = 128,
        timeout: float = 60.0,
        max_retries: int = 3,
    ) -> None:
        super().__init__(
            base_url, api_key=api_key, model=model, batch_size=batch_size, timeout=timeout, max_retries=max_retries
        )

    @property
    def dimension(self) -> int:
        """Width of the server's vectors (asks the server to embed one short text)."""
        return len(self.embed_documents(["dimension"])[0])

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed documents (no instruction). One vector per text, in input order."""
        texts = check_texts(texts)
        return [vector for chunk in self._chunks(texts) for vector in self._embed(chunk, "document")]

    def embed_queries(self, texts: list[str]) -> list[list[float]]:
        """Embed queries: the server puts its query instruction on each."""
        texts = check_texts(texts)
        return [vector for chunk in self._chunks(texts) for vector in self._embed(chunk, "query")]

    def embed_query(self, text: str) -> list[float]:
        """Embed one query, with the server's query instruction."""
        return self._embed([check_text(text)], "query")[0]

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """Async :meth:`embed_documents`: requests of ``batch_size`` texts, a few in flight at once."""
        return await self._aembed(check_texts(texts), "document")

    async def aembed_queries(self, texts: list[str]) -> list[list[float]]:
        """Async :meth:`embed_queries`."""
        return await self._aembed(check_texts(texts), "query")

    async def aembed_query(self, text: str) -> list[float]:
        """Async :meth:`embed_query`."""
        return (await self._aembed([check_text(text)], "query"))[0]

    def _body(self, texts: list[str], role: str) -> dict[str, Any]:
        body: dict[str, Any] = {"input": texts, "input_type": role, "encoding_format": "float"}
        if self.model is not None:
            body["model"] = self.model
        return body

    def _embed(self, texts: list[str], role: str) -> list[list[float]]:
        if not texts:
            return []
        path = "/v1/embeddings"
        return _vectors(self.base_url + path, self._post(path, self._body(texts, role)), len(texts))

    async def _aembed(self, texts: list[str], role: str) -> list[list[float]]:
        if not texts:
            return []
        path = "/v1/embeddings"
        async with self._async_client() as client:

            def job(chunk: list[str]) -> Callable[[], Coroutine[Any, Any, list[list[float]]]]:
                async def send() -> list[list[float]]:
                    answer = await self._apost(client, path, self._body(chunk, role))
                    return _vectors(self.base_url + path, answer, len(chunk))

                return send

            parts = await self._gather([job(chunk) for chunk in self._chunks(texts)])
        return [vector for part in parts for vector in part]


class RemoteReranker(_RemoteClient):
    """Scores and ranks passages through a server's Cohere-style ``/rerank`` endpoint.

    The methods the adapters call on :class:`~bge_integrations.BGEReranker` (``score``,
    ``score_pairs``, ``rank`` and their async versions), with the same results: one score per
    passage in input order; ``rank`` sorts best first, ties in input order, then applies
    ``score_threshold`` and ``top_n`` here. Scores are the server's sigmoid scores, or its raw
    logits with ``normalize=False`` (sent as ``"raw_scores": true``).

    Args:
        base_url: The server, e.g. ``"http://localhost:8080"``.
        api_key: Sent as ``Authorization: Bearer <key>``; None sends none.
        model: Sent as the request's ``model``; None sends none.
        normalize: Sigmoid scores (True) or raw logits (False), unless a call says otherwise.
        batch_size: Passages per request at most; more are split into several requests.
        timeout: Seconds to wait for each answer.
        max_retries: Retries of a request answered 429 or 503, or that could not connect.

    Raises:
        RemoteError: From the scoring methods, when the server is unreachable, answers with an
            error status (its message quoted) or scores other passages than those sent.

    Example:
        >>> reranker = RemoteReranker("http://localhost:8080", normalize=False)
        >>> reranker.normalize
        False
        >>> reranker.rank("what is a panda?", ["hi", "The giant panda is a bear."], top_n=1)  # doctest: +SKIP
        [RankedText(index=1, score=5.7..., text='The giant panda is a bear.')]

    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        model: str | None = None,
        normalize: bool = True,
        batch_size: int = 128,
        timeout: float = 60.0,
        max_retries: int = 3,
    ) -> None:
        super().__init__(
            base_url, api_key=api_key, model=model, batch_size=batch_size, timeout=timeout, max_retries=max_retries
        )
        if not isinstance(normalize, bool):
            msg = f"normalize must be True or False, got {normalize!r}"
            raise TypeError(msg)
        self.normalize = normalize

    def score(self, query: str, documents: list[str], *, normalize: bool | None = None) -> list[float]:
        """Score each document against query: one float per document, in input order.

        Args:
            query: The query.
            documents: Passages to score.
            normalize: Sigmoid (True) or raw logits (False) for this call; None: ``normalize``.

        """
        query = check_text(query, name="query")
        documents = check_texts(documents, name="documents")
        raw = self._raw(normalize)
        return [score for chunk in self._chunks(documents) for score in self._score(query, chunk, raw)]

    def score_pairs(self, pairs: Sequence[tuple[str, str]], *, normalize: bool | None = None) -> list[float]:
        """Score (query, passage) pairs: one float per pair, in input order (one request per query)."""
        checked = check_pairs(pairs)
        groups: dict[str, list[int]] = {}
        for index, (query, _) in enumerate(checked):
            groups.setdefault(query, []).append(index)
        scores = [0.0] * len(checked)
        for query, indices in groups.items():
            values = self.score(query, [checked[i][1] for i in indices], normalize=normalize)
            for index, value in zip(indices, values, strict=True):
                scores[index] = value
        return scores

    def rank(
        self,
        query: str,
        documents: list[str],
        top_n: int | None = None,
        score_threshold: float | None = None,
        *,
        normalize: bool | None = None,
    ) -> list[RankedText]:
        """Documents sorted by score, best first (ties keep input order), as ``BGEReranker.rank``.

        Args:
            query: The query.
            documents: Texts to rank.
            top_n: Keep the best top_n; None keeps all.
            score_threshold: Drop documents scoring below it (on the scale of this call).
            normalize: Score scale for this call, as in :meth:`score`.

        """
        top_n = check_positive_int(top_n, name="top_n", allow_none=True)
        threshold = check_optional_float(score_threshold, name="score_threshold")
        documents = check_texts(documents, name="documents")
        return ranked(self.score(query, documents, normalize=normalize), documents, top_n, threshold)

    async def ascore(self, query: str, documents: list[str], *, normalize: bool | None = None) -> list[float]:
        """Async :meth:`score`."""
        query = check_text(query, name="query")
        documents = check_texts(documents, name="documents")
        raw = self._raw(normalize)
        if not documents:
            return []
        path = "/rerank"
        async with self._async_client() as client:

            def job(chunk: list[str]) -> Callable[[], Coroutine[Any, Any, list[float]]]:
                async def send() -> list[float]:
                    answer = await self._apost(client, path, self._body(query, chunk, raw))
                    return _scores(self.base_url + path, answer, len(chunk))

                return send

            parts = await self._gather([job(chunk) for chunk in self._chunks(documents)])
        return [score for part in parts for score in part]

    async def arank(
        self,
        query: str,
        documents: list[str],
        top_n: int | None = None,
        score_threshold: float | None = None,
        *,
        normalize: bool | None = None,
    ) -> list[RankedText]:
        """Async :meth:`rank`."""
        top_n = check_positive_int(top_n, name="top_n", allow_none=True)
        threshold = check_optional_float(score_threshold, name="score_threshold")
        documents = check_texts(documents, name="documents")
        return ranked(await self.ascore(query, documents, normalize=normalize), documents, top_n, threshold)

    def _raw(self, normalize: bool | None) -> bool:
        if normalize is not None and not isinstance(normalize, bool):
            msg = f"normalize must be True, False or None, got {normalize!r}"
            raise TypeError(msg)
        return not (self.normalize if normalize is None else normalize)

    def _body(self, query: str, documents: list[str], raw: bool) -> dict[str, Any]:
        body: dict[str, Any] = {"query": query, "documents": documents, "return_documents": False, "raw_scores": raw}
        if self.model is not None:
            body["model"] = self.model
        return body

    def _score(self, query: str, documents: list[str], raw: bool) -> list[float]:
        if not documents:
            return []
        path = "/rerank"
        return _scores(self.base_url + path, self._post(path, self._body(query, documents, raw)), len(documents))


def ranked(scores: list[float], documents: list[str], top_n: int | None, threshold: float | None) -> list[RankedText]:
    """Documents by score, best first, ties in input order; then the threshold, then top_n.

    Example:
        >>> [item.index for item in ranked([0.1, 0.9, 0.9], ["a", "b", "c"], 2, None)]
        [1, 2]

    """
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    items = [RankedText(index=i, score=scores[i], text=documents[i]) for i in order]
    if threshold is not None:
        items = [item for item in items if item.score >= threshold]
    return items if top_n is None else items[:top_n]


# --- answers ------------------------------------------------------------------------------------


def _retried_error(exc: httpx.TransportError) -> bool:
    """Whether the request surely never reached the server (so sending it again is safe)."""
    return isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout))


def _unreachable(url: str, exc: httpx.TransportError) -> RemoteError:
    what = "timed out" if isinstance(exc, httpx.TimeoutException) else "could not be reached"
    msg = f"POST {url} {what}: {type(exc).__name__}: {exc or 'no details'}. Is the server running at that address?"
    return RemoteError(msg, url=url)


def _backoff(attempt: int, response: httpx.Response | None) -> float:
    """Seconds to wait before retry number attempt + 1: ``Retry-After`` if given, else 0.5 s doubling."""
    if response is not None:
        wait = _retry_after(response.headers.get("retry-after"))
        if wait is not None:
            return min(wait, MAX_RETRY_WAIT)
    return float(min(0.5 * 2**attempt, MAX_RETRY_WAIT))


def _retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds: a number of seconds, or an HTTP date; None if absent or unreadable."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _answer(url: str, response: httpx.Response) -> Any:
    """The JSON of a successful answer; a RemoteError quoting the server's message otherwise."""
    if response.is_success:
        try:
            return response.json()
        except ValueError as exc:
            msg = f"POST {url} answered {response.status_code} with a body that is not JSON: {response.text!r:.200}"
            raise RemoteError(msg, url=url, status=response.status_code) from exc
    message = _error_message(response)
    hint = ""
    if response.status_code in (401, 403):
        hint = " (check api_key: it must be the server's key)"
    elif response.status_code == 404:
        hint = " (is base_url the server's address, and does it serve this model kind?)"
    msg = f"POST {url} answered {response.status_code} {response.reason_phrase}: {message}{hint}"
    raise RemoteError(msg, url=url, status=response.status_code)


def _error_message(response: httpx.Response) -> str:
    """The server's own error message: OpenAI ``{"error": {"message"}}``, TEI ``{"error"}``, FastAPI ``{"detail"}``."""
    try:
        body = response.json()
    except ValueError:
        return repr(response.text[:300]) if response.text else "no message"
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
        if isinstance(error, str):
            return error
        for key in ("detail", "message"):
            if key in body:
                return str(body[key])[:500]
    return f"{body!r:.300}"


def _malformed(url: str, what: str) -> RemoteError:
    return RemoteError(f"POST {url} answered, but {what}", url=url)


def _indexed(url: str, items: Any, count: int, *, key: str) -> dict[int, Any]:
    """``{index: item[key]}`` after checking that items hold each index in 0..count-1 exactly once."""
    if not isinstance(items, list):
        raise _malformed(url, f"without a list of results: got {type(items).__name__}")
    if len(items) != count:
        raise _malformed(url, f"with {len(items)} results for {count} inputs")
    found: dict[int, Any] = {}
    for position, item in enumerate(items):
        index = item.get("index") if isinstance(item, dict) else None
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < count or index in found:
            raise _malformed(url, f"result {position} has index {index!r} (expected each of 0..{count - 1} once)")
        if key not in item:
            raise _malformed(url, f"result {position} has no {key!r}")
        found[index] = item[key]
    return found


def _vectors(url: str, answer: Any, count: int) -> list[list[float]]:
    """One vector per input, in input order, from an OpenAI embeddings answer."""
    data = answer.get("data") if isinstance(answer, dict) else None
    found = _indexed(url, data, count, key="embedding")
    vectors = []
    for index in range(count):
        vector = found[index]
        if not isinstance(vector, list) or not all(_is_number(value) for value in vector):
            raise _malformed(url, f"the embedding of input {index} is not a list of numbers (ask for floats)")
        vectors.append([float(value) for value in vector])
    if len({len(vector) for vector in vectors}) > 1:
        raise _malformed(url, f"with vectors of different lengths: {sorted({len(v) for v in vectors})}")
    return vectors


def _scores(url: str, answer: Any, count: int) -> list[float]:
    """One score per passage, in input order, from a Cohere-style rerank answer."""
    results = answer.get("results") if isinstance(answer, dict) else None
    found = _indexed(url, results, count, key="relevance_score")
    scores = []
    for index in range(count):
        score = found[index]
        if not _is_number(score):
            raise _malformed(url, f"the score of document {index} is not a number: {score!r:.80}")
        scores.append(float(score))
    return scores


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


__all__ = [
    "RETRIED_STATUSES",
    "RemoteEmbedder",
    "RemoteError",
    "RemoteReranker",
    "check_base_url",
    "ranked",
    "remote_arguments",
    "server_owned_settings",
]
