"""Theory templates for the BB model of paper sec. IV.c: lensing BB and tensor BB at r = 1.

``camb_templates`` runs CAMB (offline) with Planck 2018 parameters by default and caches the
result on disk, keyed by a hash of every input that changes the spectra (parameters, lmax,
CAMB version); the cache file is written atomically (temporary file + ``os.replace``), so
concurrent processes never read a half-written template. ``read_templates`` loads the same
spectra from healpy ``read_cl`` FITS files or from an ``.npz`` holding CAMB arrays.
All spectra are raw C_ell in uK_CMB^2, indexed from ell = 0.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from jaxtyping import Float, Int

_CACHE_FORMAT = 1


@dataclass(frozen=True)
class CosmologyParams:
    """CAMB inputs. Defaults: Planck 2018 TT,TE,EE+lowE+lensing (Planck 2018 VI, Table 2).

    ``A_lens`` scales the lensing potential power (1 = physical lensing); tensors use r = 1
    with the consistency-relation tilt ``n_t = -r/8`` (CAMB's default) at k = 0.05 Mpc^-1.
    """

    H0: float = 67.36
    ombh2: float = 0.02237
    omch2: float = 0.1200
    tau: float = 0.0544
    mnu: float = 0.06
    As: float = 2.1e-9
    ns: float = 0.9649
    A_lens: float = 1.0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if not np.isfinite(value):
                raise ValueError(f"{f.name}: must be finite, got {value}")
        if self.A_lens < 0:
            raise ValueError("A_lens: must be >= 0")


@dataclass(frozen=True)
class BBTemplates:
    """Lensed-scalar and r = 1 tensor spectra (uK_CMB^2, raw C_ell, ell = 0..lmax)."""

    ell: Int[np.ndarray, " ell"]
    lensed_ee: Float[np.ndarray, " ell"]
    lensed_bb: Float[np.ndarray, " ell"]
    tensor_ee: Float[np.ndarray, " ell"]
    tensor_bb: Float[np.ndarray, " ell"]

    @property
    def lmax(self) -> int:
        """Highest multipole."""
        return int(self.ell[-1])

    def bb_model(self, r: float) -> Float[np.ndarray, " ell"]:
        """``r C_ell^tensor + C_ell^lensing`` (paper sec. IV.c without the noise floor)."""
        return r * self.tensor_bb + self.lensed_bb

    def truncate(self, lmax: int) -> BBTemplates:
        """The templates up to ``lmax``."""
        if lmax > self.lmax:
            raise ValueError(f"lmax: {lmax} exceeds the templates' lmax {self.lmax}")
        return BBTemplates(*(getattr(self, f.name)[: lmax + 1] for f in dataclasses.fields(self)))


def default_cache_dir() -> Path:
    """``$BB_RESIDUALS_CACHE``, else ``$XDG_CACHE_HOME/bb-residuals`` (``~/.cache``)."""
    env = os.environ.get("BB_RESIDUALS_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "bb-residuals"


def template_cache_key(params: CosmologyParams, lmax: int) -> str:
    """Hex digest identifying a CAMB run: parameters, lmax, CAMB version, cache format."""
    import camb

    payload = {
        "params": dataclasses.asdict(params),
        "lmax": int(lmax),
        "camb": camb.__version__,
        "format": _CACHE_FORMAT,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]


def _run_camb(params: CosmologyParams, lmax: int) -> BBTemplates:
    import camb

    # Lensed spectra are inaccurate in the last ~100 multipoles CAMB computes; tensors need a
    # higher tensor lmax than set_for_lmax gives to be converged at ell ~ lmax.
    lmax_calc = lmax + 150
    pars = camb.CAMBparams()
    pars.set_cosmology(
        H0=params.H0,
        ombh2=params.ombh2,
        omch2=params.omch2,
        tau=params.tau,
        mnu=params.mnu,
        omk=0.0,
        Alens=params.A_lens,
    )
    pars.InitPower.set_params(As=params.As, ns=params.ns, r=1.0)
    pars.WantTensors = True
    pars.set_for_lmax(lmax_calc, lens_potential_accuracy=1)
    pars.max_l_tensor = max(1500, lmax_calc + 500)
    pars.max_eta_k_tensor = 2.0 * pars.max_l_tensor
    results = camb.get_results(pars)
    cls = results.get_cmb_power_spectra(pars, CMB_unit="muK", raw_cl=True, lmax=lmax)
    lensed, tensor = cls["lensed_scalar"], cls["tensor"]
    return BBTemplates(
        ell=np.arange(lmax + 1),
        lensed_ee=lensed[:, 1].copy(),
        lensed_bb=lensed[:, 2].copy(),
        tensor_ee=tensor[:, 1].copy(),
        tensor_bb=tensor[:, 2].copy(),
    )


def _save_atomic(path: Path, templates: BBTemplates) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **dataclasses.asdict(templates))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def camb_templates(
    lmax: int = 400,
    params: CosmologyParams | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
    use_cache: bool = True,
) -> BBTemplates:
    """Lensed and r = 1 tensor CMB spectra from CAMB, cached on disk.

    Args:
        lmax: highest multipole (>= 2).
        params: cosmology (default: Planck 2018 best fit, ``A_lens = 1``).
        cache_dir: cache folder (default ``default_cache_dir()``).
        use_cache: read/write the cache; ``False`` always runs CAMB and writes nothing.

    Returns:
        ``BBTemplates`` in uK_CMB^2 (raw C_ell), ell = 0..lmax.

    Example:
        >>> t = camb_templates(lmax=300)  # doctest: +SKIP
        >>> model = t.bb_model(r=0.003)  # doctest: +SKIP
    """
    if int(lmax) != lmax or lmax < 2:
        raise ValueError(f"lmax: must be an integer >= 2, got {lmax}")
    params = CosmologyParams() if params is None else params
    if not isinstance(params, CosmologyParams):
        raise ValueError("params: expected a CosmologyParams instance")
    if not use_cache:
        return _run_camb(params, int(lmax))
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = folder / f"camb_{template_cache_key(params, int(lmax))}.npz"
    if path.exists():
        with np.load(path) as data:
            return BBTemplates(**{f.name: data[f.name] for f in dataclasses.fields(BBTemplates)})
    templates = _run_camb(params, int(lmax))
    _save_atomic(path, templates)
    return templates


def read_templates(
    lensed: str | os.PathLike,
    tensor: str | os.PathLike | None = None,
    *,
    lmax: int | None = None,
    A_lens: float = 1.0,
) -> BBTemplates:
    """Templates from files: healpy ``read_cl`` FITS spectra or a CAMB ``.npz``.

    Args:
        lensed: FITS file of lensed-scalar spectra (columns TT, EE, BB, TE), or an ``.npz`` with
            arrays ``lensed_scalar`` and ``tensor_r1`` of shape ``[ell, (TT, EE, BB, TE)]``
            (then ``tensor`` must be ``None``).
        tensor: FITS file of the unlensed-scalar-plus-tensor spectra at r = 1; its BB column
            is the tensor BB (unlensed scalars have no B modes). Its EE mixes scalar and tensor
            EE, so ``tensor_ee`` is zero for FITS input (it is exact for ``.npz`` input).
        lmax: truncate to this multipole (default: the shortest file).
        A_lens: scale applied to the lensing BB read from the file (lensing BB is linear in
            the lensing amplitude to first order).
    """
    lensed = Path(lensed)
    if not lensed.exists():
        raise ValueError(f"lensed: file not found: {lensed}")
    if A_lens < 0:
        raise ValueError("A_lens: must be >= 0")
    if lensed.suffix == ".npz":
        if tensor is not None:
            raise ValueError("tensor: leave it None when lensed is a .npz holding both")
        with np.load(lensed) as data:
            if "lensed_scalar" not in data or "tensor_r1" not in data:
                raise ValueError(f"lensed: {lensed} lacks arrays 'lensed_scalar'/'tensor_r1'")
            ls, tr = data["lensed_scalar"], data["tensor_r1"]
        l_ee, l_bb, t_ee, t_bb = ls[:, 1], ls[:, 2], tr[:, 1], tr[:, 2]
    else:
        import healpy as hp

        if tensor is None:
            raise ValueError("tensor: give the r = 1 tensor spectra file for a FITS input")
        tensor = Path(tensor)
        if not tensor.exists():
            raise ValueError(f"tensor: file not found: {tensor}")
        ls, tr = hp.read_cl(str(lensed)), hp.read_cl(str(tensor))
        l_ee, l_bb, t_bb = ls[1], ls[2], tr[2]
        # The file holds unlensed scalar + tensor EE together; tensor EE is not separable.
        t_ee = np.zeros_like(t_bb)
    n = min(len(l_bb), len(t_bb))
    if lmax is not None:
        if lmax + 1 > n:
            raise ValueError(f"lmax: {lmax} exceeds the files' lmax {n - 1}")
        n = lmax + 1
    arrays = [np.asarray(a[:n], dtype=np.float64) for a in (l_ee, l_bb, t_ee, t_bb)]
    arrays[1] = arrays[1] * A_lens
    return BBTemplates(np.arange(n), *arrays)
