"""CMB temperature spectra for cosmology phi = (H0, omega_b) and their MLP emulator (App. A.2, B.6).

CAMB gives the lensed TT C_ell for phi in the prior U([50, 90] x [0.0075, 0.0567]) with
the other parameters of App. A.2 (flat, omega_c = 0.12, tau = 0.0544, n_s = 0.9649,
ln(10^10 A_s) = 3.044, sum m_nu = 0.08 eV). A grid of log C_ell over phi is computed
once (``make_cmb_grid``, cached in an atomic ``.npz``) and an MLP with two hidden layers
of 100 units (App. B.6) is fitted to it, so that training can draw a new cosmology per
sample at no cost. C_ell is stored on a set of multipole nodes (every ell up to 60,
every 10th beyond) and interpolated linearly in log C between them.
"""

from __future__ import annotations

import json
import os
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jaxtyping import Array, Float

from ._flatsky import covariance_eigenvalues

PRIOR_LOW = (50.0, 0.0075)
PRIOR_HIGH = (90.0, 0.0567)
FIDUCIAL_PHI = (70.0, 0.0321)
FIXED_PARAMETERS = {
    "omk": 0.0,
    "omch2": 0.12,
    "tau": 0.0544,
    "ns": 0.9649,
    "ln1e10As": 3.044,
    "mnu": 0.08,
}
DEFAULT_GRID_PATH = Path(__file__).parent / "data" / "cmb_grid.npz"


def camb_cl(h0: float, omega_b: float, lmax: int = 3000) -> np.ndarray:
    """Lensed TT C_ell in uK^2 for ell = 0..lmax from CAMB (App. A.2 parameters)."""
    import camb

    p = FIXED_PARAMETERS
    pars = camb.set_params(
        H0=h0,
        ombh2=omega_b,
        omch2=p["omch2"],
        omk=p["omk"],
        tau=p["tau"],
        ns=p["ns"],
        As=np.exp(p["ln1e10As"]) * 1e-10,
        mnu=p["mnu"],
        lmax=lmax,
    )
    res = camb.get_results(pars)
    return res.get_lensed_scalar_cls(lmax=lmax, CMB_unit="muK", raw_cl=True)[:, 0]


def ell_nodes(lmax: int) -> np.ndarray:
    """Multipoles at which grids store C_ell: every ell in [2, 60), then every 10th up to lmax."""
    return np.unique(np.concatenate([np.arange(2, 60), np.arange(60, lmax + 1, 10), [lmax]]))


@dataclass(frozen=True)
class CMBGrid:
    """log C_ell (uK^2) on a regular (H0, omega_b) grid.

    Attributes:
        h0: ``(n_h0,)`` increasing H0 values [km/s/Mpc].
        omega_b: ``(n_ob,)`` increasing omega_b = Omega_b h^2 values.
        ell: ``(n_ell,)`` multipole nodes.
        log_cl: ``(n_h0, n_ob, n_ell)`` natural log of C_ell.
    """

    h0: np.ndarray
    omega_b: np.ndarray
    ell: np.ndarray
    log_cl: np.ndarray

    def save(self, path: str | Path) -> Path:
        """Write the grid atomically (temporary file + os.replace) as a compressed npz."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz.tmp")
        os.close(fd)
        with open(tmp, "wb") as f:
            np.savez_compressed(
                f,
                h0=self.h0,
                omega_b=self.omega_b,
                ell=self.ell,
                log_cl=self.log_cl.astype(np.float32),
                fixed=json.dumps(FIXED_PARAMETERS),
            )
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | Path = DEFAULT_GRID_PATH) -> CMBGrid:
        """Read a grid written by :meth:`save` (default: the grid shipped with the package)."""
        with np.load(path) as f:
            return cls(f["h0"], f["omega_b"], f["ell"], f["log_cl"].astype(np.float64))

    def phis(self) -> np.ndarray:
        """``(n_h0 * n_ob, 2)`` grid points, row-major in (H0, omega_b)."""
        a, b = np.meshgrid(self.h0, self.omega_b, indexing="ij")
        return np.stack([a.ravel(), b.ravel()], -1)

    def interpolate(self, phi: np.ndarray) -> np.ndarray:
        """Bilinear interpolation of log C_ell at ``phi`` ``(..., 2)`` inside the grid."""
        phi = np.asarray(phi, dtype=np.float64)
        out = []
        for p in phi.reshape(-1, 2):
            i = np.clip(np.searchsorted(self.h0, p[0]) - 1, 0, len(self.h0) - 2)
            j = np.clip(np.searchsorted(self.omega_b, p[1]) - 1, 0, len(self.omega_b) - 2)
            u = (p[0] - self.h0[i]) / (self.h0[i + 1] - self.h0[i])
            v = (p[1] - self.omega_b[j]) / (self.omega_b[j + 1] - self.omega_b[j])
            g = self.log_cl
            out.append(
                (1 - u) * (1 - v) * g[i, j]
                + u * (1 - v) * g[i + 1, j]
                + (1 - u) * v * g[i, j + 1]
                + u * v * g[i + 1, j + 1]
            )
        return np.stack(out).reshape(*phi.shape[:-1], -1)


def _camb_nodes(args: tuple[float, float, int]) -> np.ndarray:
    h0, ob, lmax = args
    return np.log(camb_cl(h0, ob, lmax)[ell_nodes(lmax)])


def make_cmb_grid(
    n_h0: int = 13,
    n_omega_b: int = 13,
    lmax: int = 3000,
    processes: int = 1,
    path: str | Path | None = None,
) -> CMBGrid:
    """Run CAMB on a regular grid spanning the prior box; save it atomically to ``path`` if given.

    The lmax must exceed the largest |ell| of the patches used, sqrt(2) pi / pixel size
    (1909 for 8-arcmin pixels).
    """
    if n_h0 < 2 or n_omega_b < 2:
        raise ValueError(f"n_h0 and n_omega_b must be >= 2, got {n_h0}, {n_omega_b}")
    if lmax < 100:
        raise ValueError(f"lmax must be >= 100, got {lmax}")
    h0 = np.linspace(PRIOR_LOW[0], PRIOR_HIGH[0], n_h0)
    ob = np.linspace(PRIOR_LOW[1], PRIOR_HIGH[1], n_omega_b)
    jobs = [(float(a), float(b), lmax) for a in h0 for b in ob]
    if processes > 1:
        with ProcessPoolExecutor(processes) as ex:
            rows = list(ex.map(_camb_nodes, jobs))
    else:
        rows = [_camb_nodes(j) for j in jobs]
    grid = CMBGrid(h0, ob, ell_nodes(lmax), np.stack(rows).reshape(n_h0, n_omega_b, -1))
    if path is not None:
        grid.save(path)
    return grid


def normalise_phi(phi: Float[Array, "... 2"]) -> Float[Array, "... 2"]:
    """Map the prior box U([50, 90] x [0.0075, 0.0567]) onto [-1, 1]^2."""
    phi = jnp.asarray(phi)
    lo = jnp.asarray(PRIOR_LOW, phi.dtype)
    hi = jnp.asarray(PRIOR_HIGH, phi.dtype)
    return 2 * (phi - lo) / (hi - lo) - 1


def sample_phi(key: Array, shape: tuple[int, ...] = ()) -> Float[Array, "... 2"]:
    """Draws of phi = (H0, omega_b) from the uniform prior of Sect. 3.3."""
    u = jax.random.uniform(key, (*shape, 2))
    return jnp.asarray(PRIOR_LOW) + u * (jnp.asarray(PRIOR_HIGH) - jnp.asarray(PRIOR_LOW))


class ClEmulator(nnx.Module):
    """MLP phi -> log C_ell on the grid's multipole nodes (two hidden layers of 100, App. B.6)."""

    def __init__(
        self,
        n_ell: int,
        hidden: int = 100,
        mean: Array | None = None,
        scale: Array | None = None,
        *,
        rngs: nnx.Rngs,
    ):
        self.l1 = nnx.Linear(2, hidden, rngs=rngs)
        self.l2 = nnx.Linear(hidden, hidden, rngs=rngs)
        self.l3 = nnx.Linear(hidden, n_ell, rngs=rngs)
        # output standardisation (per-node mean and scale of the training log C_ell)
        self.mean = nnx.Variable(jnp.zeros(n_ell) if mean is None else jnp.asarray(mean))
        self.scale = nnx.Variable(jnp.ones(n_ell) if scale is None else jnp.asarray(scale))

    def __call__(self, phi: Float[Array, "... 2"]) -> Float[Array, "... n_ell"]:
        h = jnp.tanh(self.l1(normalise_phi(phi)))
        h = jnp.tanh(self.l2(h))
        return self.mean[...] + self.scale[...] * self.l3(h)


_EMULATOR_CACHE: dict[tuple, tuple[ClEmulator, float]] = {}


def train_emulator(
    grid: CMBGrid, steps: int = 3000, learning_rate: float = 3e-3, seed: int = 0
) -> tuple[ClEmulator, float]:
    """Fit :class:`ClEmulator` to a grid (full-batch Adam, cosine decay).

    The fit is deterministic; results are memoised per (grid content, steps, rate, seed)
    within the process.

    Returns:
        (emulator, rms error of log C_ell over the grid's nodes and points).
    """
    import hashlib

    digest = hashlib.sha1(np.ascontiguousarray(grid.log_cl).tobytes()).hexdigest()
    cache_key = (digest, grid.ell.tobytes(), steps, learning_rate, seed)
    if cache_key not in _EMULATOR_CACHE:
        _EMULATOR_CACHE[cache_key] = _fit_emulator(grid, steps, learning_rate, seed)
    return _EMULATOR_CACHE[cache_key]


def _fit_emulator(
    grid: CMBGrid, steps: int, learning_rate: float, seed: int
) -> tuple[ClEmulator, float]:
    x = jnp.asarray(grid.phis(), jnp.float32)
    y = jnp.asarray(grid.log_cl.reshape(len(x), -1), jnp.float32)
    model = ClEmulator(y.shape[1], 100, y.mean(0), y.std(0) + 1e-6, rngs=nnx.Rngs(seed))
    tx = optax.adam(optax.cosine_decay_schedule(learning_rate, steps, 1e-3))
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)

    def loss_fn(p):
        m = nnx.merge(graphdef, p, rest)
        return jnp.mean(((m(x) - y) / m.scale[...]) ** 2)

    def body(_, carry):
        p, opt_state = carry
        grads = jax.grad(loss_fn)(p)
        updates, opt_state = tx.update(grads, opt_state, p)
        return optax.apply_updates(p, updates), opt_state

    # the whole fit is one compiled loop (a Python loop of steps costs seconds of dispatch)
    params, _ = jax.jit(lambda p: jax.lax.fori_loop(0, steps, body, (p, tx.init(p))))(params)
    model = nnx.merge(graphdef, params, rest)
    rms = float(jnp.sqrt(jnp.mean((model(x) - y) ** 2)))
    return model, rms


def emulator_eigenvalues(
    emulator: ClEmulator,
    ell: np.ndarray,
    phi: Float[Array, "batch 2"],
    n: int,
    pixel_arcmin: float,
) -> Float[Array, "batch n n"]:
    """Normalised Fourier eigenvalues of Sigma(phi) for a batch of cosmologies (jit-able)."""
    log_cl = emulator(phi)
    return jax.vmap(lambda lc: covariance_eigenvalues(ell, jnp.exp(lc), n, pixel_arcmin))(log_cl)


class CMBSpectra:
    """phi -> normalised Fourier eigenvalues of Sigma(phi) on a fixed patch, via the emulator.

    Args:
        grid: CAMB grid (default: the grid shipped with the package).
        size: patch side in pixels.
        pixel_arcmin: pixel side in arcmin.
        emulator_steps: Adam steps of :func:`train_emulator`.
        seed: emulator initialisation seed.
    """

    def __init__(
        self,
        grid: CMBGrid | None = None,
        size: int = 64,
        pixel_arcmin: float = 8.0,
        emulator_steps: int = 3000,
        seed: int = 0,
    ):
        self.grid = CMBGrid.load() if grid is None else grid
        corner = float(np.sqrt(2) * np.pi / (pixel_arcmin * np.pi / (180 * 60)))
        if self.grid.ell[-1] < corner:
            raise ValueError(
                f"grid lmax {self.grid.ell[-1]} < patch corner multipole {corner:.0f}; "
                "use larger pixel_arcmin or make a grid with a larger lmax"
            )
        self.size = size
        self.pixel_arcmin = pixel_arcmin
        emulator, self.emulator_rms = train_emulator(self.grid, emulator_steps, seed=seed)
        self._graphdef, self._state = nnx.split(emulator)

    def with_patch(self, size: int, pixel_arcmin: float | None = None) -> CMBSpectra:
        """The same emulator on another patch (no retraining), e.g. 256 x 256 pixels."""
        other = object.__new__(CMBSpectra)
        other.__dict__.update(self.__dict__)
        other.size = size
        if pixel_arcmin is not None:
            corner = float(np.sqrt(2) * np.pi / (pixel_arcmin * np.pi / (180 * 60)))
            if self.grid.ell[-1] < corner:
                raise ValueError(
                    f"grid lmax {self.grid.ell[-1]} < patch corner multipole {corner:.0f}"
                )
            other.pixel_arcmin = pixel_arcmin
        return other

    def log_cl(self, phi: Float[Array, "... 2"]) -> Float[Array, "... n_ell"]:
        """Emulated log C_ell (uK^2) at the grid's multipole nodes."""
        return nnx.merge(self._graphdef, self._state)(jnp.asarray(phi, jnp.float32))

    def eigenvalues(self, phi: Float[Array, "batch 2"]) -> Float[Array, "batch n n"]:
        """Normalised eigenvalues of Sigma(phi) for a batch of cosmologies (jit-able)."""
        return emulator_eigenvalues(
            nnx.merge(self._graphdef, self._state), self.grid.ell, phi, self.size, self.pixel_arcmin
        )
