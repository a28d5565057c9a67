from __future__ import annotations

import pytest

from tests.ray_scale.cluster import ensure_local_ray


@pytest.fixture
def ray_cluster(request: pytest.FixtureRequest) -> None:
    """A local Ray instance (2 CPUs), shared by the whole run."""
    ensure_local_ray(request.config)
