"""CMB polarisation spectra for sky simulation: EE and BB = A_lens x lensing + r x tensor.

The templates are bb-residuals' (``camb_templates``: CAMB with Planck 2018 parameters,
cached on disk; or ``read_templates`` of a spectra file such as
``../shared/data/cls/camb_planck2018_lmax400.npz``), so the simulated CMB and the r
likelihood share one set of spectra.
"""

from __future__ import annotations

from pathlib import Path

import bb_residuals
import numpy as np
from jaxtyping import Float

# CAMB runs once per lmax (cached): 400 serves every nside <= 128 (3 nside - 1 <= 383).
_TEMPLATE_LMAX = 400


def cmb_templates(lmax: int, cls_file: str | Path | None = None) -> bb_residuals.BBTemplates:
    """Lensed-scalar and r = 1 tensor spectra up to ``lmax`` (file, else cached CAMB)."""
    if cls_file is not None:
        path = Path(cls_file)
        if not path.is_file():
            raise ValueError(f"cls_file {str(path)!r} does not exist")
        templates = bb_residuals.read_templates(path)
    else:
        templates = bb_residuals.camb_templates(lmax=max(_TEMPLATE_LMAX, lmax))
    if templates.lmax < lmax:
        raise ValueError(
            f"CMB spectra reach ell = {templates.lmax}, the run needs lmax = {lmax}; "
            "use a lower nside or a longer spectra file"
        )
    return templates.truncate(lmax)


def cmb_polarization_spectra(
    lmax: int, *, r: float = 0.0, a_lens: float = 1.0, cls_file: str | Path | None = None
) -> tuple[Float[np.ndarray, " ell"], Float[np.ndarray, " ell"]]:
    """EE and BB raw C_ell [uK_CMB^2] for ell = 0..lmax.

    ``EE = EE_lensed + r EE_tensor`` and ``BB = A_lens BB_lensed + r BB_tensor``.

    Args:
        lmax: largest multipole.
        r: tensor-to-scalar ratio (>= 0).
        a_lens: lensing BB amplitude (>= 0).
        cls_file: optional spectra file readable by ``bb_residuals.read_templates``
            (``.npz`` with ``lensed_scalar`` and ``tensor_r1``).
    """
    if r < 0 or a_lens < 0:
        raise ValueError(f"r and A_lens must be >= 0, got r={r}, A_lens={a_lens}")
    t = cmb_templates(lmax, cls_file)
    return t.lensed_ee + r * t.tensor_ee, a_lens * t.lensed_bb + r * t.tensor_bb
