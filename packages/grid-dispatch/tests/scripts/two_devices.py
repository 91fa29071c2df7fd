"""Run a grid on two (forced) host devices and on one; print whether results agree."""

import sys

import jax
import jax.numpy as jnp
import numpy as np
from grid_dispatch import Evaluator, SearchSpace, load_results, run_grid

out = sys.argv[1]
space = SearchSpace({"a": np.arange(10), "b": np.linspace(0.0, 1.0, 9)})


def f(c):
    return {"y": jnp.sum(jnp.sin(jnp.arange(16.0) * c["b"])) + c["a"]}


ev = Evaluator(f, space, batch_size=8)
idx = np.arange(8)
args = {"a": jnp.asarray(space.columns(idx)["a"]), "b": jnp.asarray(space.columns(idx)["b"])}
sharded = len(jax.device_put(args, ev._sharding)["a"].sharding.device_set) == 2
two = run_grid(f, space, out + "/two", batch_size=8, progress=False)
one = run_grid(
    f, space, out + "/one", batch_size=8, devices=jax.local_devices()[:1], progress=False
)
equal = load_results(out + "/two")["y"].equals(load_results(out + "/one")["y"])
print(f"devices={two.n_devices} sharded={sharded} equal={equal} one={one.n_devices}")
