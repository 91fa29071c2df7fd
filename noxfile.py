"""Nox sessions for the workspace: one parametrised session per package and task.

Every package is tested in an environment holding only what it declares
(``uv sync --package <name> --group test``), so a missing dependency fails here
and not on a user's machine. Run through ``./nox.sh``, which bootstraps uv and nox.
"""

from __future__ import annotations

import os
from pathlib import Path

import nox

ROOT = Path(__file__).parent
PACKAGES = sorted(p.parent.name for p in (ROOT / "packages").glob("*/pyproject.toml"))
# Session ids read tests(sphere-kmeans), not tests(package='sphere-kmeans').
PACKAGE_PARAMS = [nox.param(p, id=p) for p in PACKAGES]

nox.options.default_venv_backend = "uv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "tests", "integration"]
nox.needs_version = ">=2025.2.9"


def _sync(session: nox.Session, *args: str) -> None:
    """Install locked dependencies into the session's virtualenv with ``uv sync``."""
    env = {"UV_PROJECT_ENVIRONMENT": session.virtualenv.location}
    if os.environ.get("UV_PYTHON"):
        env["UV_PYTHON"] = session.virtualenv.location + "/bin/python"
    session.run_install("uv", "sync", "--frozen", "--no-default-groups", *args, env=env)


@nox.session
@nox.parametrize("package", PACKAGE_PARAMS)
def tests(session: nox.Session, package: str) -> None:
    """Run one package's test suite in an environment of its declared dependencies."""
    _sync(session, "--package", package, "--group", "test")
    session.run("pytest", f"packages/{package}/tests", "-p", "no:cacheprovider", *session.posargs)


@nox.session
def integration(session: nox.Session) -> None:
    """End-to-end tests of the composed packages (integration_tests/)."""
    _sync(session, "--all-packages", "--group", "test")
    session.run("pytest", "integration_tests", "-p", "no:cacheprovider", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff lint and format check over the whole repository."""
    _sync(session, "--only-group", "lint")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
@nox.parametrize("package", PACKAGE_PARAMS)
def bench(session: nox.Session, package: str) -> None:
    """Run every script in ``packages/<package>/benchmarks/`` (each prints and saves JSON)."""
    _sync(session, "--package", package, "--group", "bench")
    scripts = sorted((ROOT / "packages" / package / "benchmarks").glob("bench_*.py"))
    if not scripts:
        session.error(f"no benchmarks/bench_*.py in packages/{package}")
    for script in scripts:
        session.run("python", str(script), *session.posargs)


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site (mkdocs, strict: broken links fail)."""
    _sync(session, "--only-group", "docs")
    session.run(
        "mkdocs", "build", "--strict", "--site-dir", "site", env={"NO_MKDOCS_2_WARNING": "1"}
    )


@nox.session
def demo(session: nox.Session) -> None:
    """The main job on its built-in default (see README)."""
    _sync(session, "--all-packages")
    session.run("compsep", "run", "--out", "runs/demo", *session.posargs)
