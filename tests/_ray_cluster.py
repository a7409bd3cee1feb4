"""A Ray cluster of several nodes on this machine, for tests/test_scaleout.py."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

# The tiny model (112 MB) does not fit this store: Ray keeps it on disk, which it refuses once the disk is
# 95% full (test_a_model_ray_cannot_store_is_one_line shows the refusal). Stores that held it (256 MB)
# left the worker-cannot-start test waiting for an actor that never started, in 3 of 6 module runs.
NODE = {"num_cpus": 1, "object_store_memory": 100 * 1024**2, "node_ip_address": "127.0.0.1"}


@contextmanager
def loopback_cluster(head: dict[str, Any], more_nodes: int = 0) -> Iterator[Any]:
    """Ray nodes on this machine (ray.cluster_utils.Cluster), bound to 127.0.0.1. Ray resolves 127.0.0.1
    to the machine's outward address unless told that this is a single-machine cluster (the variable,
    read by the processes Ray starts, and its constant here)."""
    import ray
    from ray._private import ray_constants
    from ray.cluster_utils import Cluster

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        patch.setattr(ray_constants, "ENABLE_RAY_CLUSTER", False)
        nodes = Cluster(initialize_head=True, head_node_args={**head, "include_dashboard": False})
        try:
            for _ in range(more_nodes):
                nodes.add_node(**NODE)
            yield nodes
        finally:
            if ray.is_initialized():
                ray.shutdown()
            nodes.shutdown()
