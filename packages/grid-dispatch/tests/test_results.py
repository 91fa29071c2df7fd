"""Aggregation: top-k, best per group, means over seed axes, xarray, against numpy/pandas."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from grid_dispatch import (
    SearchSpace,
    best_per_group,
    load_results,
    mean_over,
    output_columns,
    run_grid,
    to_xarray,
    top_k,
)


def landscape(config):
    # A known bowl in (K, beta) with seed noise; minimum at K = 6, beta = 1.5.
    noise = 0.01 * ((config["seed"] * 7919) % 13 - 6.0)
    loss = (config["K"] - 6.0) ** 2 + 10.0 * (config["beta"] - 1.5) ** 2 + noise
    return {"loss": loss, "grad": (config["K"] - 6.0) * 2.0}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    space = SearchSpace(
        {"K": [2, 4, 6, 8], "beta": [1.3, 1.5, 1.7], "seed": list(range(5)), "tag": ["u", "v"]}
    )
    out = tmp_path_factory.mktemp("agg")
    run_grid(landscape, space, out, batch_size=32, progress=False)
    return space, load_results(out)


def _numpy_loss(df):
    noise = 0.01 * ((df["seed"] * 7919) % 13 - 6.0)
    return (df["K"] - 6.0) ** 2 + 10.0 * (df["beta"] - 1.5) ** 2 + noise


def test_table_has_axes_bookkeeping_and_outputs(run):
    space, df = run
    assert len(df) == len(space) == 120
    np.testing.assert_allclose(df["loss"], _numpy_loss(df), rtol=1e-6)
    assert sorted(output_columns(df)) == ["grad", "loss"]
    assert df.attrs["axes"] == ["K", "beta", "seed", "tag"]


def test_top_k_matches_numpy_argsort(run):
    _, df = run
    best = top_k(df, 5, "loss")
    order = np.argsort(df["loss"].to_numpy(), kind="stable")[:5]
    assert best["config_index"].tolist() == df["config_index"].to_numpy()[order].tolist()
    worst = top_k(df, 2, "loss", ascending=False)
    assert worst["loss"].iloc[0] == df["loss"].max()
    with pytest.raises(ValueError, match="k must be"):
        top_k(df, 0, "loss")
    with pytest.raises(ValueError, match="unknown columns"):
        top_k(df, 1, "nope")


def test_best_per_group_matches_pandas(run):
    _, df = run
    best = best_per_group(df, "K", "loss")
    expected = df.loc[df.groupby("K")["loss"].idxmin()].reset_index(drop=True)
    assert best["config_index"].tolist() == expected["config_index"].tolist()
    two = best_per_group(df, ["K", "tag"], "loss")
    assert len(two) == 8


def test_mean_over_seed_axis_matches_numpy(run):
    _, df = run
    stats = mean_over(df, "seed", values=["loss"])
    assert len(stats) == 4 * 3 * 2 and (stats["n_ok"] == 5).all()
    for _, row in stats.sample(5, random_state=0).iterrows():
        sel = df[(df["K"] == row["K"]) & (df["beta"] == row["beta"]) & (df["tag"] == row["tag"])]
        assert np.isclose(row["loss_mean"], sel["loss"].to_numpy().mean())
        assert np.isclose(row["loss_std"], sel["loss"].to_numpy().std(ddof=1))
    both = mean_over(df, ["seed", "tag"])
    assert set(both.columns) == {
        "K",
        "beta",
        "loss_mean",
        "loss_std",
        "grad_mean",
        "grad_std",
        "n_ok",
    }
    with pytest.raises(ValueError, match="not axes"):
        mean_over(df, "loss")
    with pytest.raises(ValueError, match="cannot tell axis columns"):
        mean_over(pd.DataFrame(df), "seed")


def test_failed_rows_are_left_out_of_rankings_and_means(tmp_path):
    space = SearchSpace({"x": [0.0, 1.0, 2.0], "seed": [0, 1]})
    run_grid(lambda c: {"v": 1.0 / c["x"]}, space, tmp_path, progress=False)
    df = load_results(tmp_path)
    assert (df["status"] == "nonfinite").sum() == 2
    assert top_k(df, 1, "v", ascending=False)["x"].item() == 1.0
    assert len(top_k(df, 10, "v", only_ok=False)) == 6
    assert mean_over(df, "seed")["n_ok"].tolist() == [2, 2]


def test_to_xarray_places_values_at_their_coordinates(run):
    space, df = run
    ds = to_xarray(df, space)
    assert dict(ds.sizes) == {"K": 4, "beta": 3, "seed": 5, "tag": 2}
    row = df.iloc[37]
    value = ds["loss"].sel(K=row["K"], beta=row["beta"], seed=row["seed"], tag=row["tag"])
    assert float(value) == pytest.approx(float(row["loss"]))


def test_to_xarray_zipped_filtered_and_array_outputs(tmp_path):
    space = SearchSpace(
        {"K": [1, 2, 3], "x": [0.0, 1.0], "name": ["a", "b", "c"]},
        zipped=[("K", "name")],
        where=lambda c: c["K"] + c["x"] < 4,
    )
    run_grid(
        lambda c: {"v": np.stack([c["x"], c["K"] * 1.0])},
        space,
        tmp_path,
        mode="loop",
        progress=False,
    )
    df = load_results(tmp_path, space)
    with pytest.raises(ValueError, match="filtered space"):
        load_results(tmp_path)
    ds = to_xarray(df, space)
    assert dict(ds.sizes) == {"K__name": 3, "x": 2, "v_dim0": 2}
    assert ds["name"].values.tolist() == ["a", "b", "c"]
    assert np.isnan(ds["v"].values[2, 1]).all()  # K=3, x=1 filtered out
    np.testing.assert_array_equal(ds["v"].values[1, 1], [1.0, 2.0])
