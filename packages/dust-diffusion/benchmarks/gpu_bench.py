"""GPU benchmark: train at 64x64, separate held-out maps, sampling speed at 256x256.

Runs unchanged on CPU with ``--tiny``. Needs only jax, flax, optax, orbax, numpy,
matplotlib and this package's ``src`` on PYTHONPATH: the CMB spectra come from the
CAMB grid shipped in ``src/dust_diffusion/data/cmb_grid.npz`` (or ``--grid``), so
CAMB is not needed on the GPU machine.

Phases (each optional):
1. train: procedural dust maps (seed 0), cosmology-conditioned UNet, for
   ``--train-seconds`` (resumes from ``--ckpt``, so training continues across sessions);
2. separate: held-out procedural maps (seed 1) and the two pywph maps (``--val-dir``,
   block-averaged 512 -> size) mixed with CMB at sigma = 0.6 (Sect. 4.2, phi = (70, 0.0321));
   ``--n-post`` posterior samples each; power spectra and Minkowski functionals of the
   recovered dust and CMB vs truth within the posterior spread; Wiener-filter baseline;
3. generate: unconditional samples vs held-out maps, nearest-training-neighbour check (B.5);
4. bench: ``--bench-n`` maps x ``--bench-steps`` Euler-Maruyama steps at ``--bench-size``
   (paper: 128 x 1000 at 256^2 in ~1 min on an A100).

Writes ``OUT/gpu_bench.json``, PNGs and a summary table (printed last).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import jax
import jax.numpy as jnp
from dust_diffusion import (
    CMBGrid,
    CMBSpectra,
    TrainConfig,
    Trainer,
    block_downsample,
    compare_statistics,
    covariance_eigenvalues,
    gaussian_field,
    load_maps,
    procedural_dust_maps,
    run_training,
    sample_posterior,
    sample_prior,
    standardise,
    wiener_posterior,
)

PHI = (70.0, 0.0321)


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out", required=True)
    p.add_argument("--ckpt", default=None, help="run folder to resume/continue (default OUT/run)")
    p.add_argument("--grid", default=None, help="CMB grid npz (default: shipped)")
    p.add_argument(
        "--val-dir", default=None, help="folder with pywph_I_{1,2}.npy (validation only)"
    )
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--pixel-arcmin", type=float, default=8.0)
    p.add_argument("--channels", default="32,64,128")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--n-train", type=int, default=4000)
    p.add_argument("--train-seconds", type=float, default=240.0)
    p.add_argument("--steps", type=int, default=None, help="max total training steps")
    p.add_argument("--sigma", type=float, default=0.6)
    p.add_argument("--n-post", type=int, default=64)
    p.add_argument("--post-steps", type=int, default=1000)
    p.add_argument("--n-heldout", type=int, default=2)
    p.add_argument("--n-generate", type=int, default=64)
    p.add_argument("--bench-size", type=int, default=256)
    p.add_argument("--bench-n", type=int, default=128)
    p.add_argument("--bench-steps", type=int, default=1000)
    p.add_argument(
        "--skip", default="", help="comma list of phases to skip: train,separate,generate,bench"
    )
    p.add_argument("--tiny", action="store_true", help="CPU smoke settings")
    a = p.parse_args()
    if a.tiny:
        a.size, a.channels, a.batch_size, a.n_train = 32, "8,16,16", 8, 64
        a.train_seconds = min(a.train_seconds, 20.0)
        a.n_post, a.post_steps, a.n_generate = 4, 20, 4
        a.bench_size, a.bench_n, a.bench_steps = 64, 4, 10
        a.n_heldout = 1
    return a


def main() -> None:
    a = parse()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    run = Path(a.ckpt) if a.ckpt else out / "run"
    skip = set(filter(None, a.skip.split(",")))
    res: dict = {"args": vars(a), "device": str(jax.devices()[0]), "jax": jax.__version__}
    t0 = time.perf_counter()

    config = TrainConfig(
        size=a.size,
        pixel_arcmin=a.pixel_arcmin,
        channels=tuple(int(c) for c in a.channels.split(",")),
        batch_size=a.batch_size,
        warmup_steps=20 if a.tiny else 500,
    )
    from dust_diffusion._training import latest_checkpoint_step, load_config

    if latest_checkpoint_step(run / "checkpoints") is not None:
        config = load_config(run / "checkpoints")
        print(f"using the configuration saved in {run}")
    grid = CMBGrid.load(a.grid) if a.grid else CMBGrid.load()
    t = time.perf_counter()
    spectra = CMBSpectra(
        grid, config.size, config.pixel_arcmin, emulator_steps=300 if a.tiny else 3000
    )
    res["emulator"] = {"seconds": time.perf_counter() - t, "rms_log_cl": spectra.emulator_rms}
    t = time.perf_counter()
    train_maps = np.asarray(procedural_dust_maps(jax.random.key(0), a.n_train, config.size))
    res["data_seconds"] = time.perf_counter() - t
    trainer = Trainer(config, train_maps, spectra.eigenvalues)

    # --- 1. training (resumable)
    t = time.perf_counter()
    if "train" not in skip and (a.train_seconds > 0):
        state, losses = run_training(
            run,
            trainer,
            n_steps=a.steps,
            seconds=a.train_seconds,
            chunk=10 if a.tiny else 100,
            checkpoint_every=2000,
        )
    else:
        from dust_diffusion._training import restore_checkpoint

        losses = []
        if latest_checkpoint_step(run / "checkpoints") is not None:
            state = restore_checkpoint(run / "checkpoints", trainer.init_state())
        else:
            state = trainer.init_state()
    res["train"] = {
        "seconds": time.perf_counter() - t,
        "total_steps": int(state.step),
        "first_loss": losses[0] if losses else None,
        "last_loss": losses[-1] if losses else None,
    }
    params = state.ema
    schedule = config.schedule
    lam = trainer.eigenvalues(PHI)

    # --- 2. separation of held-out maps
    if "separate" not in skip:
        held = {
            f"procedural_{i}": m
            for i, m in enumerate(
                np.asarray(procedural_dust_maps(jax.random.key(1), a.n_heldout, config.size))
            )
        }
        if a.val_dir:
            for f in ("pywph_I_1.npy", "pywph_I_2.npy"):
                m = load_maps(Path(a.val_dir) / f)[0]
                held[f[:-4]] = np.asarray(
                    standardise(block_downsample(m, m.shape[0] // config.size))
                )
        sep = {}

        @jax.jit
        def separate(params, key, y):
            fn = trainer.noise_fn(params, PHI)
            return sample_posterior(key, fn, y, a.sigma, lam, schedule, a.n_post, a.post_steps)

        # Gaussian baseline: Wiener filter with the training set's mean per-mode dust power
        p_train = np.mean(np.abs(np.fft.fft2(train_maps[:512], norm="ortho")) ** 2, axis=0)
        for i, (name, x) in enumerate(held.items()):
            kc, ks = jax.random.split(jax.random.key(100 + i))
            eps = a.sigma * np.asarray(gaussian_field(kc, lam))
            y = (x + eps).astype(np.float32)
            t = time.perf_counter()
            dust, cmb = separate(params, ks, jnp.asarray(y))
            dust, cmb = np.asarray(dust), np.asarray(cmb)
            dt = time.perf_counter() - t
            rd = compare_statistics(
                dust, x[None], out, name=f"sep_{name}_dust", extra={"mixture y": y[None]}
            )
            rc = compare_statistics(cmb, eps[None], out, name=f"sep_{name}_cmb")
            mse_post = float(np.mean((dust.mean(0) - x) ** 2))
            wf_mean, _ = wiener_posterior(jnp.asarray(y), p_train, lam, a.sigma)
            mse_wiener = float(np.mean((np.asarray(wf_mean) - x) ** 2))
            sep[name] = {
                "seconds": dt,
                "dust_agreement": rd["summary"]["agreement_2sigma"],
                "cmb_agreement": rc["summary"]["agreement_2sigma"],
                "dust_ps_max_rel_err_of_mean": rd["summary"]["power_spectrum_max_abs_rel_error"],
                "cmb_ps_max_rel_err_of_mean": rc["summary"]["power_spectrum_max_abs_rel_error"],
                "mse_posterior_mean": mse_post,
                "mse_wiener": mse_wiener,
                "mse_mixture": float(np.mean((y - x) ** 2)),
            }
            _plot_maps(out / f"sep_{name}_maps.png", x, eps, y, dust, cmb)
        res["separate"] = sep

    # --- 3. unconditional generation + overfitting check
    if "generate" not in skip:
        t = time.perf_counter()
        gen = np.asarray(
            trainer.generate(params, jax.random.key(7), a.n_generate, PHI, a.post_steps)
        )
        ref = np.asarray(procedural_dust_maps(jax.random.key(2), max(a.n_generate, 8), config.size))
        rg = compare_statistics(gen, ref, out, training=train_maps, name="generate")
        res["generate"] = {"seconds": time.perf_counter() - t, **rg["summary"]}

    # --- 4. sampling benchmark
    if "bench" not in skip:
        n = a.bench_size
        lam_b = covariance_eigenvalues(
            grid.ell, np.exp(grid.interpolate(np.asarray(PHI))), n, config.pixel_arcmin
        ).astype(jnp.float32)

        def gen(params, key):
            return sample_prior(
                key, trainer.noise_fn(params, PHI), a.bench_n, lam_b, schedule, a.bench_steps
            )

        t = time.perf_counter()
        compiled = jax.jit(gen).lower(params, jax.random.key(0)).compile()
        tc = time.perf_counter() - t
        t = time.perf_counter()
        x = compiled(params, jax.random.key(0))
        x.block_until_ready()
        ts = time.perf_counter() - t
        res["bench"] = {
            "size": n,
            "n_maps": a.bench_n,
            "steps": a.bench_steps,
            "compile_seconds": tc,
            "sample_seconds": ts,
            "finite": bool(np.isfinite(np.asarray(x)).all()),
            "paper_a100_seconds": 60.0,
        }
    res["total_seconds"] = time.perf_counter() - t0
    (out / "gpu_bench.json").write_text(json.dumps(res, indent=1, default=str))
    _table(res)


def _plot_maps(path, x, eps, y, dust, cmb) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("true dust", x),
        ("true CMB", eps),
        ("mixture y", y),
        ("dust sample", dust[0]),
        ("posterior mean dust", dust.mean(0)),
        ("posterior std dust", dust.std(0)),
        ("CMB sample", cmb[0]),
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(3 * len(panels), 3))
    for ax, (title, m) in zip(axes, panels, strict=True):
        ax.imshow(m, cmap="magma")
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _table(res: dict) -> None:
    print("\n=== dust-diffusion gpu_bench summary ===")
    print(f"device: {res['device']}")
    tr = res["train"]
    print(
        f"train: {tr['total_steps']} total steps, {tr['seconds']:.0f} s this call, "
        f"loss {tr['first_loss']} -> {tr['last_loss']}"
    )
    for name, s in res.get("separate", {}).items():
        print(
            f"separate {name:14s}: dust agree PS {s['dust_agreement']['power_spectrum']:.2f} "
            f"MF {s['dust_agreement']['area']:.2f}/{s['dust_agreement']['perimeter']:.2f}/"
            f"{s['dust_agreement']['euler']:.2f} | CMB PS {s['cmb_agreement']['power_spectrum']:.2f} | "
            f"mse post-mean {s['mse_posterior_mean']:.4f} Wiener {s['mse_wiener']:.4f} "
            f"mixture {s['mse_mixture']:.4f} "
            f"({s['seconds']:.1f} s)"
        )
    if "generate" in res:
        g = res["generate"]
        print(
            f"generate: agreement {g['agreement_2sigma']}, NN dist {g.get('nearest_training_distance')}"
        )
    if "bench" in res:
        b = res["bench"]
        print(
            f"bench: {b['n_maps']} maps x {b['steps']} EM steps at {b['size']}^2: "
            f"{b['sample_seconds']:.1f} s (+{b['compile_seconds']:.1f} s compile); paper A100 ~60 s"
        )


if __name__ == "__main__":
    main()
