from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack

import pytest
import torch

from bge_integrations.serving import ServerSettings
from tests.serving.servers import running_server


@pytest.fixture
def live_server() -> Iterator[Callable[[ServerSettings], str]]:
    """Factory: ``live_server(ServerSettings(...))`` starts a server for this test and returns its base URL."""
    with ExitStack() as stack:

        def start(settings: ServerSettings) -> str:
            return stack.enter_context(running_server(settings))

        yield start


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Tiny models: one torch thread is fastest and leaves the other core to the HTTP side."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
