"""Command line: ``dust-diffusion make-data|make-cmb-grid|train|sample|separate|evaluate``.

Each command writes into a folder (a run folder for train/sample/separate) with
JSON metadata beside the arrays, so runs can be resumed and compared.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
from pathlib import Path

import numpy as np


def _save_npy(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npy.tmp")
    with os.fdopen(fd, "wb") as f:
        np.save(f, np.asarray(array))
    os.replace(tmp, path)


def _save_json(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".json.tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f, indent=1)
    os.replace(tmp, path)


def _args(a: argparse.Namespace) -> dict:
    return {k: v for k, v in vars(a).items() if k != "func"}


def _phi(text: str) -> tuple[float, float]:
    parts = [float(v) for v in text.split(",")]
    if len(parts) != 2:
        raise argparse.ArgumentTypeError("phi must be 'H0,omega_b', e.g. 70,0.0321")
    return parts[0], parts[1]


def _is_state(run: Path) -> bool:
    """A portable state file (or folder holding state.npz) rather than an orbax run folder."""
    from ._training import state_file_path

    return not (run / "checkpoints" / "config.json").exists() and state_file_path(run).exists()


def _trainer_from_run(run: Path, grid: str | None, data: np.ndarray | None = None):
    from ._cosmology import CMBGrid, CMBSpectra
    from ._training import Trainer, load_config, load_state_config

    config = load_state_config(run) if _is_state(run) else load_config(run / "checkpoints")
    spectra = CMBSpectra(CMBGrid.load(grid) if grid else None, config.size, config.pixel_arcmin)
    if data is None:
        data = np.zeros((1, config.size, config.size), np.float32)
    return Trainer(config, data, spectra.eigenvalues)


def cmd_make_data(a: argparse.Namespace) -> None:
    import jax

    from ._data import procedural_dust_maps

    maps = procedural_dust_maps(
        jax.random.key(a.seed), a.n_maps, a.size, filament_fraction=a.filament_fraction
    )
    out = Path(a.out)
    _save_npy(out / "dust_maps.npy", np.asarray(maps, np.float32))
    _save_json(out / "dust_maps.json", _args(a) | {"command": "make-data"})
    print(f"wrote {a.n_maps} maps of {a.size}^2 to {out / 'dust_maps.npy'}")


def cmd_make_cmb_grid(a: argparse.Namespace) -> None:
    from ._cosmology import make_cmb_grid

    g = make_cmb_grid(a.n_h0, a.n_omega_b, a.lmax, a.processes, path=a.out)
    print(f"wrote CMB grid {g.log_cl.shape} to {a.out}")


def cmd_train(a: argparse.Namespace) -> None:
    from ._cosmology import CMBGrid, CMBSpectra
    from ._data import load_maps, standardise
    from ._training import (
        TrainConfig,
        Trainer,
        latest_checkpoint_step,
        load_config,
        load_state_config,
        run_training,
        save_state,
    )

    run = Path(a.run)
    if latest_checkpoint_step(run / "checkpoints") is not None:
        config = load_config(run / "checkpoints")
    elif a.resume:
        config = load_state_config(a.resume)
    else:
        config = TrainConfig(
            size=a.size,
            pixel_arcmin=a.pixel_arcmin,
            channels=tuple(int(c) for c in a.channels.split(",")),
            batch_size=a.batch_size,
            peak_learning_rate=a.learning_rate,
            condition_on_cosmology=not a.fixed_cosmology,
            seed=a.seed,
        )
    if a.precision is not None:
        config = dataclasses.replace(config, precision=a.precision)
    maps = np.asarray(standardise(load_maps(a.data)), np.float32)
    spectra = CMBSpectra(CMBGrid.load(a.grid) if a.grid else None, config.size, config.pixel_arcmin)
    trainer = Trainer(config, maps, spectra.eigenvalues)
    _save_json(run / "data.json", {"data": str(Path(a.data).resolve()), "n_maps": len(maps)})
    state, _ = run_training(
        run,
        trainer,
        n_steps=a.steps,
        seconds=a.seconds,
        checkpoint_every=a.checkpoint_every,
        resume_from=a.resume,
        init_from=a.init_from,
    )
    print(f"trained to step {int(state.step)}; checkpoints in {run / 'checkpoints'}")
    if a.save_state:
        f = save_state(
            a.save_state, state, config, optimizer=a.keep_optimizer, ema_dtype=a.ema_dtype
        )
        print(f"wrote the portable state {f} ({f.stat().st_size / 1e6:.1f} MB)")


def _params(run: Path, trainer, use_ema: bool):
    from ._training import load_state, restore_checkpoint

    if _is_state(run):
        state = load_state(run, trainer)
    else:
        state = restore_checkpoint(run / "checkpoints", trainer.init_state())
    return state.ema if use_ema else state.params


def _out_dir(run: Path) -> Path:
    return run.parent if run.suffix == ".npz" else run


def cmd_sample(a: argparse.Namespace) -> None:
    import jax

    run = Path(a.run)
    trainer = _trainer_from_run(run, a.grid)
    params = _params(run, trainer, not a.no_ema)
    x = trainer.generate(params, jax.random.key(a.seed), a.n, a.phi, a.steps, a.method, a.precision)
    out = Path(a.out) if a.out else _out_dir(run) / "samples" / "samples.npy"
    _save_npy(out, np.asarray(x))
    _save_json(out.with_suffix(".json"), _args(a))
    print(f"wrote {a.n} samples to {out}")


def cmd_separate(a: argparse.Namespace) -> None:
    import jax

    run = Path(a.run)
    trainer = _trainer_from_run(run, a.grid)
    params = _params(run, trainer, not a.no_ema)
    y = np.load(a.y).astype(np.float32)
    dust, cmb = trainer.separate(
        params, jax.random.key(a.seed), y, a.sigma, a.phi, a.n_samples, a.steps, a.precision
    )
    out = Path(a.out) if a.out else _out_dir(run) / "separation"
    _save_npy(out / "dust_samples.npy", np.asarray(dust))
    _save_npy(out / "cmb_samples.npy", np.asarray(cmb))
    _save_json(out / "separation.json", _args(a))
    print(f"wrote {a.n_samples} posterior samples to {out}")


def cmd_evaluate(a: argparse.Namespace) -> None:
    from ._report import compare_statistics

    samples = np.load(a.samples)
    reference = np.load(a.reference)
    training = np.load(a.training) if a.training else None
    summary = compare_statistics(samples, reference, Path(a.out), training=training)
    print(json.dumps(summary["summary"], indent=1))


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of the ``dust-diffusion`` command."""
    p = argparse.ArgumentParser(prog="dust-diffusion", description=__doc__)
    sub = p.add_subparsers(required=True)

    s = sub.add_parser("make-data", help="procedural dust-like training maps")
    s.add_argument("--out", required=True)
    s.add_argument("--n-maps", type=int, default=1000)
    s.add_argument("--size", type=int, default=64)
    s.add_argument("--filament-fraction", type=float, default=0.5)
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=cmd_make_data)

    s = sub.add_parser("make-cmb-grid", help="CAMB C_ell grid over (H0, omega_b)")
    s.add_argument("--out", required=True, help="npz path")
    s.add_argument("--n-h0", type=int, default=13)
    s.add_argument("--n-omega-b", type=int, default=13)
    s.add_argument("--lmax", type=int, default=3000)
    s.add_argument("--processes", type=int, default=1)
    s.set_defaults(func=cmd_make_cmb_grid)

    s = sub.add_parser("train", help="train (or resume) a run folder")
    s.add_argument("--data", required=True, help="npy/FITS file or folder of maps")
    s.add_argument("--run", required=True)
    s.add_argument("--steps", type=int, default=None, help="total steps")
    s.add_argument("--seconds", type=float, default=None, help="wall-time budget")
    s.add_argument("--size", type=int, default=64)
    s.add_argument("--pixel-arcmin", type=float, default=8.0)
    s.add_argument("--channels", default="32,64,128")
    s.add_argument("--batch-size", type=int, default=32)
    s.add_argument("--learning-rate", type=float, default=5e-4)
    s.add_argument("--fixed-cosmology", action="store_true")
    s.add_argument("--checkpoint-every", type=int, default=1000)
    s.add_argument("--grid", default=None, help="CMB grid npz (default: shipped grid)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument(
        "--precision",
        choices=("float32", "bfloat16"),
        default=None,
        help="network precision in training (default: the run's, else float32)",
    )
    s.add_argument(
        "--resume",
        default=None,
        help="state file (or folder with state.npz) to continue from when --run is new",
    )
    s.add_argument(
        "--init-from", default=None, help="state file whose weights initialise a new run"
    )
    s.add_argument("--save-state", default=None, help="write a portable state file at the end")
    s.add_argument(
        "--keep-optimizer",
        action="store_true",
        help="keep the AdamW moments in --save-state (exact resume; ~2x larger)",
    )
    s.add_argument("--ema-dtype", choices=("float32", "bfloat16"), default="float32")
    s.set_defaults(func=cmd_train)

    for name, fn in (("sample", cmd_sample), ("separate", cmd_separate)):
        s = sub.add_parser(name, help=f"{name} with a trained run")
        s.add_argument("--run", required=True, help="run folder or portable state file")
        s.add_argument(
            "--precision",
            choices=("auto", "float32", "bfloat16"),
            default="auto",
            help="network precision (auto: bfloat16 on a GPU, float32 on a CPU)",
        )
        s.add_argument("--phi", type=_phi, default=(70.0, 0.0321), help="H0,omega_b")
        s.add_argument("--steps", type=int, default=1000)
        s.add_argument("--grid", default=None)
        s.add_argument("--no-ema", action="store_true")
        s.add_argument("--seed", type=int, default=0)
        s.add_argument("--out", default=None)
        s.set_defaults(func=fn)
        if name == "sample":
            s.add_argument("--n", type=int, default=16)
            s.add_argument("--method", choices=("sde", "ode"), default="sde")
        else:
            s.add_argument("--y", required=True, help="npy map y = dust + CMB (model units)")
            s.add_argument("--sigma", type=float, required=True, help="CMB amplitude")
            s.add_argument("--n-samples", type=int, default=16)

    s = sub.add_parser("evaluate", help="power spectra / Minkowski functionals vs a reference")
    s.add_argument("--samples", required=True, help="npy (n, size, size)")
    s.add_argument("--reference", required=True, help="npy (m, size, size)")
    s.add_argument("--training", default=None, help="npy training maps for the B.5 check")
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_evaluate)
    return p


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``dust-diffusion`` script."""
    args = build_parser().parse_args(argv)
    args.func(args)
