"""Trace the slowest fits of one layout iteration by iteration (CPU or GPU).

Fits every realisation of one region at one layout (vmapped), then resumes the three
slowest one iteration at a time (spec-likelihood ``_minimize(state=, stop_at=)``) and prints
-log L, its decrease, the damping, the predicted decrease of the next step, the scaled
projected gradient and the two largest step components: where the tail's iterations go.

Usage (repository root)::

    python packages/compsep-pipeline/benchmarks/trace_fit_tail.py --sky SKY.npz \
        --cls CLS.npz --mask-file GAL.npz --out DIR --counts 4800,20,20
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
from _paper_region import add_region_arguments, region_problem


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_region_arguments(p, n_real=100)
    p.add_argument("--counts", default="4800,20,20")
    args = p.parse_args(argv)

    import jax
    import jax.numpy as jnp
    import spec_likelihood as sl
    from compsep_pipeline._campaign import components
    from spec_likelihood import _fit, _optimize

    _, prob = region_problem(args)
    counts = tuple(int(v) for v in args.counts.split(","))
    layout = prob.patcher.layout(counts)
    lik = sl.SpectralLikelihood.create(
        components(), prob.frequencies, prob.noise_inv_var, prob.indices.size, layout
    )
    data = jnp.asarray(prob.data)
    lower, upper, init = jnp.asarray(lik.lower), jnp.asarray(lik.upper), jnp.asarray(lik.init)

    def run(d, state, stop):
        fn, aux, index, vgh, valid = _fit._terms(lik, d, "auto", "hybrid")
        return _optimize._minimize(
            fn, aux, index, lik.layout.n_patches, init, lower, upper,
            term_vgh=vgh, term_valid=valid, state=state, stop_at=stop,
        )  # fmt: skip

    _, res = jax.jit(jax.vmap(lambda d: run(d, None, 200)))(data)
    it = np.asarray(res.n_iter)
    print("iterations: mean", it.mean(), "slowest", np.sort(it)[-8:], flush=True)
    step_one = jax.jit(run)
    for w in np.argsort(it)[-3:][::-1]:
        state, _ = jax.jit(lambda d: run(d, None, 1))(data[w])
        prev = None
        for k in range(2, int(it[w]) + 2):
            state, r = step_one(data[w], state, k)
            f, step, x = float(state.f), np.asarray(state.step), np.asarray(state.x)
            big = [
                (int(i), round(float(x[i]), 4), f"{step[i]:.2e}")
                for i in np.argsort(-abs(step))[:2]
            ]
            print(
                f"real {w} iter {k} f {f:.9f} df {(prev - f) if prev else 0.0:.2e}"
                f" lam {float(state.lam):.1e} pred {float(state.pred):.2e}"
                f" spg {float(r.scaled_pgrad):.2e} largest steps {big} status {int(state.status)}",
                flush=True,
            )
            prev = f
            if int(state.status) != -1:
                break


if __name__ == "__main__":
    sys.exit(main())
