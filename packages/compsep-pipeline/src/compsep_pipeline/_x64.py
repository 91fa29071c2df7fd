"""Float64 for JAX: the spectral likelihood is ~1e9 in value and loses its optimum in float32.

The pipeline is an application (CLI, campaign), so it switches JAX to float64 once at its
entry points; library users calling the pipeline functions get the same behaviour.
"""

from __future__ import annotations

import jax


def ensure_x64() -> None:
    """Enable ``jax_enable_x64`` if it is off (idempotent)."""
    if not jax.config.read("jax_enable_x64"):
        jax.config.update("jax_enable_x64", True)
