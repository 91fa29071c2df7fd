"""Batched evaluation: vmap vs loop, static groups, failures, seed reductions, devices."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from grid_dispatch import Evaluator, SearchSpace, reduce_over_seeds


def smooth(config):
    x, k = config["x"], config["k"]
    return {"loss": (x - 0.3) ** 2 + 0.1 * k, "vec": jnp.stack([x, x * k, jnp.sin(x)])}


def reference(space, idx):
    cols = space.columns(idx)
    x, k = cols["x"], cols["k"]
    return (x - 0.3) ** 2 + 0.1 * k, np.stack([x, x * k, np.sin(x)], axis=1)


@pytest.fixture
def space():
    return SearchSpace({"k": [1, 2, 3], "x": np.linspace(-1, 1, 7)})


def test_vmap_and_loop_agree_with_numpy(space):
    idx = np.arange(len(space))
    loss_ref, vec_ref = reference(space, idx)
    vm = Evaluator(smooth, space, batch_size=32, mode="vmap").evaluate(idx)
    lp = Evaluator(smooth, space, batch_size=32, mode="loop").evaluate(idx)
    for res in (vm, lp):
        np.testing.assert_allclose(res.outputs["loss"], loss_ref, rtol=1e-6)
        np.testing.assert_allclose(res.outputs["vec"], vec_ref, rtol=1e-6, atol=1e-7)
        assert (res.status == "ok").all() and all(e is None for e in res.error)
    assert vm.outputs["vec"].shape == (21, 3)


def test_partial_batches_are_padded_and_compile_once(space):
    traces = []

    def counted(config):
        traces.append(1)
        return {"loss": config["x"] * config["k"]}

    ev = Evaluator(counted, space, batch_size=8, mode="vmap")
    for start in range(0, len(space), 5):  # batches of 5 and a last one of 1: all padded to 8
        idx = np.arange(start, min(start + 5, len(space)))
        res = ev.evaluate(idx)
        cols = space.columns(idx)
        np.testing.assert_allclose(res.outputs["loss"], cols["x"] * cols["k"], rtol=1e-6)
    assert len(traces) == 1


def test_no_recompilation_on_a_second_evaluator_or_run(tmp_path):
    from grid_dispatch import run_grid

    space = SearchSpace({"x": np.linspace(0.0, 1.0, 20)})
    traces = []

    def f(config):
        traces.append(1)
        return {"y": config["x"] ** 2}

    Evaluator(f, space, batch_size=8).evaluate(np.arange(8))
    Evaluator(f, space, batch_size=8).evaluate(np.arange(8, 16))
    run_grid(f, space, tmp_path, batch_size=8, progress=False)
    assert len(traces) == 1
    Evaluator(f, space, batch_size=16).evaluate(np.arange(16))  # another shape: compiles
    assert len(traces) == 2


def test_static_axes_set_shapes_and_compile_once_per_value():
    space = SearchSpace({"K": [2, 3, 5], "s": [0.5, 1.0, 2.0]})
    traces = []

    def padded_kmax(config):
        traces.append(config["K"])
        assert isinstance(config["K"], int)  # static: a Python value that can set a shape
        return {"total": jnp.sum(jnp.arange(config["K"]) * config["s"])}

    ev = Evaluator(padded_kmax, space, batch_size=16, static_axes=("K",))
    for _ in range(2):
        res = ev.evaluate(np.arange(len(space)))
    cols = space.columns(np.arange(len(space)))
    expected = cols["s"] * np.array([k * (k - 1) / 2 for k in cols["K"]])
    np.testing.assert_allclose(res.outputs["total"], expected, rtol=1e-6)
    assert sorted(traces) == [2, 3, 5]


def test_all_static_axes_evaluate_one_configuration_per_call():
    space = SearchSpace({"K": [2, 3], "name": ["p", "q"]})
    traces = []

    def f(config):
        traces.append((config["K"], config["name"]))
        return {"n": jnp.ones(config["K"]).sum() * (2.0 if config["name"] == "q" else 1.0)}

    for _ in range(2):
        res = Evaluator(f, space, batch_size=4, static_axes=("K",)).evaluate(np.arange(4))
        np.testing.assert_allclose(res.outputs["n"], [2.0, 4.0, 3.0, 6.0])
    assert len(traces) == 4  # once per configuration, not again on the second evaluator


def test_string_axes_are_static():
    space = SearchSpace({"model": ["square", "cube"], "x": [1.0, 2.0, 3.0]})

    def f(config):
        p = {"square": 2, "cube": 3}[config["model"]]
        return {"y": config["x"] ** p}

    res = Evaluator(f, space, batch_size=8).evaluate(np.arange(6))
    np.testing.assert_allclose(res.outputs["y"], [1, 4, 9, 1, 8, 27])


def test_value_dependent_branches_fall_back_to_a_loop():
    space = SearchSpace({"x": [-2.0, -1.0, 1.0, 2.0]})

    def branchy(config):
        return {"y": config["x"] if config["x"] > 0 else -2 * config["x"]}

    ev = Evaluator(branchy, space, batch_size=4, mode="auto")
    res = ev.evaluate(np.arange(4))
    assert ev.mode == "loop"
    np.testing.assert_allclose(res.outputs["y"], [4, 2, 1, 2])
    with pytest.raises(ValueError, match=r"cannot be traced by jax\.vmap"):
        Evaluator(branchy, space, batch_size=4, mode="vmap").evaluate(np.arange(4))


def test_failures_are_recorded_with_their_error_never_dropped():
    space = SearchSpace({"x": [0.0, 1.0, 2.0, 3.0, 4.0]})

    def fragile(config):
        if config["x"] == 3.0:
            raise RuntimeError("solver diverged")
        return {"inv": 1.0 / np.float64(config["x"]) if config["x"] else np.inf, "x2": config["x"]}

    res = Evaluator(fragile, space, batch_size=8, mode="loop").evaluate(np.arange(5))
    assert res.status.tolist() == ["nonfinite", "ok", "ok", "error", "ok"]
    assert res.error[0] == "non-finite values in inv"
    assert res.error[3].startswith("RuntimeError: solver diverged")
    np.testing.assert_allclose(res.outputs["inv"][[1, 2, 4]], [1, 0.5, 0.25])


def test_vmapped_failure_is_attributed_configuration_by_configuration():
    space = SearchSpace({"n": [1, 2, 3]})

    def reshaper(config):
        # Fails under vmap (traced value as a shape) but also for n=2 eagerly.
        if config["n"] == 2:
            raise ValueError("bad n")
        return {"y": jnp.float32(config["n"])}

    res = Evaluator(reshaper, space, batch_size=4).evaluate(np.arange(3))
    assert res.status.tolist() == ["ok", "error", "ok"]
    assert "ValueError: bad n" in res.error[1]


def test_nonfinite_values_from_vmap_are_flagged():
    space = SearchSpace({"x": [-1.0, 0.0, 1.0]})
    res = Evaluator(lambda c: {"r": jnp.log(c["x"]), "x1": c["x"]}, space).evaluate(np.arange(3))
    assert res.status.tolist() == ["nonfinite", "nonfinite", "ok"]
    assert res.error[0] == "non-finite values in r"


def test_inconsistent_outputs_raise():
    space = SearchSpace({"x": [1.0, 2.0]})

    def moody(config):
        return {"a": config["x"]} if config["x"] < 1.5 else {"b": config["x"]}

    with pytest.raises(ValueError, match="inconsistent keys"):
        Evaluator(moody, space, mode="loop").evaluate(np.arange(2))
    with pytest.raises(ValueError, match="clash with axis"):
        Evaluator(lambda c: {"x": c["x"]}, space).evaluate(np.arange(2))
    with pytest.raises(ValueError, match="non-empty dict"):
        Evaluator(lambda c: c["x"], space, mode="loop").evaluate(np.arange(2))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mode": "fast"}, "mode must be"),
        ({"batch_size": 0}, "batch_size must be a positive integer"),
        ({"static_axes": ("nope",)}, "not axes of the space"),
        ({"static_axes": "x"}, "sequence of axis names"),
    ],
)
def test_evaluator_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Evaluator(lambda c: {"y": c["x"]}, SearchSpace({"x": [1.0]}), **kwargs)


def test_reduce_over_seeds_matches_numpy():
    noise = np.random.default_rng(0).normal(size=(50, 4))
    noise_j = jnp.asarray(noise)

    def fit(config, seed):
        return {"chi2": (config["x"] + noise_j[seed]) ** 2 @ jnp.ones(4), "b": noise_j[seed, 0]}

    space = SearchSpace({"x": [0.0, 0.5, 1.0]})
    for batch in (None, 7):
        obj = reduce_over_seeds(fit, 50, stats=("mean", "std", "min", "max"), seed_batch_size=batch)
        res = Evaluator(obj, space, batch_size=4).evaluate(np.arange(3))
        for i, x in enumerate([0.0, 0.5, 1.0]):
            chi2 = ((x + noise) ** 2).sum(axis=1)
            np.testing.assert_allclose(res.outputs["chi2_mean"][i], chi2.mean(), rtol=1e-5)
            np.testing.assert_allclose(res.outputs["chi2_std"][i], chi2.std(ddof=1), rtol=1e-4)
            np.testing.assert_allclose(res.outputs["chi2_min"][i], chi2.min(), rtol=1e-5)
            np.testing.assert_allclose(res.outputs["b_max"][i], noise[:, 0].max(), rtol=1e-5)
    per_seed = reduce_over_seeds(fit, 50, stats=("mean",), keep_per_seed=True)
    out = per_seed({"x": jnp.float32(0.0)})
    assert out["chi2_per_seed"].shape == (50,)
    with pytest.raises(ValueError, match="n_seeds"):
        reduce_over_seeds(fit, 0)
    with pytest.raises(ValueError, match="stats must be"):
        reduce_over_seeds(fit, 3, stats=("median",))
    with pytest.raises(ValueError, match="needs n_seeds > 1"):
        reduce_over_seeds(fit, 1)


def test_batches_are_sharded_over_all_local_devices(tmp_path, run_script, scripts):
    # Two host CPU devices in a fresh process: results identical to one device.
    proc = run_script(
        [str(scripts / "two_devices.py"), str(tmp_path)],
        env={"XLA_FLAGS": "--xla_force_host_platform_device_count=2"},
    )
    assert "devices=2 sharded=True equal=True" in proc.stdout


def test_explicit_devices():
    space = SearchSpace({"x": [1.0, 2.0, 3.0]})
    ev = Evaluator(lambda c: {"y": 2 * c["x"]}, space, devices=jax.local_devices()[:1])
    np.testing.assert_allclose(ev.evaluate(np.arange(3)).outputs["y"], [2, 4, 6])
    with pytest.raises(ValueError, match="at least one device"):
        Evaluator(lambda c: {"y": c["x"]}, space, devices=[])
