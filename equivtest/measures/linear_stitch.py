"""Linear stitching: an affine map from one network's layer to another's.

The linear counterpart of the diffusion-map transformation: fit ``Y ~ X W + b`` on
paired activations, then run the target network with its layer replaced by the map
of the source network's activations (Lenc and Vedaldi 2015; Bansal, Nakkiran and
Barak 2021 train the map on the task loss instead; here it is least squares on the
activations, which needs no training loop).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from .._validation import as_finite_float64
from ..errors import ActivationError, FitConfigError
from . import MEASURE_FIX, Measure, paired_activations


class LinearStitch(Measure):
    r"""Least-squares affine map from activations ``X (N, Fx)`` to ``Y (N, Fy)``.

    Solves, with the intercept ``b`` not penalised::

        min_{W, b}  ||X W + 1 b^T - Y||_F^2 + ridge ||W||_F^2

    by centring: ``W = (Xc^T Xc + ridge I)^{-1} Xc^T Yc`` (``ridge = 0``: the
    minimum-norm least-squares solution via ``numpy.linalg.lstsq``, so collinear
    features are fine) and ``b = mean(Y) - mean(X) W``. An exact affine relation
    ``Y = X W + b`` with full-rank ``Xc`` is recovered to rounding.

    Parameters
    ----------
    ridge
        Non-negative Tikhonov penalty on ``W`` (in the units of ``Xc^T Xc``).

    Attributes
    ----------
    coef_ : ndarray (Fx, Fy)
        ``W``.
    intercept_ : ndarray (Fy,)
        ``b``.
    score_ : float
        Training coefficient of determination over all outputs,
        ``1 - ||X W + b - Y||_F^2 / ||Y - mean(Y)||_F^2`` (1 for a constant ``Y``).
    mse_ : float
        Training mean squared error per entry.
    n_samples_, n_features_in_, n_features_out_ : int
    """

    higher_is_better = True
    _params = ("ridge",)

    def __init__(self, ridge: float = 0.0):
        self.ridge = ridge

    def fit(self, X, Y) -> "LinearStitch":
        ridge = float(self.ridge)
        if not np.isfinite(ridge) or ridge < 0:
            raise FitConfigError(f"LinearStitch ridge must be a finite number >= 0, got {self.ridge!r}")
        x, y = paired_activations(X, Y, min_samples=1, measure="linear stitch")
        x_mean, y_mean = x.mean(axis=0), y.mean(axis=0)
        xc, yc = x - x_mean, y - y_mean
        if ridge == 0:
            coef = np.linalg.lstsq(xc, yc, rcond=None)[0]
        else:
            gram = xc.T @ xc
            gram[np.diag_indices_from(gram)] += ridge
            coef = np.linalg.solve(gram, xc.T @ yc)
        self.coef_ = coef
        self.intercept_ = y_mean - x_mean @ coef
        sse = float(np.sum((xc @ coef - yc) ** 2))
        sst = float(np.sum(yc**2))
        self.mse_ = sse / y.size
        self.score_ = 1.0 - sse / sst if sst > 0 else 1.0
        self.n_samples_, self.n_features_in_, self.n_features_out_ = x.shape[0], x.shape[1], y.shape[1]
        return self

    def predict(self, X) -> np.ndarray:
        """``X W + b`` for new source activations ``X (M, Fx)``."""
        self._check_fitted()
        x = as_finite_float64(X, "linear stitch: source activations", ndim=2, fix=MEASURE_FIX)
        if x.shape[1] != self.n_features_in_:
            raise ActivationError(
                f"linear stitch: the activations have {x.shape[1]} features, but the map was fitted "
                f"on {self.n_features_in_}; capture the same layer and neurons as at fit time"
            )
        return x @ self.coef_ + self.intercept_

    def stitched_network(
        self,
        source_net,
        target_net,
        source_layer,
        target_layer,
        *,
        target_input_map: Callable | None = None,
        batch_size: int = 8192,
    ):
        """A :class:`equivtest.stitch.StitchedNetwork`: the source up to ``source_layer``,
        this map, the target after ``target_layer`` (a callable ``inputs -> outputs``)."""
        from ..stitch import StitchedNetwork

        self._check_fitted()
        return StitchedNetwork(
            source_net, target_net, source_layer, target_layer, _AsTransformation(self), "target",
            domain_map=target_input_map, batch_size=batch_size,
        )


class _AsTransformation:
    """What :class:`StitchedNetwork` needs of a transformation: ``side`` and ``predict``.

    A linear stitch maps one way only, so every target name means that one direction.
    """

    def __init__(self, stitch: LinearStitch):
        self.stitch = stitch

    def side(self, to: str) -> str:
        return "b"

    def predict(self, activations, to: str) -> np.ndarray:
        return self.stitch.predict(activations)


def linear_stitch_outputs(
    source_net,
    target_net,
    source_layer,
    target_layer,
    train_source_acts,
    train_target_acts,
    test_inputs,
    target_input_map: Callable | None = None,
    *,
    ridge: float = 0.0,
    batch_size: int = 8192,
) -> np.ndarray:
    """Outputs of ``target_net`` on ``test_inputs`` with ``target_layer`` replaced by a linear
    map of ``source_net``'s ``source_layer`` activations.

    The map is a :class:`LinearStitch` fitted on ``train_source_acts (N, Fx)`` ->
    ``train_target_acts (N, Fy)`` (activations of the two layers on the same N inputs,
    e.g. from :func:`equivtest.capture.capture`; ``Fy`` must be the width of
    ``target_layer``, or of its selected neurons when it is a ``LayerSpec`` with
    ``neurons``). ``test_inputs`` are inputs of the source network;
    ``target_input_map`` carries them to the target's inputs (as a pair's domain map),
    which the target still needs for the layers before the replaced one. Layers are
    module paths or :class:`equivtest.capture.LayerSpec`.
    """
    stitch = LinearStitch(ridge=ridge).fit(train_source_acts, train_target_acts)
    network = stitch.stitched_network(
        source_net, target_net, source_layer, target_layer, target_input_map=target_input_map, batch_size=batch_size
    )
    return network(test_inputs)
