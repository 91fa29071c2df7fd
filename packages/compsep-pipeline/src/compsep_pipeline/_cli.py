"""The ``compsep`` command line: simulate, run, resume, report, config show|validate."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    name="compsep",
    help=(
        "Clustered parametric component separation campaigns: simulate a sky, search the "
        "(K_bd, K_Td, K_bs) patch grid, compare layouts, compute residual spectra and r."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(
    help="Show or validate campaign configuration files.", no_args_is_help=True
)
app.add_typer(config_app, name="config")

ConfigArg = Annotated[
    Path | None,
    typer.Argument(help="campaign TOML file (default: the built-in default campaign)"),
]


def _load(config: Path | None):
    from ._config import default_config, load_config

    return default_config() if config is None else load_config(config)


def _fail(err: Exception) -> None:
    typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


@config_app.command("show")
def config_show(config: ConfigArg = None) -> None:
    """Print a configuration with every default filled in (a template for new files)."""
    try:
        typer.echo(_load(config).to_toml(), nl=False)
    except ValueError as err:
        _fail(err)


@config_app.command("validate")
def config_validate(config: Annotated[Path, typer.Argument(help="campaign TOML file")]) -> None:
    """Check a configuration file; exit 2 with the offending key when it is invalid."""
    try:
        cfg = _load(config)
    except ValueError as err:
        _fail(err)
    n = len(cfg.grid.K_bd) * len(cfg.grid.K_Td) * len(cfg.grid.K_bs)
    typer.echo(
        f"{config}: valid ({cfg.sky.source} sky, nside {cfg.sky.nside}, "
        f"{len(cfg.regions.names)} region(s), {n} configurations x "
        f"{cfg.noise.n_realisations} realisations)"
    )


@app.command()
def simulate(
    out: Annotated[Path, typer.Option("--out", "-o", help="sky file to write (.npz)")],
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="campaign TOML ([sky], [instrument])")
    ] = None,
    source: Annotated[
        str | None, typer.Option(help="override [sky] source: synthetic, validation or pysm")
    ] = None,
    nside: Annotated[int | None, typer.Option(help="override [sky] nside")] = None,
    seed: Annotated[int | None, typer.Option(help="override [sky] seed")] = None,
    mask_file: Annotated[
        Path | None, typer.Option(help="override [regions] mask_file (validation region)")
    ] = None,
) -> None:
    """Simulate the frequency maps of a sky and save them (read back with sky source = file)."""
    from ._setup import build_sky
    from ._x64 import ensure_x64

    ensure_x64()
    try:
        cfg = _load(config)
        overrides = {
            k: v for k, v in (("source", source), ("nside", nside), ("seed", seed)) if v is not None
        }
        if overrides:
            cfg = cfg.replace(sky=overrides)
        if mask_file is not None:
            cfg = cfg.replace(regions={"mask_file": str(mask_file)})
        sky = build_sky(cfg)
    except ValueError as err:
        _fail(err)
    path = sky.save(out)
    typer.echo(
        f"wrote {path}: {sky.source} sky, nside {sky.nside}, {len(sky.frequencies)} bands "
        f"({sky.frequencies.min():g}-{sky.frequencies.max():g} GHz), uK_CMB"
    )


@app.command()
def run(
    config: ConfigArg = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="run folder")] = Path("runs/default"),
    quiet: Annotated[bool, typer.Option(help="log lines instead of progress bars")] = False,
    regions: Annotated[
        str | None,
        typer.Option(
            help="comma-separated regions of the campaign to run as one part (grid and "
            "comparison fits only); parts run at once into the same --out (e.g. one per "
            "GPU: CUDA_VISIBLE_DEVICES=i), then `compsep resume OUT` writes the report"
        ),
    ] = None,
) -> None:
    """Run a campaign into a run folder (resumes if the folder holds the same campaign)."""
    from ._run import run_campaign, run_regions

    try:
        cfg = _load(config)
        if regions is not None:
            names = [n.strip() for n in regions.split(",") if n.strip()]
            selection = run_regions(cfg, out, names, progress=not quiet)
            for name, best in selection.items():
                typer.echo(f"{name}: best (K_bd, K_Td, K_bs) = {best}")
            typer.echo(f"part done; when every part is: compsep resume {out}")
            return
        result = run_campaign(cfg, out, progress=not quiet)
    except ValueError as err:
        _fail(err)
    typer.echo(f"report: {result.report}")


@app.command()
def resume(
    rundir: Annotated[Path, typer.Argument(help="run folder of an interrupted campaign")],
    quiet: Annotated[bool, typer.Option(help="log lines instead of progress bars")] = False,
) -> None:
    """Finish an interrupted campaign from its folder, recomputing nothing already done."""
    from ._run import resume_campaign

    try:
        result = resume_campaign(rundir, progress=not quiet)
    except ValueError as err:
        _fail(err)
    typer.echo(f"report: {result.report}")


@app.command()
def report(
    rundir: Annotated[Path, typer.Argument(help="run folder of a finished campaign")],
) -> None:
    """Rewrite the plots and report.md/html of a finished campaign."""
    from ._report import write_report

    try:
        path = write_report(rundir)
    except ValueError as err:
        _fail(err)
    typer.echo(f"report: {path}")


def main() -> None:
    """Entry point of the ``compsep`` script."""
    app()
