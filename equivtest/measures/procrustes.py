"""The orthogonal Procrustes shape distance of Williams et al. (2021)."""

from __future__ import annotations

import numpy as np

from . import Measure, centred, paired_activations


class ProcrustesDistance(Measure):
    r"""Angular Procrustes shape distance between ``X (N, Fx)`` and ``Y (N, Fy)``.

    Both matrices are column-centred and scaled to unit Frobenius norm, and the
    narrower is zero-padded to the width ``F = max(Fx, Fy)`` of the other. With
    ``rho = ||X^T Y||_*`` (nuclear norm, the sum of singular values; padding does not
    change it) = ``max_{Q in O(F)} tr(X^T Y Q)``::

        angular distance    theta = arccos(rho)          in [0, pi/2]
        Euclidean distance  d = min_Q ||X Q - Y||_F = sqrt(2 - 2 rho)

    Both are metrics on shapes (Williams et al. 2021, the generalized shape metric
    with alpha = 1): zero exactly when ``Y = s X Q + 1 c^T`` with ``Q`` orthogonal and
    ``s > 0``, symmetric, and satisfying the triangle inequality. ``theta`` is taken
    as ``2 arcsin(d / 2)`` with ``d`` the residual of the optimal rotation, which is
    the same number but keeps its accuracy near zero, where ``arccos(rho)`` loses half
    the digits (rho = 1 - 1e-16 gives an angle of 1.5e-8).

    Attributes
    ----------
    score_ : float
        The angular distance ``theta`` (lower is more similar).
    angular_distance_, euclidean_distance_ : float
        ``theta`` and ``d``.
    similarity_ : float
        ``rho = cos(theta)``, the normalised Procrustes similarity in [0, 1].
    rotation_ : ndarray (F, F)
        The orthogonal ``Q`` with ``pad(X_n) @ Q ~ pad(Y_n)`` (``X_n``, ``Y_n`` the
        centred, normalised activations).
    n_samples_ : int

    Reference
    ---------
    A. H. Williams, E. Kunz, S. Kornblith, S. W. Linderman. Generalized shape metrics
    on neural representations. NeurIPS 2021.
    """

    higher_is_better = False
    _params = ()

    def fit(self, X, Y) -> "ProcrustesDistance":
        name = "Procrustes distance"
        x, y = paired_activations(X, Y, min_samples=2, measure=name)
        x, y = centred(x, "X", name), centred(y, "Y", name)
        x, y = x / np.linalg.norm(x), y / np.linalg.norm(y)
        width = max(x.shape[1], y.shape[1])
        x, y = _pad(x, width), _pad(y, width)
        u, s, vt = np.linalg.svd(x.T @ y)
        rotation = u @ vt
        euclidean = float(np.linalg.norm(x @ rotation - y))
        self.rotation_ = rotation
        self.similarity_ = float(min(s.sum(), 1.0))
        self.euclidean_distance_ = euclidean
        self.angular_distance_ = float(2.0 * np.arcsin(min(euclidean / 2.0, np.sqrt(0.5))))
        self.score_ = self.angular_distance_
        self.n_samples_ = x.shape[0]
        return self


def _pad(x: np.ndarray, width: int) -> np.ndarray:
    return x if x.shape[1] == width else np.hstack([x, np.zeros((x.shape[0], width - x.shape[1]))])
