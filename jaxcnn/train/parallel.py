"""How the pure steps run: "none" (single-device jit), "pmap" (replicated
state, gradients and BatchNorm statistics averaged with lax.pmean over the axis
"batch") or "mesh" (jit over a jax.sharding.Mesh: batch sharded over the axis
"data", state replicated; spans hosts).

Every strategy takes and gives host-side state in the same form, so a
checkpoint written under one resumes under another.
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jaxcnn._validation import check_choice
from jaxcnn.data.sharding import check_divisible, split_for_devices
from jaxcnn.train.step import eval_step, train_step

PARALLEL = ("none", "pmap", "mesh")
PMAP_AXIS = "batch"
MESH_AXIS = "data"


def to_host(tree):
    """A pytree of (possibly replicated, possibly multi-host) arrays as numpy, from this process's first copy."""
    def get(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            x = x.addressable_data(0)
        return np.asarray(x)

    return jax.tree_util.tree_map(get, tree)


class Strategy:
    """One parallel mode. `put_state`/`get_state` move a TrainState between host
    and devices, `put_batch` places a process-local batch, `train`/`evaluate`
    run the compiled steps."""

    name: str

    def __init__(self, *, preprocess: Callable, task=None, label_smoothing: float = 0.0, aux_weight: float = 0.3,
                 learning_rate_fn=None, progress_fn=None, ema_decay: float = 0.0, mix=None):
        self.step_kwargs = dict(preprocess=preprocess, task=task, label_smoothing=label_smoothing,
                                aux_weight=aux_weight, learning_rate_fn=learning_rate_fn, progress_fn=progress_fn,
                                ema_decay=ema_decay, mix=mix)
        self.eval_kwargs = dict(preprocess=preprocess, task=task)

    @property
    def num_devices(self) -> int:
        return jax.device_count()

    def check_batch(self, global_batch: int, what: str = "batch_size") -> None:
        check_divisible(global_batch, self.num_devices, what)

    def get_state(self, state):
        return state.replace_arrays(to_host(state.arrays()))


class NoParallel(Strategy):
    name = "none"

    def __init__(self, **kw):
        super().__init__(**kw)
        if jax.process_count() > 1:
            raise ValueError("parallel='none' runs on one device; with several processes use parallel='mesh' "
                             "or 'pmap'.")
        self.device = jax.local_devices()[0]
        self.train = jax.jit(functools.partial(train_step, **self.step_kwargs), donate_argnums=0)
        self.evaluate = jax.jit(functools.partial(eval_step, **self.eval_kwargs))

    @property
    def num_devices(self) -> int:
        return 1

    def put_state(self, state):
        return jax.device_put(state, self.device)

    def put_batch(self, batch):
        return jax.device_put(batch, self.device)


class PmapParallel(Strategy):
    name = "pmap"

    def __init__(self, **kw):
        super().__init__(**kw)
        self.devices = jax.local_devices()
        self.train = jax.pmap(functools.partial(train_step, axis_name=PMAP_AXIS, device_fold=True,
                                                **self.step_kwargs),
                              axis_name=PMAP_AXIS, in_axes=(0, 0, None), donate_argnums=0)
        self.evaluate = jax.pmap(functools.partial(eval_step, axis_name=PMAP_AXIS, **self.eval_kwargs),
                                 axis_name=PMAP_AXIS)

    def put_state(self, state):
        # One copy per local device; pmap places axis 0 one slice per device.
        stacked = jax.tree_util.tree_map(lambda x: np.stack([np.asarray(x)] * len(self.devices)), state)
        return jax.pmap(lambda t: t)(stacked)

    def get_state(self, state):
        return state.replace_arrays(jax.tree_util.tree_map(lambda x: np.asarray(x[0]), state.arrays()))

    def put_batch(self, batch):
        return split_for_devices(batch, len(self.devices))


class MeshParallel(Strategy):
    name = "mesh"

    def __init__(self, **kw):
        super().__init__(**kw)
        self.mesh = Mesh(np.asarray(jax.devices()), (MESH_AXIS,))
        self.replicated = NamedSharding(self.mesh, P())
        self.sharded = NamedSharding(self.mesh, P(MESH_AXIS))
        self.train = jax.jit(functools.partial(train_step, **self.step_kwargs),
                             out_shardings=(self.replicated, self.replicated), donate_argnums=0)
        self.evaluate = jax.jit(functools.partial(eval_step, **self.eval_kwargs), out_shardings=self.replicated)

    def put_state(self, state):
        def put(x):
            x = np.asarray(x)
            return jax.make_array_from_callback(x.shape, self.replicated, lambda idx: x[idx])

        return jax.tree_util.tree_map(put, state)

    def put_batch(self, batch):
        return jax.tree_util.tree_map(
            lambda x: jax.make_array_from_process_local_data(self.sharded, np.asarray(x)), batch)


def make_strategy(parallel: str, **kw) -> Strategy:
    """The Strategy for config value `parallel` ("none", "pmap" or "mesh")."""
    check_choice("parallel", parallel, PARALLEL)
    return {"none": NoParallel, "pmap": PmapParallel, "mesh": MeshParallel}[parallel](**kw)

