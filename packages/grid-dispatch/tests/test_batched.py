"""mode="batched": the objective evaluates a whole (unpadded) batch of configurations itself."""

from __future__ import annotations

import jax
import numpy as np
import pandas as pd
import pytest
from grid_dispatch import Evaluator, SearchSpace, load_results, run_grid, scan_results


def mixed_space():
    # 3 x 7 x 2 = 42 configurations: int, float and string axes.
    return SearchSpace({"k": [1, 2, 3], "x": np.linspace(-1.0, 1.0, 7), "model": ["a", "b"]})


def smooth_batch(configs):
    x, k = configs["x"], configs["k"]
    w = np.where(configs["model"] == "a", 1.0, -0.5)
    with np.errstate(divide="ignore"):
        log = np.log(x + 1.0)  # -inf at x = -1: recorded as non-finite
    return {
        "loss": w * (x - 0.3) ** 2 + 0.1 * k,
        "log": log,
        "vec": np.stack([x, x * k, np.sin(x)], axis=1),
        "twice_k": 2 * k,
    }


def smooth_one(config):
    # The same quantities written independently for one configuration (Python scalars).
    x, k = config["x"], config["k"]
    w = 1.0 if config["model"] == "a" else -0.5
    return {
        "loss": w * (x - 0.3) ** 2 + 0.1 * k,
        "log": float(np.log(x + 1.0)) if x > -1.0 else -np.inf,
        "vec": np.array([x, x * k, np.sin(x)]),
        "twice_k": 2 * k,
    }


def test_batched_mode_writes_the_same_table_as_loop_mode(tmp_path):
    space = mixed_space()
    seen = []

    def recorded(configs):
        seen.append({name: col.dtype.kind for name, col in configs.items()})
        seen[-1]["n"] = {col.size for col in configs.values()}
        return smooth_batch(configs)

    summary = run_grid(recorded, space, tmp_path / "batched", mode="batched", batch_size=8)
    run_grid(smooth_one, space, tmp_path / "loop", mode="loop", batch_size=8, progress=False)
    batched, loop = load_results(tmp_path / "batched"), load_results(tmp_path / "loop")
    pd.testing.assert_frame_equal(batched, loop, check_exact=False, rtol=1e-12)
    # x = -1 in 3 k x 2 models: non-finite rows, exactly as in loop mode.
    assert (batched["status"] == "nonfinite").sum() == 6
    assert (batched["error"][batched["status"] == "nonfinite"] == "non-finite values in log").all()
    cols = space.columns(np.arange(len(space)))
    np.testing.assert_allclose(batched["k"], cols["k"])
    vec_ref = np.stack([cols["x"], cols["x"] * cols["k"], np.sin(cols["x"])], axis=1)
    np.testing.assert_allclose(np.stack(batched["vec"].to_numpy()), vec_ref, rtol=1e-15)
    # Unpadded batches of at most batch_size, every axis as a 1-D numpy array.
    assert [s["n"] for s in seen] == [{8}] * 5 + [{2}]
    assert all((s["k"], s["x"], s["model"]) == ("i", "f", "U") for s in seen)
    assert (summary.n_evaluated, summary.n_failed, summary.n_devices) == (42, 6, 0)


def fragile_batch(configs):
    x = configs["x"]
    if np.any(x == 3.0):
        raise ValueError("solver diverged")  # raised by the objective: a failed configuration
    inv = np.divide(1.0, x, out=np.full_like(x, np.inf), where=x != 0.0)
    return {"inv": inv, "x2": x**2}


def fragile_one(config):
    out = fragile_batch({name: np.array([value]) for name, value in config.items()})
    return {key: val[0] for key, val in out.items()}


def test_a_raising_batch_is_redone_one_by_one_and_only_the_culprit_fails(tmp_path):
    space = SearchSpace({"x": np.arange(10.0)})
    lengths = []

    def counted(configs):
        lengths.append(configs["x"].size)
        return fragile_batch(configs)

    summary = run_grid(counted, space, tmp_path / "b", mode="batched", batch_size=4, progress=False)
    # Batch 0..3 raises, is redone as four batches of one; 4..7 and 8..9 run whole.
    assert lengths == [4, 1, 1, 1, 1, 4, 2]
    assert summary.n_failed == 2
    df = load_results(tmp_path / "b")
    assert df["status"].tolist() == ["nonfinite", "ok", "ok", "error"] + ["ok"] * 6
    assert df.loc[3, "error"].startswith("ValueError: solver diverged (at ")
    assert df.loc[0, "error"] == "non-finite values in inv"
    assert np.isnan(df.loc[3, "inv"]) and np.isnan(df.loc[3, "x2"])
    np.testing.assert_allclose(df.loc[[1, 2, 4, 9], "inv"], [1.0, 0.5, 0.25, 1 / 9])
    # The failure rows (message included) are those loop mode records.
    run_grid(fragile_one, space, tmp_path / "l", mode="loop", batch_size=4, progress=False)
    pd.testing.assert_frame_equal(df, load_results(tmp_path / "l"))


def test_a_batch_failing_entirely_before_the_outputs_are_known():
    space = SearchSpace({"x": [0.5, 1.0, 2.0, 3.0]})

    def early_failures(configs):
        if np.any(configs["x"] < 1.5):
            raise FloatingPointError("no fit")
        return {"y": np.sqrt(configs["x"])}

    ev = Evaluator(early_failures, space, batch_size=2, mode="batched")
    first, second = ev.evaluate(np.arange(2)), ev.evaluate(np.arange(2, 4))
    assert first.status.tolist() == ["error", "error"] and first.outputs == {}
    assert all(e.startswith("FloatingPointError: no fit") for e in first.error)
    assert second.status.tolist() == ["ok", "ok"]
    np.testing.assert_allclose(second.outputs["y"], np.sqrt([2.0, 3.0]))


class Interrupted(BaseException):
    """Stands for a kill: not an Exception, so it is not recorded as a failure."""


def test_resume_after_an_interruption_evaluates_only_the_missing_configurations(tmp_path):
    space = SearchSpace({"a": list(range(6)), "b": [0.0, 0.5, 1.0, 1.5]})  # 24 configurations

    def linear(configs):
        return {"y": configs["a"] * 10.0 + configs["b"], "a2": configs["a"] ** 2}

    calls = []

    def interrupted_on_third_call(configs):
        calls.append(1)
        if len(calls) == 3:
            raise Interrupted
        return linear(configs)

    out = tmp_path / "run"
    with pytest.raises(Interrupted):
        run_grid(
            interrupted_on_third_call,
            space,
            out,
            mode="batched",
            batch_size=5,
            flush_every_s=0.0,
            progress=False,
        )
    assert np.flatnonzero(scan_results(out, space, owned=set()).done).tolist() == list(range(10))

    seen = []

    def recording(configs):
        pairs = zip(configs["a"].tolist(), configs["b"].tolist(), strict=True)
        seen.append([space.index_of({"a": a, "b": b}) for a, b in pairs])
        return linear(configs)

    summary = run_grid(recording, space, out, mode="batched", batch_size=5, progress=False)
    assert (summary.n_done_before, summary.n_evaluated) == (10, 14)
    assert seen == [list(range(10, 15)), list(range(15, 20)), list(range(20, 24))]
    run_grid(linear, space, tmp_path / "fresh", mode="batched", batch_size=5, progress=False)
    pd.testing.assert_frame_equal(load_results(out), load_results(tmp_path / "fresh"))


def test_jax_outputs_are_accepted():
    space = SearchSpace({"x": [1.0, 2.0, 3.0]})
    fit = jax.jit(lambda x: {"y": x**2, "grad": jax.vmap(jax.grad(lambda t: t**3))(x)})
    res = Evaluator(lambda c: fit(c["x"]), space, batch_size=3, mode="batched").evaluate(
        np.arange(3)
    )
    np.testing.assert_allclose(res.outputs["y"], [1.0, 4.0, 9.0])
    np.testing.assert_allclose(res.outputs["grad"], [3.0, 12.0, 27.0])


def test_wrong_output_shapes_raise_a_clear_error(tmp_path):
    space = SearchSpace({"x": np.linspace(0.0, 1.0, 6)})
    cases = [
        (
            lambda c: {"y": np.zeros(3)},
            r"output 'y' has shape \(3,\); expected leading dimension 4",
        ),
        (lambda c: {"y": 1.0}, r"output 'y' has shape \(\); expected leading dimension 4"),
        (lambda c: {"y": c["x"], "z": c["x"][:1]}, r"output 'z' .* leading dimension 4"),
        (lambda c: c["x"], "non-empty dict"),
    ]
    for objective, match in cases:
        with pytest.raises(ValueError, match=match):
            Evaluator(objective, space, batch_size=4, mode="batched").evaluate(np.arange(4))

    def keys_change(configs):
        return {"a": configs["x"]} if configs["x"][0] == 0.0 else {"b": configs["x"]}

    with pytest.raises(ValueError, match="inconsistent keys"):
        run_grid(keys_change, space, tmp_path, mode="batched", batch_size=4, progress=False)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"static_axes": ("x",)}, "static_axes has no effect in mode='batched'"),
        ({"devices": jax.local_devices()}, "devices is not used in mode='batched'"),
    ],
)
def test_batched_mode_rejects_vmap_only_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Evaluator(lambda c: {"y": c["x"]}, SearchSpace({"x": [1.0]}), mode="batched", **kwargs)
