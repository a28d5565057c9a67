from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from llama_index.core.bridge.pydantic import Field
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.schema import NodeWithScore, TextNode

from bge_integrations.llama_index import BGEEmbedding, BGERerank

QUERY = "Where do giant pandas live?"
PASSAGES = [
    "The giant panda is a bear species endemic to China.",
    "Paris is the capital and most populous city of France.",
    "Mitochondria are the powerhouse of the cell.",
    "BGE models map text to dense vectors for retrieval.",
    "A cross-encoder reads the query and the passage together.",
]


class Recorder(BaseEventHandler):
    """Keeps every instrumentation event it sees."""

    events: list[BaseEvent] = Field(default_factory=list)

    @classmethod
    def class_name(cls) -> str:
        return "Recorder"

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        self.events.append(event)

    def of(self, kind: type[BaseEvent]) -> list[Any]:
        return [event for event in self.events if isinstance(event, kind)]


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    """An event handler on the root dispatcher, removed after the test."""
    handler = Recorder()
    root = get_dispatcher()
    root.add_event_handler(handler)
    yield handler
    root.event_handlers.remove(handler)


@pytest.fixture
def embedding(tiny_embedder_path: str) -> BGEEmbedding:
    return BGEEmbedding(tiny_embedder_path, device="cpu")


@pytest.fixture
def rerank(tiny_reranker_path: str) -> BGERerank:
    return BGERerank(model=tiny_reranker_path, device="cpu", top_n=3)


def scored_nodes(texts: list[str] = PASSAGES) -> list[NodeWithScore]:
    """Retrieval results: one node per text, retrieval scores falling from 0.9."""
    return [
        NodeWithScore(node=TextNode(text=text, id_=f"n{i}", metadata={"source": f"doc{i}"}), score=0.9 - i / 10)
        for i, text in enumerate(texts)
    ]
