"""GPU benchmark: train at 64x64 (resumable), separate held-out maps, train at 256x256
(resumable), and time 128 maps x 1000 reverse-SDE steps at 256x256 in float32 and bfloat16.

Runs unchanged on a CPU with ``--tiny``. Needs only jax, flax, optax, numpy, matplotlib
and this package's ``src`` on PYTHONPATH (it inserts it itself): the CMB spectra come from
the CAMB grid shipped in ``src/dust_diffusion/data/cmb_grid.npz`` (or ``--grid``), so CAMB
is not needed on the GPU machine.

Phases (``--skip`` any of train,separate,generate,train256,bench):

1. train: procedural dust maps (seed 0), cosmology-conditioned UNet at ``--size`` (64)
   for ``--train-seconds``, continuing from ``--resume64`` (a state file or a folder with
   ``state.npz``, e.g. the ``OUT/ckpt64`` of a previous call); writes ``OUT/ckpt64/state.npz``.
2. separate: held-out procedural maps (seed 1) and the two pywph maps (``--val-dir``,
   block-averaged 512 -> size) mixed with CMB at sigma = 0.6 (Sect. 4.2, phi = (70, 0.0321));
   ``--n-post`` posterior samples each, in float32 and in bfloat16; power spectra and
   Minkowski functionals of the recovered dust and CMB vs truth within the posterior
   spread; Wiener-filter baseline.
3. generate: unconditional samples vs held-out maps, nearest-training-neighbour check (B.5).
4. train256: 256 x 256 maps, ``--train256-seconds`` (clipped so that the whole call stays
   within ``--budget``), continuing from ``--resume256`` or initialised from the 64 x 64
   weights (the UNet is convolutional); writes ``OUT/ckpt256/state.npz``.
5. bench: ``--bench-n`` maps x ``--bench-steps`` Euler-Maruyama steps at ``--bench-size``
   with the 256 model (else the 64 one), bfloat16 then float32; compile time separately;
   statistics of the two sample sets compared (paper: 128 x 1000 at 256^2, ~1 min on an A100).

State files are slim by default (weights float32, EMA bfloat16, no AdamW moments: ~14 MB
each; resuming is then a warm restart, see ``dust_diffusion.load_state``); add
``--keep-optimizer`` for an exact resume (~38 MB each). Files under OUT: gpu_bench.json
(written after every phase), summary.png, ckpt64/state.npz, ckpt256/state.npz.
A summary table is printed last.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import tempfile
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
    load_state,
    load_state_config,
    procedural_dust_maps,
    run_training,
    sample_posterior,
    sample_prior,
    save_state,
    standardise,
    state_file_path,
    wiener_posterior,
)
from dust_diffusion._report import THRESHOLDS, agreement, summary_statistics

PHI = (70.0, 0.0321)
T0 = time.perf_counter()


def log(msg: str) -> None:
    print(f"[{time.perf_counter() - T0:6.1f} s] {msg}", flush=True)


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out", required=True)
    p.add_argument("--grid", default=None, help="CMB grid npz (default: shipped)")
    p.add_argument("--val-dir", default=None, help="folder with pywph_I_{1,2}.npy (validation)")
    p.add_argument("--budget", type=float, default=520.0, help="wall-time guard, seconds")
    p.add_argument("--skip", default="", help="comma list: train,separate,generate,train256,bench")
    p.add_argument("--keep-optimizer", action="store_true", help="exact-resume state files")
    p.add_argument("--ema-dtype", choices=("float32", "bfloat16"), default="bfloat16")
    # 64 x 64 model
    p.add_argument("--resume64", default=None, help="state file/folder to continue from")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--pixel-arcmin", type=float, default=8.0)
    p.add_argument("--channels", default="32,64,128")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--n-train", type=int, default=4000)
    p.add_argument("--train-seconds", type=float, default=150.0)
    p.add_argument("--train-precision", choices=("float32", "bfloat16"), default="float32")
    p.add_argument("--sigma", type=float, default=0.6)
    p.add_argument("--n-post", type=int, default=64)
    p.add_argument("--post-steps", type=int, default=1000)
    p.add_argument("--n-heldout", type=int, default=2)
    p.add_argument("--n-generate", type=int, default=64)
    # 256 x 256 model
    p.add_argument("--resume256", default=None, help="state file/folder to continue from")
    p.add_argument("--train256-seconds", type=float, default=0.0, help="0: no 256 training")
    p.add_argument("--batch-size-256", type=int, default=16)
    p.add_argument("--n-train-256", type=int, default=512)
    p.add_argument("--train256-precision", choices=("float32", "bfloat16"), default="bfloat16")
    p.add_argument("--lr-256", type=float, default=2e-4, help="peak lr of a new 256 run")
    # sampling benchmark
    p.add_argument("--bench-size", type=int, default=256)
    p.add_argument("--bench-n", type=int, default=128)
    p.add_argument("--bench-steps", type=int, default=1000)
    p.add_argument("--bench-steps-fp32", type=int, default=1000)
    p.add_argument("--bench-precisions", default="bfloat16,float32")
    p.add_argument(
        "--bench-light", default="", help="also time an untrained lighter UNet, e.g. 32,64,64"
    )
    p.add_argument(
        "--bench-reserve", type=float, default=170.0, help="seconds kept for the bench phase"
    )
    p.add_argument("--tiny", action="store_true", help="CPU smoke settings")
    a = p.parse_args()
    if a.tiny:
        a.size, a.channels, a.batch_size, a.n_train = 32, "8,16,16", 8, 64
        a.train_seconds = min(a.train_seconds, 15.0)
        a.n_post, a.post_steps, a.n_generate = 4, 20, 4
        a.n_heldout = 1
        a.batch_size_256, a.n_train_256 = 4, 16
        a.train256_seconds = min(a.train256_seconds, 15.0)
        a.bench_size, a.bench_n, a.bench_steps = 64, 4, 10
        a.bench_steps_fp32 = min(a.bench_steps_fp32, 10)
        a.bench_reserve = 30.0
    return a


def remaining(a: argparse.Namespace) -> float:
    return a.budget - (time.perf_counter() - T0)


def make_trainer(config, maps, spectra, resume):
    """A Trainer, with the configuration of ``resume``'s state file when given."""
    if resume is not None:
        precision = config.precision
        config = dataclasses.replace(load_state_config(resume), precision=precision)
        log(f"using the configuration saved in {state_file_path(resume)}")
    return config, Trainer(config, maps, spectra.eigenvalues)


def train_phase(a, name, trainer, seconds, resume, init_from, out, res):
    """Train for ``seconds`` in a scratch run folder, then write OUT/ckpt<name>/state.npz."""
    run = Path(tempfile.mkdtemp(prefix=f"dd_run{name}_"))
    t = time.perf_counter()
    try:
        state, losses = run_training(
            run,
            trainer,
            seconds=seconds,
            chunk=10 if a.tiny else 100,
            checkpoint_every=10**9,
            log=log,
            resume_from=resume,
            init_from=init_from if resume is None else None,
        )
    finally:
        shutil.rmtree(run, ignore_errors=True)
    train_s = time.perf_counter() - t
    file = save_state(
        out / f"ckpt{name}",
        state,
        trainer.config,
        optimizer=a.keep_optimizer,
        ema_dtype=a.ema_dtype,
    )
    res[f"train{name}"] = {
        "seconds": train_s,
        "total_steps": int(state.step),
        "steps_this_call": len(losses) * (10 if a.tiny else 100),
        "first_loss": losses[0] if losses else None,
        "last_loss": losses[-1] if losses else None,
        "resumed_from": None if resume is None else str(state_file_path(resume)),
        "initialised_from": None if (resume is not None or init_from is None) else str(init_from),
        "precision": trainer.config.precision,
        "state_file": str(file),
        "state_mb": file.stat().st_size / 1e6,
        "exact_resume": a.keep_optimizer,
    }
    log(f"train{name}: step {int(state.step)}, wrote {file} ({file.stat().st_size / 1e6:.1f} MB)")
    return state


def restore(trainer, resume):
    return load_state(resume, trainer) if resume is not None else trainer.init_state()


def main() -> None:
    a = parse()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    skip = set(filter(None, a.skip.split(",")))
    res: dict = {"args": vars(a), "device": str(jax.devices()[0]), "jax": jax.__version__}
    dump = lambda: (out / "gpu_bench.json").write_text(json.dumps(res, indent=1, default=str))
    log(f"device {res['device']}, jax {jax.__version__}")
    figure: dict = {}

    config = TrainConfig(
        size=a.size,
        pixel_arcmin=a.pixel_arcmin,
        channels=tuple(int(c) for c in a.channels.split(",")),
        batch_size=a.batch_size,
        warmup_steps=20 if a.tiny else 500,
        precision=a.train_precision,
    )
    grid = CMBGrid.load(a.grid) if a.grid else CMBGrid.load()
    t = time.perf_counter()
    spectra = CMBSpectra(
        grid, config.size, config.pixel_arcmin, emulator_steps=300 if a.tiny else 3000
    )
    res["emulator"] = {"seconds": time.perf_counter() - t, "rms_log_cl": spectra.emulator_rms}
    t = time.perf_counter()
    train_maps = np.asarray(procedural_dust_maps(jax.random.key(0), a.n_train, config.size))
    res["data_seconds"] = time.perf_counter() - t
    log(f"emulator + data: {time.perf_counter() - T0:.1f} s")
    config, trainer = make_trainer(config, train_maps, spectra, a.resume64)

    # --- 1. training at 64 x 64 (resumable)
    if "train" not in skip and a.train_seconds > 0:
        state = train_phase(a, "64", trainer, a.train_seconds, a.resume64, None, out, res)
        resume64_now = out / "ckpt64"
    else:
        state = restore(trainer, a.resume64)
        resume64_now = a.resume64
        res["train64"] = {"total_steps": int(state.step), "seconds": 0.0}
    dump()
    params = state.ema
    schedule = config.schedule
    lam = trainer.eigenvalues(PHI)

    # --- 2. separation of held-out maps, float32 and bfloat16 networks
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
        separators = {}
        for prec in ("float32", "bfloat16"):

            def sep(params, key, y, prec=prec):
                fn = trainer.noise_fn(params, PHI, prec)
                return sample_posterior(key, fn, y, a.sigma, lam, schedule, a.n_post, a.post_steps)

            separators[prec] = jax.jit(sep)
        p_train = np.mean(np.abs(np.fft.fft2(train_maps[:512], norm="ortho")) ** 2, axis=0)
        sep_res: dict = {}
        for i, (name, x) in enumerate(held.items()):
            kc, ks = jax.random.split(jax.random.key(100 + i))
            eps = a.sigma * np.asarray(gaussian_field(kc, lam))
            y = (x + eps).astype(np.float32)
            wf_mean, _ = wiener_posterior(jnp.asarray(y), p_train, lam, a.sigma)
            entry: dict = {
                "mse_wiener": float(np.mean((np.asarray(wf_mean) - x) ** 2)),
                "mse_mixture": float(np.mean((y - x) ** 2)),
            }
            means = {}
            for prec, fn in separators.items():
                t = time.perf_counter()
                dust, cmb = fn(params, ks, jnp.asarray(y))
                dust, cmb = np.asarray(dust), np.asarray(cmb)
                dt = time.perf_counter() - t
                rd = compare_statistics(dust, x[None], None)["summary"]
                rc = compare_statistics(cmb, eps[None], None)["summary"]
                means[prec] = dust.mean(0)
                entry[prec] = {
                    "seconds_incl_first_compile": dt,
                    "dust_agreement": rd["agreement_2sigma"],
                    "cmb_agreement": rc["agreement_2sigma"],
                    "dust_ps_max_rel_err_of_mean": rd["power_spectrum_max_abs_rel_error"],
                    "cmb_ps_max_rel_err_of_mean": rc["power_spectrum_max_abs_rel_error"],
                    "mse_posterior_mean": float(np.mean((dust.mean(0) - x) ** 2)),
                    "posterior_std_mean": float(dust.std(0).mean()),
                }
                if prec == "bfloat16" or "bfloat16" not in separators:
                    figure.setdefault("sep", {})[name] = (x, y, dust)
            entry["rms_post_mean_bf16_minus_fp32_over_post_std"] = float(
                np.sqrt(np.mean((means["bfloat16"] - means["float32"]) ** 2))
                / entry["float32"]["posterior_std_mean"]
            )
            sep_res[name] = entry
            log(
                f"separate {name}: dust PS agree fp32 "
                f"{entry['float32']['dust_agreement']['power_spectrum']:.2f} "
                f"bf16 {entry['bfloat16']['dust_agreement']['power_spectrum']:.2f}"
            )
        res["separate"] = sep_res
        dump()

    # --- 3. unconditional generation + overfitting check
    if "generate" not in skip:
        t = time.perf_counter()
        gen = np.asarray(
            trainer.generate(
                params, jax.random.key(7), a.n_generate, PHI, a.post_steps, precision="auto"
            )
        )
        ref = np.asarray(procedural_dust_maps(jax.random.key(2), max(a.n_generate, 8), config.size))
        rg = compare_statistics(gen, ref, None, training=train_maps)
        res["generate"] = {"seconds": time.perf_counter() - t, **rg["summary"]}
        figure["generate"] = gen[:4]
        log(f"generate: agreement {rg['summary']['agreement_2sigma']}")
        dump()

    # --- 4. training at 256 x 256 (resumable, within the budget)
    bench_params, bench_model = params, f"{config.size}x{config.size} model"
    if "train256" not in skip and (a.train256_seconds > 0 or a.resume256):
        size256 = a.bench_size
        # ~15 s for the 256 x 256 maps and the state file come out of the same budget
        seconds = min(a.train256_seconds, remaining(a) - a.bench_reserve - 15)
        config256 = dataclasses.replace(
            config,
            size=size256,
            batch_size=a.batch_size_256,
            peak_learning_rate=a.lr_256,
            warmup_steps=20 if a.tiny else 200,
            precision=a.train256_precision,
        )
        if a.train256_seconds > 0 and seconds < min(20.0, a.train256_seconds):
            log(f"train256: skipped, only {seconds:.0f} s left before the bench reserve")
            res["train256"] = {"skipped": f"{seconds:.0f} s left"}
            seconds = 0.0
    else:
        seconds = 0.0
    if seconds > 0 or ("train256" not in skip and a.resume256):
        t = time.perf_counter()
        maps256 = np.concatenate(
            [
                np.asarray(procedural_dust_maps(jax.random.key(10 + i), 64, size256))
                for i in range(max(1, a.n_train_256 // 64))
            ]
        )[: a.n_train_256]
        log(f"train256: {len(maps256)} maps of {size256}^2 in {time.perf_counter() - t:.1f} s")
        config256, trainer256 = make_trainer(
            config256, maps256, spectra.with_patch(size256), a.resume256
        )
        if seconds > 0:
            state256 = train_phase(
                a, "256", trainer256, seconds, a.resume256, resume64_now, out, res
            )
        else:
            state256 = restore(trainer256, a.resume256)
        bench_params, bench_model = state256.ema, f"{size256}x{size256} model"
        res.setdefault("train256", {})["total_steps"] = int(state256.step)
        dump()

    # --- 5. sampling benchmark at 256 x 256
    if "bench" not in skip:
        n = a.bench_size
        lam_b = covariance_eigenvalues(
            grid.ell, np.exp(grid.interpolate(np.asarray(PHI))), n, config.pixel_arcmin
        ).astype(jnp.float32)
        bench: dict = {"size": n, "n_maps": a.bench_n, "model": bench_model, "runs": {}}
        samples = {}
        for prec in a.bench_precisions.split(","):
            steps = a.bench_steps_fp32 if prec == "float32" else a.bench_steps
            if prec == "float32" and remaining(a) < 110 and steps > 200:
                steps = 200
                log("bench float32: little time left, timing 200 steps (extrapolated)")

            def gen(params, key, prec=prec, steps=steps):
                fn = trainer.noise_fn(params, PHI, prec)
                return sample_prior(key, fn, a.bench_n, lam_b, schedule, steps)

            t = time.perf_counter()
            compiled = jax.jit(gen).lower(bench_params, jax.random.key(0)).compile()
            tc = time.perf_counter() - t
            log(f"bench {prec}: compiled in {tc:.1f} s, sampling {a.bench_n} x {steps} ...")
            t = time.perf_counter()
            x = compiled(bench_params, jax.random.key(0))
            x.block_until_ready()
            ts = time.perf_counter() - t
            per_step = ts / steps
            bench["runs"][prec] = {
                "steps": steps,
                "compile_seconds": tc,
                "sample_seconds": ts,
                "seconds_per_step": per_step,
                "seconds_for_1000_steps": ts if steps == 1000 else per_step * 1000,
                "extrapolated": steps != 1000,
                "finite": bool(jnp.isfinite(x).all()),
            }
            log(f"bench {prec}: {ts:.1f} s for {steps} steps ({1e3 * per_step:.1f} ms/step)")
            if steps == a.bench_steps:
                samples[prec] = np.asarray(x[: min(a.bench_n, 64)])
            dump()
        if len(samples) == 2:
            m, s = float(samples["float32"].mean()), float(samples["float32"].std())
            st32 = summary_statistics(samples["float32"], m, s)
            st16 = summary_statistics(samples["bfloat16"], m, s)
            ps_rel = st16["power_spectrum"].mean(0) / st32["power_spectrum"].mean(0) - 1
            bench["bf16_vs_fp32"] = {
                "agreement_2sigma": agreement(st16, st32),
                "power_spectrum_max_abs_rel_diff_of_mean": float(np.max(np.abs(ps_rel))),
                "pixel_std_fp32": s,
                "pixel_std_bf16": float(samples["bfloat16"].std()),
            }
            figure["bench"] = (st32, st16)
        if a.bench_light and remaining(a) > 60:
            # timing only (untrained weights): a lighter UNet in bfloat16, for the record
            light_cfg = dataclasses.replace(
                config, channels=tuple(int(c) for c in a.bench_light.split(","))
            )
            light = Trainer(light_cfg, train_maps[:1], spectra.eigenvalues)
            light_params = light.init_state().params

            def gen_light(params, key):
                fn = light.noise_fn(params, PHI, "bfloat16")
                return sample_prior(key, fn, a.bench_n, lam_b, schedule, a.bench_steps)

            t = time.perf_counter()
            compiled = jax.jit(gen_light).lower(light_params, jax.random.key(0)).compile()
            tc = time.perf_counter() - t
            t = time.perf_counter()
            compiled(light_params, jax.random.key(0)).block_until_ready()
            ts = time.perf_counter() - t
            bench["light_bfloat16_untrained"] = {
                "channels": light_cfg.channels,
                "steps": a.bench_steps,
                "compile_seconds": tc,
                "sample_seconds": ts,
                "seconds_per_step": ts / a.bench_steps,
            }
            log(f"bench light {light_cfg.channels} bf16: {ts:.1f} s (+{tc:.1f} s compile)")
        bench["paper_a100_seconds"] = 60.0
        res["bench"] = bench
    res["total_seconds"] = time.perf_counter() - T0
    dump()
    try:
        _plot(out / "summary.png", figure)
    except Exception as e:  # a plot must not lose the numbers
        log(f"plot failed: {e!r}")
    _table(res)


def _plot(path: Path, fig_data: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sep = fig_data.get("sep", {})
    rows = len(sep) + (1 if "generate" in fig_data else 0) + (1 if "bench" in fig_data else 0)
    if rows == 0:
        return
    fig, axes = plt.subplots(rows, 7, figsize=(21, 3 * rows), squeeze=False)
    r = 0
    for name, (x, y, dust) in sep.items():
        panels = [
            (f"{name}: true dust", x),
            ("mixture y", y),
            ("dust sample", dust[0]),
            ("posterior mean", dust.mean(0)),
            ("posterior std", dust.std(0)),
        ]
        for ax, (title, m) in zip(axes[r], panels, strict=False):
            ax.imshow(m, cmap="magma")
            ax.set_title(title, fontsize=8)
            ax.axis("off")
        m0, s0 = float(x.mean()), float(x.std())
        st_s = summary_statistics(dust, m0, s0)
        st_t = summary_statistics(x[None], m0, s0)
        for ax, key in ((axes[r, 5], "power_spectrum"), (axes[r, 6], "euler")):
            xs = st_s["k"] if key == "power_spectrum" else THRESHOLDS
            mu, sd = st_s[key].mean(0), st_s[key].std(0)
            ax.fill_between(xs, mu - 2 * sd, mu + 2 * sd, alpha=0.3, label="posterior 2 sd")
            ax.plot(xs, st_t[key][0], "k", label="truth")
            if key == "power_spectrum":
                ax.set_xscale("log")
                ax.set_yscale("log")
            ax.set_title(f"dust {key}", fontsize=8)
        axes[r, 5].legend(fontsize=7)
        r += 1
    if "generate" in fig_data:
        for j, m in enumerate(fig_data["generate"]):
            axes[r, j].imshow(m, cmap="magma")
            axes[r, j].set_title(f"generated {j}", fontsize=8)
        for ax in axes[r]:
            ax.axis("off")
        r += 1
    if "bench" in fig_data:
        st32, st16 = fig_data["bench"]
        for ax, key in zip(axes[r], ("power_spectrum", "area", "perimeter", "euler"), strict=False):
            xs = st32["k"] if key == "power_spectrum" else THRESHOLDS
            for st, label in ((st32, "256^2 float32"), (st16, "256^2 bfloat16")):
                mu, sd = st[key].mean(0), st[key].std(0)
                ax.plot(xs, mu, label=label)
                ax.fill_between(xs, mu - sd, mu + sd, alpha=0.25)
            if key == "power_spectrum":
                ax.set_xscale("log")
                ax.set_yscale("log")
            ax.set_title(f"generated {key}", fontsize=8)
        axes[r, 0].legend(fontsize=7)
        for ax in axes[r, 4:]:
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=70)
    plt.close(fig)


def _table(res: dict) -> None:
    print("\n=== dust-diffusion gpu_bench summary ===", flush=True)
    print(f"device: {res['device']}, total {res.get('total_seconds', 0):.0f} s")
    for name in ("train64", "train256"):
        tr = res.get(name)
        if tr and "first_loss" in tr:
            print(
                f"{name}: {tr['total_steps']} total steps ({tr['steps_this_call']} this call, "
                f"{tr['seconds']:.0f} s, {tr['precision']}), loss {tr['first_loss']} -> "
                f"{tr['last_loss']}; state {tr['state_mb']:.1f} MB"
            )
    for name, s in res.get("separate", {}).items():
        for prec in ("float32", "bfloat16"):
            d, c = s[prec]["dust_agreement"], s[prec]["cmb_agreement"]
            print(
                f"separate {name:13s} {prec:8s}: dust PS {d['power_spectrum']:.2f} "
                f"MF {d['area']:.2f}/{d['perimeter']:.2f}/{d['euler']:.2f} | CMB PS "
                f"{c['power_spectrum']:.2f} MF {c['area']:.2f}/{c['perimeter']:.2f}/"
                f"{c['euler']:.2f} | mse post {s[prec]['mse_posterior_mean']:.4f} "
                f"Wiener {s['mse_wiener']:.4f} mixture {s['mse_mixture']:.4f}"
            )
    if "generate" in res:
        g = res["generate"]
        print(f"generate: agreement {g['agreement_2sigma']}, NN {g['nearest_training_distance']}")
    if "bench" in res:
        b = res["bench"]
        for prec, r in b["runs"].items():
            label = "extrapolated" if r["extrapolated"] else "measured"
            print(
                f"bench {prec:8s}: {b['n_maps']} maps x {r['steps']} EM steps at {b['size']}^2 "
                f"({b['model']}): {r['sample_seconds']:.1f} s (+{r['compile_seconds']:.1f} s "
                f"compile), {1e3 * r['seconds_per_step']:.1f} ms/step, 1000 steps "
                f"{r['seconds_for_1000_steps']:.1f} s ({label}); paper A100 ~60 s"
            )
        if "bf16_vs_fp32" in b:
            print(f"bench bf16 vs fp32 samples: {b['bf16_vs_fp32']}")
        if "light_bfloat16_untrained" in b:
            li = b["light_bfloat16_untrained"]
            print(
                f"bench light UNet {li['channels']} bf16 (untrained, timing only): "
                f"{li['sample_seconds']:.1f} s for {li['steps']} steps"
            )


if __name__ == "__main__":
    main()
