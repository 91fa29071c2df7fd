"""Adaptive search with Optuna TPE in SQLite, against exhaustive search on a known landscape."""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
from pathlib import Path

import numpy as np
import pytest
from grid_dispatch import SearchSpace, optuna_search


def bowl(config):
    return {"loss": (config["a"] - 13.0) ** 2 + 2.0 * (config["b"] - 7.0) ** 2 + 0.1 * config["c"]}


@pytest.fixture
def fast_db(tmp_path_factory):
    """A SQLite file on tmpfs when there is one: same engine, no disk fsync per commit."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        folder = Path(tempfile.mkdtemp(dir=shm))
        yield f"sqlite:///{folder / 'optuna.db'}", folder / "optuna.db"
        shutil.rmtree(folder)
    else:
        path = tmp_path_factory.mktemp("db") / "optuna.db"
        yield f"sqlite:///{path}", path


def space():
    return SearchSpace({"a": list(range(20)), "b": list(range(15)), "c": [0, 1, 2, 3]})


def test_tpe_finds_the_grid_optimum_with_fewer_evaluations(tmp_path, fast_db):
    grid = space()
    values = np.array([float(bowl(cfg)["loss"]) for cfg in grid])
    best = int(np.argmin(values))
    result = optuna_search(
        bowl,
        grid,
        tmp_path,
        by="loss",
        max_evaluations=300,
        target=float(values[best]),
        seed=1,
        storage=fast_db[0],
    )
    assert result.best_index == best and result.best_config == {"a": 13, "b": 7, "c": 0}
    # Exhaustive search needs all 1200 evaluations to know the best; TPE far fewer.
    assert result.evaluations_to_best == result.n_evaluations < 300
    assert result.history["config_index"].is_unique
    assert result.storage == fast_db[0]
    with sqlite3.connect(fast_db[1]) as db:
        n_trials = db.execute("select count(*) from trials").fetchone()[0]
    assert n_trials >= result.n_evaluations


def test_study_resumes_from_its_storage(tmp_path):
    first = optuna_search(bowl, space(), tmp_path, by="loss", max_evaluations=15, seed=3)
    assert first.n_evaluations == 15
    second = optuna_search(bowl, space(), tmp_path, by="loss", max_evaluations=25, seed=3)
    assert second.n_evaluations == 25
    assert (
        second.history["config_index"].iloc[:15].tolist() == first.history["config_index"].tolist()
    )
    assert second.history["config_index"].is_unique
    assert (tmp_path / "optuna.db").exists() and second.storage.startswith("sqlite:///")


def test_filtered_configurations_are_pruned_and_maximize(tmp_path, fast_db):
    grid = SearchSpace({"a": list(range(5)), "b": list(range(5))}, where=lambda c: c["a"] > c["b"])
    result = optuna_search(
        lambda c: {"s": c["a"] * 1.0 - c["b"]},
        grid,
        tmp_path,
        by="s",
        direction="maximize",
        max_evaluations=len(grid),
        storage=fast_db[0],
        max_trials=200,
    )
    assert result.best_config == {"a": 4, "b": 0} and result.best_value == 4.0
    assert all(
        grid.columns(result.history["config_index"].to_numpy())["a"]
        > grid.columns(result.history["config_index"].to_numpy())["b"]
    )
    assert result.n_evaluations == len(grid)


def test_bad_adaptive_arguments(tmp_path):
    with pytest.raises(ValueError, match="direction"):
        optuna_search(bowl, space(), tmp_path, by="loss", max_evaluations=5, direction="down")
    with pytest.raises(ValueError, match="max_evaluations"):
        optuna_search(bowl, space(), tmp_path, by="loss", max_evaluations=0)
