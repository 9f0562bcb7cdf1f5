"""A ladder of maps between two networks' rows, rigid to flexible: arrays in, values out.

Every map is a scikit-learn style estimator that maps one way (fit ``A -> B`` and
``B -> A`` as two maps): ``fit(X, Y, groups=None)`` on paired rows (``groups[i]``: the
input row i came from), ``predict(X)``, ``diagnostics()``, ``save(path)`` and
:func:`load_map` (npz arrays + a checksummed JSON header, no pickle).

======== ================================================= ============================
rung     map                                               fitted on
======== ================================================= ============================
identity ``Y = X``                                         nothing
permutation ``Y[:, j] = s_j X[:, p_j]`` (signs optional)   correlations + assignment
orthogonal ``Y = s X R + t``                               Procrustes
diagonal ``Y = X * a + b`` (per neuron)                    least squares per neuron
affine   ``Y = X W + b``                                   ridge, penalty CV by input
nonlinear affine + RBF kernel ridge (Nyström)              CV by input
diffusion the thesis's diffusion-map Transformation        rows + neighbourhood rows
======== ================================================= ============================

The rigid maps and the affine map take ``device``: ``None`` (default) computes in numpy,
a torch device name ("cpu", "cuda") the same formulas in torch float64 there.
"""

from __future__ import annotations

from ..errors import EquivtestError
from ._base import Rung, load_map, relative_error
from .affine import Affine
from .diffusion import DiffusionMap
from .kernel import Nonlinear
from .rigid import Diagonal, Identity, Orthogonal, Permutation

RUNGS = {cls.name: cls for cls in (Identity, Permutation, Orthogonal, Diagonal, Affine, Nonlinear, DiffusionMap)}
LADDER = ("identity", "permutation", "orthogonal", "diagonal", "affine", "nonlinear")  # the default, rigid first


def make_rung(rung: "str | Rung", device: "str | None" = None) -> Rung:
    """An unfitted map from a rung name or a (possibly fitted) map used as a template.

    ``device``: where a map that takes one computes (the rigid and affine maps, see
    :class:`Rung`); ``None`` leaves a name's default (numpy) and a template's own device.
    Maps without a ``device`` (nonlinear, diffusion) ignore it.
    """
    if isinstance(rung, Rung):
        made = rung.clone()
    elif rung not in RUNGS:
        raise EquivtestError(f"unknown rung {rung!r}; choose from {sorted(RUNGS)} or pass a map instance")
    else:
        made = RUNGS[rung]()
    if device is not None and made.takes_device():
        made.device = device
    return made


__all__ = ["Affine", "Diagonal", "DiffusionMap", "Identity", "LADDER", "Nonlinear", "Orthogonal", "Permutation",
           "RUNGS", "Rung", "load_map", "make_rung", "relative_error"]
