"""One local Ray instance per pytest run, started by the first test that needs it.

``ensure_local_ray`` starts it (2 CPUs, no dashboard, offline workers) unless it is up already,
and registers its shutdown for the end of the run, so test folders that each need Ray share one.
"""

from __future__ import annotations

import os

import pytest

WORKER_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
"""Environment of every Ray worker: the tiny models are local folders and nothing reaches the hub."""


def ensure_local_ray(config: pytest.Config) -> None:
    """Start a local Ray (``num_cpus=2``) unless one is running; it shuts down when pytest ends."""
    import ray
    import ray.data

    if not ray.is_initialized():
        os.environ["RAY_USAGE_STATS_ENABLED"] = "0"  # no usage report to the network
        ray.init(
            address="local",  # a fresh instance even where RAY_ADDRESS names a cluster
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            runtime_env={"env_vars": WORKER_ENV},
        )
        config.add_cleanup(ray.shutdown)
    ray.data.DataContext.get_current().enable_progress_bars = False
