"""Multi-host start-up: jax.distributed.initialize from flags or the environment."""

from __future__ import annotations

import os
from typing import Optional

from jaxcnn._env import check

ENV = {"coordinator": "JAXCNN_COORDINATOR", "num_processes": "JAXCNN_NUM_PROCESSES",
       "process_id": "JAXCNN_PROCESS_ID"}


def initialize(coordinator: Optional[str] = None, num_processes: Optional[int] = None,
               process_id: Optional[int] = None) -> bool:
    """Join a multi-process run if a coordinator is given (argument or $JAXCNN_COORDINATOR,
    with $JAXCNN_NUM_PROCESSES and $JAXCNN_PROCESS_ID). Returns True if it did.

    Must run before anything touches a JAX device. On CPU it selects gloo
    collectives so that processes on one or several machines can all-reduce.
    """
    coordinator = coordinator or check(ENV["coordinator"])
    if not coordinator:
        return False
    if num_processes is None and check(ENV["num_processes"]) is not None:
        num_processes = int(check(ENV["num_processes"]))
    if process_id is None and check(ENV["process_id"]) is not None:
        process_id = int(check(ENV["process_id"]))
    if num_processes is None or process_id is None:
        raise ValueError(f"a multi-process run needs the process count and id as well as the coordinator: pass "
                         f"--num_processes and --process_id (or set {ENV['num_processes']} and {ENV['process_id']}).")
    if not 0 <= process_id < num_processes:
        raise ValueError(f"process_id must be in [0, {num_processes}), got {process_id}.")
    import jax

    try:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    except Exception:  # option absent in this JAX: its default CPU collectives are used
        pass
    jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes, process_id=process_id)
    return True
