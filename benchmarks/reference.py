"""A faithful reference of the thesis's pipeline, written for the benchmark.

Each function does one stage the way the thesis's code did it, so that
``benchmarks/bench.py`` can time it against equivtest in the same run:

* **capture**: one forward pass per sample and per neighbourhood point, through a
  forward hook that stores the layer's output into a list; the hook is removed at
  the end. (Eval mode and ``torch.no_grad()`` are used, which only helps the
  reference.)
* **covariances**: ``np.cov`` and ``np.linalg.pinv`` per sample, in a Python loop.
  ``pinv`` gets the same relative cut-off as equivtest (``rcond=1e-6``), so both
  pipelines compute the same precisions; the cost of ``pinv`` does not depend on it.
* **kernel**: datafold 2.0.2's experimental
  ``datafold.pcfold.kernels.MahalanobisKernel``. It takes the *pseudo-inverses* in
  the kwarg ``cov_matrices``, computes ``exp(-d2 / (2 eps))`` and loops over all
  pairs in Python. Its matrix is sparse and has no diagonal (datafold drops the
  zero self-distances).
* **diffusion maps**: datafold's ``DiffusionMaps`` (default settings, as equivtest)
  on that kernel matrix, wrapped as a precomputed kernel the way
  ``equivtest/geometry/dmaps.py`` wraps its own.
* **interpolation**: dense ``scipy.interpolate.RBFInterpolator`` (thin plate spline)
  on the raw activations: activations -> diffusion coordinates for each network, an
  orthogonal Procrustes map between the coordinates (scalar ratio on the constant
  eigenvector), and aligned coordinates -> the other network's activations, in both
  directions. The constant eigenvector is left out of the back map's input (it
  carries no information and makes the polynomial part singular).

Nothing here imports equivtest: the reference stands on numpy, scipy, torch and
datafold alone.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse
import torch
from scipy.interpolate import RBFInterpolator
from scipy.linalg import orthogonal_procrustes

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from datafold.dynfold import DiffusionMaps
    from datafold.pcfold.kernels import MahalanobisKernel, PCManifoldKernel

RCOND = 1e-6  # the same relative cut-off as equivtest.geometry.DEFAULT_RCOND


# --------------------------------------------------------------------------- capture


def capture_reference(model: torch.nn.Module, layer: str, samples, neighbourhoods, n_samples: int | None = None):
    """Activations of ``layer`` for the first ``n_samples`` samples and their neighbourhoods.

    One forward pass per point: the sample, then each of its M neighbours. Returns
    ``(sample_activations (n, F), neighbourhood_activations (n, M, F))``.
    """
    samples = np.asarray(samples)
    neighbourhoods = np.asarray(neighbourhoods)
    n = len(samples) if n_samples is None else min(int(n_samples), len(samples))
    m = neighbourhoods.shape[1]
    dtype = next(model.parameters()).dtype
    module = model.get_submodule(layer)
    recorded: list[np.ndarray] = []

    def hook(_module, _inputs, output):
        recorded.append(output.detach().cpu().numpy().reshape(-1).copy())

    training = model.training
    model.eval()
    handle = module.register_forward_hook(hook)
    try:
        with torch.no_grad():
            for i in range(n):
                model(torch.tensor(samples[i : i + 1], dtype=dtype))
                for j in range(m):
                    model(torch.tensor(neighbourhoods[i, j : j + 1], dtype=dtype))
    finally:
        handle.remove()
        model.train(training)
    acts = np.asarray(recorded, dtype=np.float64).reshape(n, m + 1, -1)
    return acts[:, 0], acts[:, 1:]


# --------------------------------------------------------------------------- covariances


def covariances_reference(neighbourhood_activations) -> np.ndarray:
    """``np.cov`` of each neighbourhood, one sample at a time: ``(N, F, F)``."""
    covs = []
    for nb in neighbourhood_activations:
        covs.append(np.atleast_2d(np.cov(nb, rowvar=False)))
    return np.asarray(covs)


def pseudo_inverses_reference(covariances, rcond: float = RCOND) -> np.ndarray:
    """``np.linalg.pinv`` of each covariance, one sample at a time."""
    out = []
    for cov in covariances:
        out.append(np.linalg.pinv(cov, rcond=rcond))
    return np.asarray(out)


# --------------------------------------------------------------------------- kernel


def kernel_reference(x, precisions, epsilon: float) -> scipy.sparse.csr_matrix:
    """datafold's experimental Mahalanobis kernel ``exp(-d2 / (2 epsilon))``.

    ``precisions`` are the pseudo-inverses of the neighbourhood covariances (datafold
    calls the kwarg ``cov_matrices`` but uses it as the metric). The result is sparse,
    with every off-diagonal entry stored and no diagonal.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "marked as experimental"
        kernel = MahalanobisKernel(epsilon=float(epsilon))
        return kernel(np.asarray(x, dtype=np.float64), cov_matrices=np.asarray(precisions))


# --------------------------------------------------------------------------- diffusion maps


class PrecomputedKernel(PCManifoldKernel):
    """A datafold kernel that returns a matrix computed beforehand (as equivtest's wrapper does)."""

    def __init__(self, matrix):
        self.matrix = matrix
        super().__init__(is_symmetric=True)

    def __call__(self, X, Y=None, **kernel_kwargs):
        if Y is not None:
            raise NotImplementedError("a precomputed kernel has no out-of-sample form")
        return self.matrix

    def evaluate(self, distance_matrix):
        return distance_matrix


def dmaps_reference(x, kernel_matrix, n_eigenpairs: int):
    """datafold ``DiffusionMaps`` on a precomputed kernel matrix; ``(eigenvalues, eigenvectors)``."""
    dmap = DiffusionMaps(kernel=PrecomputedKernel(kernel_matrix), n_eigenpairs=int(n_eigenpairs))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dmap.fit(np.asarray(x, dtype=np.float64))
    values = np.real(np.asarray(dmap.eigenvalues_))
    vectors = np.real(np.asarray(dmap.eigenvectors_))
    order = np.argsort(-np.abs(values))
    return values[order], vectors[:, order]


# --------------------------------------------------------------------------- interpolation


def _alignment(source, target):
    """``source @ O ~ target``: scalar ratio on column 0, orthogonal Procrustes on the rest."""
    k = source.shape[1]
    align = np.zeros((k, k))
    align[0, 0] = np.mean(target[:, 0]) / np.mean(source[:, 0])
    rotation, _ = orthogonal_procrustes(source[:, 1:], target[:, 1:])
    align[1:, 1:] = rotation
    return align


def interpolation_reference(acts_a, coords_a, acts_b, coords_b, kernel: str = "thin_plate_spline") -> dict:
    """Dense thin-plate-spline RBFs on raw activations, both directions (steps 6-8)."""
    embed_a = RBFInterpolator(acts_a, coords_a, kernel=kernel)
    embed_b = RBFInterpolator(acts_b, coords_b, kernel=kernel)
    align_ab = _alignment(coords_a, coords_b)
    align_ba = _alignment(coords_b, coords_a)
    to_b = RBFInterpolator((coords_a @ align_ab)[:, 1:], acts_b, kernel=kernel)
    to_a = RBFInterpolator((coords_b @ align_ba)[:, 1:], acts_a, kernel=kernel)
    return {"embed_a": embed_a, "embed_b": embed_b, "align_ab": align_ab, "align_ba": align_ba,
            "to_b": to_b, "to_a": to_a}
