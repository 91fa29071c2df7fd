"""CMB-coloured variance-preserving SDE, its reverse and posterior sampling (Sect. 3, eqs 2-3).

Forward process (eq. 2, written with the drift sign of a variance-preserving SDE):

    dz = -1/2 beta(t) z dt + sqrt(beta(t)) Sigma^{1/2} dw,

with linear beta(t) = beta_min + t (beta_max - beta_min) and
alpha(t) = exp(-int_0^t beta), so that z_t | z_0 ~ N(sqrt(alpha) z_0, (1 - alpha) Sigma)
and p_1 ~ N(0, Sigma) up to alpha(1) (4e-5 with the defaults).

Reverse process (eq. 3): dz = [-1/2 beta z - beta Sigma grad log p_t(z)] dt + sqrt(beta)
Sigma^{1/2} dw_bar, integrated backwards in time. Networks are parametrised by the
renormalised output of App. B.2, m = -sqrt(1 - alpha) Sigma grad log p_t (the sign of
eq. 5: m regresses the coloured noise (z_t - sqrt(alpha) z_0) / sqrt(1 - alpha)),
so Sigma^{-1} is never applied and Sigma grad log p_t = -m / sqrt(1 - alpha).

Posterior sampling (Sect. 3.2): for y = x + eps, eps ~ N(0, sigma^2 Sigma),
sqrt(alpha*) y with alpha* = 1 / (1 + sigma^2) is distributed as z_{t*} given
z_0 = x, so running the reverse SDE from t* = alpha^{-1}(1 / (1 + sigma^2)) samples
p(x | y).

A ``noise_fn`` is any callable ``(z[batch, n, n], t[batch]) -> m[batch, n, n]``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._flatsky import apply_fourier_filter

NoiseFn = Callable[[Array, Array], Array]


@dataclass(frozen=True)
class LinearSchedule:
    """Linear beta(t) on t in [0, 1] (eq. 2); defaults give alpha(1) = exp(-10.05).

    Attributes:
        beta_min: beta(0).
        beta_max: beta(1).
    """

    beta_min: float = 0.1
    beta_max: float = 20.0

    def __post_init__(self) -> None:
        if not (0 <= self.beta_min < self.beta_max):
            raise ValueError(f"need 0 <= beta_min < beta_max, got {self.beta_min}, {self.beta_max}")

    def beta(self, t):
        """beta(t)."""
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def integrated_beta(self, t):
        """int_0^t beta(u) du."""
        return self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t**2

    def alpha(self, t):
        """alpha(t) = exp(-int_0^t beta) (App. B.2)."""
        return jnp.exp(-self.integrated_beta(t))

    def time_of_alpha(self, alpha: float) -> float:
        """Closed-form inverse of alpha(t): root of beta_min t + (beta_max - beta_min) t^2 / 2."""
        if not 0 < alpha <= 1:
            raise ValueError(f"alpha must be in (0, 1], got {alpha}")
        a = 0.5 * (self.beta_max - self.beta_min)
        c = -math.log(alpha)
        t = (-self.beta_min + math.sqrt(self.beta_min**2 + 4 * a * c)) / (2 * a)
        if t > 1:
            raise ValueError(f"alpha={alpha} is reached after t=1 ({t:.3f}); increase beta_max")
        return t

    def t_star(self, sigma: float) -> float:
        """Start time of posterior sampling for CMB amplitude sigma: alpha(t*) = 1/(1+sigma^2)."""
        if sigma <= 0:
            raise ValueError(f"sigma (CMB amplitude) must be > 0, got {sigma}")
        return self.time_of_alpha(1.0 / (1.0 + sigma**2))


def forward_marginal_variance(
    schedule: LinearSchedule,
    t: float | Array,
    prior_variance: Float[Array, "n n"],
    eigenvalues: Float[Array, "n n"],
) -> Float[Array, "n n"]:
    """Per-Fourier-mode variance of z_t for z_0 with per-mode variance ``prior_variance``.

    Closed form of eq. (2): Var z_t = alpha(t) P + (1 - alpha(t)) lambda.
    """
    a = schedule.alpha(t)
    return a * prior_variance + (1 - a) * eigenvalues


def diffuse(
    key: Array,
    x0: Float[Array, "batch n n"],
    t: Float[Array, " batch"],
    sqrt_eigenvalues: Float[Array, "batch n n"] | Float[Array, "n n"],
    schedule: LinearSchedule,
) -> tuple[Float[Array, "batch n n"], Float[Array, "batch n n"]]:
    """Sample z_t | z_0 = x0 exactly; returns (z_t, coloured noise Sigma^{1/2} n = m target)."""
    white = jax.random.normal(key, x0.shape, x0.dtype)
    noise = apply_fourier_filter(white, sqrt_eigenvalues)
    a = schedule.alpha(t)[:, None, None]
    return jnp.sqrt(a) * x0 + jnp.sqrt(1 - a) * noise, noise


def forward_euler_maruyama(
    key: Array,
    x0: Float[Array, "batch n n"],
    sqrt_eigenvalues: Float[Array, "n n"],
    schedule: LinearSchedule,
    t_end: float,
    n_steps: int,
) -> Float[Array, "batch n n"]:
    """Integrate the forward SDE (eq. 2) from 0 to ``t_end`` with Euler-Maruyama."""
    h = t_end / n_steps

    def step(z, inp):
        i, k = inp
        t = (i * h).astype(z.dtype)
        b = schedule.beta(t)
        xi = apply_fourier_filter(jax.random.normal(k, z.shape, z.dtype), sqrt_eigenvalues)
        return z - 0.5 * b * z * h + jnp.sqrt(b * h) * xi, None

    keys = jax.random.split(key, n_steps)
    z, _ = jax.lax.scan(step, x0, (jnp.arange(n_steps), keys))
    return z


def _time_grid(t_start: float, t_end: float, n_steps: int) -> Array:
    if not 0 <= t_end < t_start <= 1:
        raise ValueError(f"need 0 <= t_end < t_start <= 1, got t_start={t_start}, t_end={t_end}")
    if n_steps < 1:
        raise ValueError(f"n_steps must be >= 1, got {n_steps}")
    return jnp.linspace(t_start, t_end, n_steps + 1)


def reverse_sde_sample(
    key: Array,
    noise_fn: NoiseFn,
    z_start: Float[Array, "batch n n"],
    t_start: float,
    sqrt_eigenvalues: Float[Array, "batch n n"] | Float[Array, "n n"],
    schedule: LinearSchedule,
    n_steps: int = 1000,
    t_end: float = 0.0,
) -> Float[Array, "batch n n"]:
    """Euler-Maruyama integration of the reverse SDE (eq. 3, App. B.3) from t_start to t_end.

    Update from t to t - h, with Sigma grad log p = -m / sqrt(1 - alpha):
    z <- z + h beta [z / 2 - m / sqrt(1 - alpha)] + sqrt(beta h) Sigma^{1/2} xi.
    The network is evaluated at t > t_end only (never at t = 0, where 1 - alpha = 0).
    """
    ts = _time_grid(t_start, t_end, n_steps).astype(z_start.dtype)
    batch = z_start.shape[0]

    def step(z, inp):
        t, t_next, k = inp
        h = t - t_next
        b = schedule.beta(t)
        m = noise_fn(z, jnp.full((batch,), t, z.dtype))
        drift = 0.5 * z - m / jnp.sqrt(1 - schedule.alpha(t))
        xi = apply_fourier_filter(jax.random.normal(k, z.shape, z.dtype), sqrt_eigenvalues)
        return z + h * b * drift + jnp.sqrt(b * h) * xi, None

    keys = jax.random.split(key, n_steps)
    z, _ = jax.lax.scan(step, z_start, (ts[:-1], ts[1:], keys))
    return z


def probability_flow_sample(
    noise_fn: NoiseFn,
    z_start: Float[Array, "batch n n"],
    t_start: float,
    schedule: LinearSchedule,
    n_steps: int = 1000,
    t_end: float = 0.0,
) -> Float[Array, "batch n n"]:
    """Euler integration of the probability-flow ODE dz/dt = -beta/2 (z + Sigma grad log p_t).

    Update from t to t - h: z <- z + h beta / 2 [z - m / sqrt(1 - alpha)].
    """
    ts = _time_grid(t_start, t_end, n_steps).astype(z_start.dtype)
    batch = z_start.shape[0]

    def step(z, inp):
        t, t_next = inp
        h = t - t_next
        m = noise_fn(z, jnp.full((batch,), t, z.dtype))
        return z + 0.5 * h * schedule.beta(t) * (z - m / jnp.sqrt(1 - schedule.alpha(t))), None

    z, _ = jax.lax.scan(step, z_start, (ts[:-1], ts[1:]))
    return z


def sample_prior(
    key: Array,
    noise_fn: NoiseFn,
    n_samples: int,
    eigenvalues: Float[Array, "n n"],
    schedule: LinearSchedule,
    n_steps: int = 1000,
    method: str = "sde",
    t_end: float = 0.0,
) -> Float[Array, "n_samples n n"]:
    """Unconditional generation: z_1 ~ N(0, Sigma), then the reverse SDE or the ODE to t_end."""
    if method not in ("sde", "ode"):
        raise ValueError(f"method must be 'sde' or 'ode', got {method!r}")
    k1, k2 = jax.random.split(key)
    sq = jnp.sqrt(eigenvalues)
    white = jax.random.normal(k1, (n_samples, *eigenvalues.shape), eigenvalues.dtype)
    z1 = apply_fourier_filter(white, sq)
    if method == "sde":
        return reverse_sde_sample(k2, noise_fn, z1, 1.0, sq, schedule, n_steps, t_end)
    return probability_flow_sample(noise_fn, z1, 1.0, schedule, n_steps, t_end)


def posterior_start(
    y: Float[Array, "*batch n n"], sigma: float, schedule: LinearSchedule
) -> tuple[float, Float[Array, "*batch n n"]]:
    """t* and z_{t*} = sqrt(alpha(t*)) y = y / sqrt(1 + sigma^2) for y = x + N(0, sigma^2 Sigma)."""
    t_star = schedule.t_star(sigma)
    return t_star, y / math.sqrt(1.0 + sigma**2)


def sample_posterior(
    key: Array,
    noise_fn: NoiseFn,
    y: Float[Array, "n n"],
    sigma: float,
    eigenvalues: Float[Array, "n n"],
    schedule: LinearSchedule,
    n_samples: int,
    n_steps: int = 1000,
    t_end: float = 0.0,
) -> tuple[Float[Array, "n_samples n n"], Float[Array, "n_samples n n"]]:
    """Posterior samples of dust x and CMB eps = y - x given y = x + eps (Sect. 3.2).

    Args:
        key: PRNG key.
        noise_fn: renormalised score model m(z, t) for the cosmology of ``eigenvalues``.
        y: observed mixture, in the model's units (dust standardised as in training).
        sigma: CMB amplitude in the same units (eps ~ N(0, sigma^2 Sigma)).
        eigenvalues: Fourier eigenvalues of the normalised CMB covariance Sigma.
        schedule: the SDE's beta schedule.
        n_samples: number of posterior samples.
        n_steps: Euler-Maruyama steps between t* and t_end.
        t_end: final time (0 integrates to the data).

    Returns:
        (dust samples, CMB samples), each ``(n_samples, n, n)``.
    """
    if y.ndim != 2 or y.shape != eigenvalues.shape:
        raise ValueError(
            f"y must be one (n, n) map matching eigenvalues {eigenvalues.shape}, got {y.shape}"
        )
    t_star, z = posterior_start(y, sigma, schedule)
    z = jnp.broadcast_to(z, (n_samples, *y.shape))
    x = reverse_sde_sample(
        key, noise_fn, z, t_star, jnp.sqrt(eigenvalues), schedule, n_steps, t_end
    )
    return x, y[None] - x


def gaussian_prior_noise_fn(
    prior_variance: Float[Array, "n n"],
    eigenvalues: Float[Array, "n n"],
    schedule: LinearSchedule,
) -> NoiseFn:
    """Exact m(z, t) when the 'dust' is Gaussian with per-Fourier-mode variance P.

    p_t = N(0, alpha P + (1 - alpha) Sigma), so
    m = sqrt(1 - alpha) Sigma (alpha P + (1 - alpha) Sigma)^{-1} z, diagonal in Fourier space.
    """

    def noise_fn(z, t):
        a = schedule.alpha(t)[:, None, None]
        filt = jnp.sqrt(1 - a) * eigenvalues / (a * prior_variance + (1 - a) * eigenvalues)
        zk = jnp.fft.fft2(z)
        return jnp.real(jnp.fft.ifft2(zk * filt)).astype(z.dtype)

    return noise_fn


def wiener_posterior(
    y: Float[Array, "n n"],
    prior_variance: Float[Array, "n n"],
    eigenvalues: Float[Array, "n n"],
    sigma: float,
) -> tuple[Float[Array, "n n"], Float[Array, "n n"]]:
    """Analytic posterior of a Gaussian dust x (per-mode variance P) given y = x + eps.

    Returns the posterior mean map and the per-Fourier-mode posterior variance
    P sigma^2 lambda / (P + sigma^2 lambda) (the Wiener filter).
    """
    noise = sigma**2 * eigenvalues
    w = prior_variance / (prior_variance + noise)
    mean = jnp.real(jnp.fft.ifft2(jnp.fft.fft2(y) * w))
    return mean, prior_variance * noise / (prior_variance + noise)
