"""Adaptive search over the same space: Optuna TPE with a real RDB storage.

Instead of evaluating all N configurations, a Tree-structured Parzen Estimator
(Optuna's ``TPESampler``) proposes configurations one at a time and learns
where the objective is low. Each numeric single-axis factor is an ordered
integer position (so TPE can exploit smoothness along the axis); string axes
and zipped groups are categorical positions. Trials live in an Optuna RDB
storage (SQLite file in ``out_dir`` by default, any SQLAlchemy URL otherwise),
so a search resumes where it stopped and several processes may share one
study. A configuration proposed again is answered from the study's history
without re-evaluation; a configuration removed by the space's filter is pruned.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ._evaluate import Evaluator, Objective
from ._space import SearchSpace

logger = logging.getLogger("grid_dispatch")


@dataclass(frozen=True)
class AdaptiveResult:
    """Outcome of :func:`optuna_search`.

    Attributes:
        best_config: the best configuration found.
        best_index: its global index in the space.
        best_value: its value of the ``by`` output.
        n_evaluations: distinct configurations evaluated (all sessions of the study).
        evaluations_to_best: evaluations made when ``best_config`` was first reached.
        history: one row per evaluation: ``evaluation``, ``trial``, ``config_index``,
            ``value``, ``status``.
        storage: the storage URL of the study.
        study_name: the study's name.
    """

    best_config: dict[str, Any]
    best_index: int
    best_value: float
    n_evaluations: int
    evaluations_to_best: int
    history: pd.DataFrame
    storage: str
    study_name: str


def optuna_search(
    objective: Objective,
    space: SearchSpace,
    out_dir: str | os.PathLike,
    *,
    by: str,
    max_evaluations: int,
    direction: str = "minimize",
    storage: str | None = None,
    study_name: str = "grid_dispatch",
    seed: int = 0,
    n_startup_trials: int = 10,
    target: float | None = None,
    static_axes: Sequence[str] = (),
    mode: str = "auto",
    max_trials: int | None = None,
) -> AdaptiveResult:
    """Search ``space`` with Optuna's TPE sampler instead of evaluating every configuration.

    Args:
        objective: as for :func:`run_grid`; must return the scalar output ``by``.
        space: the search space.
        out_dir: folder for the default SQLite storage (``optuna.db``).
        by: the output to optimise.
        max_evaluations: stop after this many distinct configurations in total.
        direction: ``"minimize"`` or ``"maximize"``.
        storage: SQLAlchemy URL of the study (default ``sqlite:///<out_dir>/optuna.db``).
        study_name: study name in the storage (resumed when it exists).
        seed: seed of the TPE sampler.
        n_startup_trials: random trials before TPE starts modelling.
        target: stop as soon as a value at least this good is found.
        static_axes, mode: as for :func:`run_grid`.
        max_trials: cap on trials including repeated proposals
            (default ``20 * max_evaluations``).
    """
    try:
        import optuna
    except ImportError as exc:
        raise ValueError("optuna_search needs optuna: pip install 'grid-dispatch[optuna]'") from exc
    if direction not in ("minimize", "maximize"):
        raise ValueError(f"direction must be 'minimize' or 'maximize', got {direction!r}")
    if not isinstance(max_evaluations, int) or max_evaluations < 1:
        raise ValueError(f"max_evaluations must be a positive integer, got {max_evaluations!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    url = storage or f"sqlite:///{(out / 'optuna.db').resolve()}"
    evaluator = Evaluator(objective, space, batch_size=1, static_axes=static_axes, mode=mode)
    sign = 1.0 if direction == "minimize" else -1.0

    ordered = [len(f) == 1 and space.axis_values(f[0]).dtype.kind in "if" for f in space.factors]
    pnames = ["__".join(f) for f in space.factors]
    strides = np.cumprod([1, *space.shape[::-1]])[::-1][1:]

    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=n_startup_trials)
    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.create_study(
            storage=url,
            study_name=study_name,
            direction=direction,
            sampler=sampler,
            load_if_exists=True,
        )
        cache: dict[int, float] = {}
        history: list[dict[str, Any]] = []
        for t in study.get_trials(deepcopy=False):
            attrs = t.user_attrs
            if "evaluation" in attrs:
                cache[attrs["config_index"]] = t.value if t.value is not None else float("nan")
                history.append(
                    {
                        "evaluation": attrs["evaluation"],
                        "trial": t.number,
                        "config_index": attrs["config_index"],
                        "value": cache[attrs["config_index"]],
                        "status": attrs["status"],
                    }
                )
        limit = max_trials if max_trials is not None else 20 * max_evaluations

        def reached(value: float) -> bool:
            return target is not None and bool(np.isfinite(value)) and sign * value <= sign * target

        def best_so_far() -> float:
            vals = [sign * h["value"] for h in history if np.isfinite(h["value"])]
            return sign * min(vals) if vals else float("nan")

        def trial_fn(trial: Any) -> float:
            raw = 0
            for name, n_f, stride, is_ordered in zip(
                pnames, space.shape, strides, ordered, strict=True
            ):
                if is_ordered:
                    pos = trial.suggest_int(name, 0, n_f - 1)
                else:
                    pos = trial.suggest_categorical(name, list(range(n_f)))
                raw += int(pos) * int(stride)
            index = space.index_of_raw(raw)
            if index is None:
                raise optuna.TrialPruned("configuration excluded by the space's filter")
            trial.set_user_attr("config_index", index)
            if index in cache:
                trial.set_user_attr("repeat", True)
                return cache[index]
            result = evaluator.evaluate(np.array([index]))
            value = float(result.outputs[by][0]) if by in result.outputs else float("nan")
            status = str(result.status[0])
            if by not in result.outputs and status == "ok":
                raise ValueError(f"objective has no output {by!r}; outputs are {evaluator.schema}")
            if status != "ok":
                value = float("nan")
                trial.set_user_attr("error", result.error[0])
            cache[index] = value
            evaluation = len(history) + 1
            trial.set_user_attr("evaluation", evaluation)
            trial.set_user_attr("status", status)
            history.append(
                {
                    "evaluation": evaluation,
                    "trial": trial.number,
                    "config_index": index,
                    "value": value,
                    "status": status,
                }
            )
            exhausted = len(history) >= min(max_evaluations, len(space))
            if exhausted or reached(value):
                trial.study.stop()
            return value

        n_trials_done = len(study.trials)
        if len(history) < max_evaluations and not reached(best_so_far()):
            study.optimize(
                trial_fn,
                n_trials=max(0, limit - n_trials_done),
                catch=(),
            )
    finally:
        optuna.logging.set_verbosity(previous)
    hist = pd.DataFrame(history, columns=["evaluation", "trial", "config_index", "value", "status"])
    hist = hist.sort_values("evaluation").reset_index(drop=True)
    finite = hist[np.isfinite(hist["value"])]
    if finite.empty:
        raise ValueError("no configuration evaluated successfully; check the objective")
    best_row = finite.loc[(sign * finite["value"]).idxmin()]
    best_index = int(best_row["config_index"])
    return AdaptiveResult(
        best_config=space[best_index],
        best_index=best_index,
        best_value=float(best_row["value"]),
        n_evaluations=len(hist),
        evaluations_to_best=int(best_row["evaluation"]),
        history=hist,
        storage=url,
        study_name=study_name,
    )
