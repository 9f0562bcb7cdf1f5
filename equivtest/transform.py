"""The transformation between two activation spaces (steps 6-8), as an estimator.

For each network X in {A, B}: sample activations -> Mahalanobis diffusion map ->
coordinates psi_X, and an RBF interpolant ``embed_X: activations -> psi_X``. An
orthogonal Procrustes map aligns psi_A with psi_B, leaving out the constant first
eigenvector (its map is the scalar ratio of the two constants). A second RBF maps the
*aligned coordinates of sample i* to the *other* network's activation of sample i.
``predict(x, to="b")`` chains ``embed_A``, the alignment and that second RBF.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import orthogonal_procrustes

from ._validation import as_finite_float64, rows_fix
from .errors import ActivationError, FitConfigError, NotFittedError
from .geometry import DEFAULT_RCOND, diffusion_coordinates, neighbour_overlap
from .geometry.covariance import neighbourhood_precision_factors
from .interpolation import PrincipalRBF

SIDES = ("a", "b")
COMPONENT_TOL = 1e-6  # an eigenvalue this close to 1 marks one more piece of the kernel graph


def procrustes_alignment(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``(k, k)`` map with ``source @ O ~ target``: scalar ratio on column 0, orthogonal on the rest."""
    align = np.zeros((source.shape[1], source.shape[1]))
    align[0, 0] = float(np.mean(target[:, 0]) / np.mean(source[:, 0]))
    rotation, _ = orthogonal_procrustes(source[:, 1:], target[:, 1:])
    align[1:, 1:] = rotation
    return align


class _Checked:
    """Slices of neighbourhood activations, each checked for NaN/inf as it is read."""

    def __init__(self, neighbourhoods, label: str):
        self.neighbourhoods, self.label = neighbourhoods, label

    def __len__(self) -> int:
        return len(self.neighbourhoods)

    @property
    def shape(self):
        return getattr(self.neighbourhoods, "shape", None)

    def __getitem__(self, rows: slice) -> np.ndarray:
        return as_finite_float64(self.neighbourhoods[rows], f"neighbourhood activations of network {self.label}", ndim=3)


@dataclass(frozen=True)
class SideFit:
    """What one network contributes to a fit."""

    activations: np.ndarray  # (N, F) sample activations
    coordinates: np.ndarray  # (N, k) diffusion coordinates
    eigenvalues: np.ndarray  # (k,)
    epsilon: float


class Transformation:
    """Maps activations of network A to those of network B and back.

    Parameters
    ----------
    n_eigenvectors
        Diffusion-map eigenvectors, the constant one included (the thesis uses 3 for 1d).
    epsilon
        Kernel bandwidth of ``exp(-d2 / epsilon)``: a number, or ``"median"`` for the
        median squared distance to the ``epsilon_k``-th nearest sample.
    rcond
        Relative cut-off of the neighbourhood covariances' eigenvalues before inversion.
    covariance_ridge
        Added to the kept eigenvalues of every neighbourhood covariance before inversion,
        as a multiple of the median per-feature neighbourhood variance (0: none, the
        thesis). Where a layer saturates for some samples, their covariances are tiny, the
        plain inverse makes their distance to every other sample huge, and the kernel
        graph falls apart into pieces (eigenvalue 1 repeated); a ridge of about 1 bounds
        those distances. See ``kernel_components``.
    k_neighbours
        If given, a sparse kernel over this many nearest neighbours instead of a dense one.
    kernel_device
        A torch device (``"cuda"``) on which to compute the neighbourhood SVDs and the dense
        kernel; ``None``: the CPU.
    smoothing, rbf_kernel, rbf_neighbors
        Passed to ``scipy.interpolate.RBFInterpolator`` (``neighbors``) for both
        interpolation steps; ``rbf_neighbors`` makes the interpolants local, for large N.
    names
        Labels of the two networks; ``predict(..., to=...)`` accepts them as well as "a"/"b".
    """

    def __init__(
        self,
        n_eigenvectors: int = 3,
        *,
        epsilon: float | str = "median",
        epsilon_k: int = 10,
        rcond: float = DEFAULT_RCOND,
        covariance_ridge: float = 0.0,
        k_neighbours: int | None = None,
        smoothing: float = 0.0,
        rbf_kernel: str = "thin_plate_spline",
        rbf_neighbors: int | None = None,
        kernel_device: str | None = None,
        names: tuple[str, str] = ("a", "b"),
    ):
        self.n_eigenvectors = n_eigenvectors
        self.epsilon = epsilon
        self.epsilon_k = epsilon_k
        self.rcond = rcond
        self.covariance_ridge = covariance_ridge
        self.k_neighbours = k_neighbours
        self.smoothing = smoothing
        self.rbf_kernel = rbf_kernel
        self.rbf_neighbors = rbf_neighbors
        self.kernel_device = kernel_device
        self.names = names

    # -- parameters -------------------------------------------------------------------
    def get_params(self) -> dict:
        return {
            "n_eigenvectors": self.n_eigenvectors,
            "epsilon": self.epsilon,
            "epsilon_k": self.epsilon_k,
            "rcond": self.rcond,
            "covariance_ridge": self.covariance_ridge,
            "k_neighbours": self.k_neighbours,
            "smoothing": self.smoothing,
            "rbf_kernel": self.rbf_kernel,
            "rbf_neighbors": self.rbf_neighbors,
            "kernel_device": self.kernel_device,
            "names": tuple(self.names),
        }

    # -- fitting ----------------------------------------------------------------------
    def fit(self, samples_a, neighbourhoods_a, samples_b, neighbourhoods_b, *, stage=None,
            allocate_factors=None) -> "Transformation":
        """Fit both directions from sample activations ``(N, F)`` and neighbourhood activations ``(N, M, F)``.

        ``stage``, if given, is called with a short message as each step starts (progress).
        The neighbourhood activations may be any array-like that slices along its first
        axis (a memmap, :class:`equivtest._memory.DiskRows`); they are read, and converted
        to float64, a block of rows at a time. ``allocate_factors(n_values)``, if given,
        makes the flat float64 buffer of each network's precision factors (e.g. on disk).
        """
        sa = as_finite_float64(samples_a, "sample activations of network A", ndim=2)
        sb = as_finite_float64(samples_b, "sample activations of network B", ndim=2)
        if sa.shape[0] != sb.shape[0]:
            raise ActivationError(
                f"network A has {sa.shape[0]} sample activations and network B has {sb.shape[0]}; "
                "the transformation pairs sample i of A with sample i of B, so capture both from "
                "the same samples (mapped by the domain map); for sliced sequence layers both must "
                "give the same number of slices per input (sequence length / slice_length)"
            )
        sides = []
        for label, s, nb in (("A", sa, neighbourhoods_a), ("B", sb, neighbourhoods_b)):
            shape = tuple(getattr(nb, "shape", np.shape(nb)))
            if len(shape) != 3:
                raise ActivationError(
                    f"neighbourhood activations of network {label} must have 3 dimensions, got shape {shape}; "
                    "expected (N samples, M neighbours, F features)"
                )
            if shape[0] != s.shape[0] or shape[2] != s.shape[1]:
                raise ActivationError(
                    f"network {label}: neighbourhood activations of shape {shape} do not match "
                    f"sample activations of shape {s.shape}; expected ({s.shape[0]}, M, {s.shape[1]})"
                )
            sides.append(self._fit_side(s, nb, label, stage, allocate_factors))
        if stage:
            stage("alignment and interpolants")
        self._set_fitted(*(side for side, _ in sides))
        # Not saved with the transformation: a loaded one has None (no precision factors to redo it).
        (_, near_a), (_, near_b) = sides
        if near_a is not None and near_b is not None:
            # nearest first, so both lists cut to the shorter one still hold each sample's k nearest
            k = min(near_a.shape[1], near_b.shape[1])
            self.neighbour_overlap_, self.overlap_neighbours_ = neighbour_overlap(near_a[:, :k], near_b[:, :k]), k
        return self

    def _fit_side(self, samples: np.ndarray, neighbourhoods, label: str, stage=None,
                  allocate_factors=None) -> tuple[SideFit, np.ndarray]:
        if stage:
            stage(f"network {label}: neighbourhood covariances")
        # chunked, so (N, M, F) neighbourhoods may be a memmap or a lazy capture
        factors = neighbourhood_precision_factors(
            _Checked(neighbourhoods, label), self.rcond, ridge=self.covariance_ridge, device=self.kernel_device,
            allocate=allocate_factors,
        )
        if stage:
            stage(f"network {label}: Mahalanobis kernel and diffusion maps ({len(samples)} samples)")
        dc = diffusion_coordinates(
            samples, factors, self.n_eigenvectors,
            epsilon=self.epsilon, epsilon_k=self.epsilon_k, k_neighbours=self.k_neighbours,
            device=self.kernel_device,
        )
        return SideFit(samples, dc.coordinates, dc.eigenvalues, dc.epsilon), dc.nearest

    def _set_fitted(self, side_a: SideFit, side_b: SideFit) -> None:
        """Set every fitted attribute from the two sides (used by ``fit`` and ``load``)."""
        self.neighbour_overlap_ = self.overlap_neighbours_ = None  # known only right after fit (see there)
        self.side_a_, self.side_b_ = side_a, side_b
        self.alignment_ab_ = procrustes_alignment(side_a.coordinates, side_b.coordinates)
        self.alignment_ba_ = procrustes_alignment(side_b.coordinates, side_a.coordinates)
        self.embed_a_ = self._rbf(side_a.activations, side_a.coordinates)
        self.embed_b_ = self._rbf(side_b.activations, side_b.coordinates)
        # The back map is fitted on pairs: aligned coordinates of sample i -> the
        # OTHER network's activation of sample i (not the target's own coordinates).
        # The coordinates are those the embedding interpolant itself returns for the
        # samples: an interpolant with no smoothing is still not exact to machine
        # precision on ill-conditioned data, and fitting the back map on its actual
        # output keeps the chain consistent (measured on the 1d suite: output MSE
        # 6e-7 with the raw eigenvectors, 2e-9 with the interpolant's values).
        # A local interpolant solves small, well-conditioned systems: at the samples it
        # returns the coordinates themselves, and evaluating it there would cost one
        # local solve per sample, so the coordinates are used directly.
        embedded_a = side_a.coordinates if self.rbf_neighbors else self.embed_a_(side_a.activations)
        embedded_b = side_b.coordinates if self.rbf_neighbors else self.embed_b_(side_b.activations)
        self.to_b_ = self._rbf(embedded_a @ self.alignment_ab_, side_b.activations)
        self.to_a_ = self._rbf(embedded_b @ self.alignment_ba_, side_a.activations)

    def _rbf(self, x: np.ndarray, y: np.ndarray) -> "PrincipalRBF":
        try:
            return PrincipalRBF(x, y, kernel=self.rbf_kernel, smoothing=self.smoothing, neighbors=self.rbf_neighbors)
        except (np.linalg.LinAlgError, ValueError) as exc:
            repeats = len(x) - len(np.unique(x, axis=0))
            if repeats:
                raise FitConfigError(
                    f"RBF interpolation failed: {repeats} sample(s) have exactly the same input "
                    "coordinates as another sample. Where these are activations, the layer maps "
                    "different samples to one point (it is not injective there), so no map in this "
                    "direction exists; set smoothing > 0 only if you expect such ties"
                ) from exc
            raise FitConfigError(
                f"RBF interpolation failed ({exc}); the samples may be too few or degenerate "
                "for the polynomial part. Raise `smoothing` (e.g. 1e-10) or use more samples"
            ) from exc

    # -- using the fit ----------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "alignment_ab_"):
            raise NotFittedError("this Transformation is not fitted yet; call fit(...) or Transformation.load(path)")

    def side(self, network: str) -> str:
        """Normalise a network label ("a", "b", or one of ``names``) to "a" or "b"."""
        if isinstance(network, str):
            key = network.lower()
            if key in SIDES:
                return key
            for side, name in zip(SIDES, self.names):
                if network == name:
                    return side
        raise ValueError(
            f"unknown network {network!r}; name the target network as 'a', 'b'"
            + (f" or one of {list(self.names)}" if tuple(self.names) != SIDES else "")
        )

    def embed(self, activations, network: str = "a") -> np.ndarray:
        """Diffusion coordinates of new activations of ``network``."""
        self._check_fitted()
        side = self.side(network)
        fit = self.side_a_ if side == "a" else self.side_b_
        x = self._check_input(activations, fit, side)
        return (self.embed_a_ if side == "a" else self.embed_b_)(x)

    def aligned(self, activations, to: str) -> np.ndarray:
        """Coordinates of the *source* network's activations, aligned into ``to``'s diffusion space."""
        self._check_fitted()
        target = self.side(to)
        source = "a" if target == "b" else "b"
        align = self.alignment_ab_ if target == "b" else self.alignment_ba_
        return self.embed(activations, source) @ align

    def predict(self, activations, to: str) -> np.ndarray:
        """Activations of network ``to`` predicted from the other network's activations.

        ``to`` names the *target* network ("b" maps A's activations into B's space).
        """
        self._check_fitted()
        target = self.side(to)
        back = self.to_b_ if target == "b" else self.to_a_
        return back(self.aligned(activations, target))

    def _check_input(self, activations, fit: SideFit, side: str) -> np.ndarray:
        x = as_finite_float64(activations, f"activations of network {side.upper()}", ndim=2, fix=rows_fix)
        if x.shape[1] != fit.activations.shape[1]:
            raise ActivationError(
                f"activations of network {side.upper()} have {x.shape[1]} features, but the "
                f"transformation was fitted on {fit.activations.shape[1]}; capture the same layer "
                "and neurons as at fit time"
            )
        return x

    def repaired(self, permutation) -> "Transformation":
        """A copy fitted with B's samples re-paired: sample i of A with sample ``permutation[i]`` of B.

        Each network's diffusion coordinates do not depend on the pairing, so only the
        alignment and the interpolants are refitted. With a random permutation this is
        the null model of null calibration: what the criteria look like by chance.
        """
        self._check_fitted()
        perm = np.asarray(permutation)
        b = self.side_b_
        if sorted(perm.tolist()) != list(range(len(b.activations))):
            raise ValueError(f"permutation must reorder all {len(b.activations)} samples")
        twin = Transformation(**{**self.get_params(), "names": tuple(self.names)})
        twin._set_fitted(self.side_a_, SideFit(b.activations[perm], b.coordinates[perm], b.eigenvalues, b.epsilon))
        return twin

    # -- diagnostics ------------------------------------------------------------------
    def overlap_criterion(self) -> list:
        """``neighbour_overlap`` as a criterion (empty for a loaded transformation)."""
        from .criteria import criterion

        if self.neighbour_overlap_ is None:
            return []
        n, k = len(self.side_a_.activations), self.overlap_neighbours_
        return [criterion("neighbour_overlap", "a<->b", self.neighbour_overlap_,
                          f"{k} nearest samples by Mahalanobis distance; unrelated geometries give about {k / (n - 1):.3g}")]

    def geometry_criteria(self) -> list:
        """What the fit says about the two kernel graphs: ``neighbour_overlap`` and ``kernel_components``."""
        return self.overlap_criterion() + self.component_criteria()

    def component_criteria(self) -> list:
        """``kernel_components`` per network: how many eigenvalues equal 1 (to 1e-6).

        A connected kernel graph has one (the constant eigenvector); more mean the graph
        falls into pieces and the eigenvectors beyond the first only say which piece a
        sample is in (up to ``n_eigenvectors``, so this is a lower bound). Raise epsilon
        (``epsilon_k``) or ``covariance_ridge`` until it is 1.
        """
        from .criteria import criterion

        self._check_fitted()
        found = []
        for side, fit in (("a", self.side_a_), ("b", self.side_b_)):
            count = int(np.sum(np.abs(fit.eigenvalues) > 1.0 - COMPONENT_TOL))
            note = "connected" if count == 1 else f"at least {count} pieces: the eigenvectors mark pieces, not directions"
            found.append(criterion("kernel_components", side, float(count), f"of {len(fit.eigenvalues)} eigenvalues; {note}"))
        return found

    def diffusion_residual(self) -> dict[str, float]:
        """Mean squared difference between aligned and true diffusion coordinates, per direction."""
        self._check_fitted()
        a, b = self.side_a_.coordinates, self.side_b_.coordinates
        return {
            "a->b": float(np.mean((a @ self.alignment_ab_ - b) ** 2)),
            "b->a": float(np.mean((b @ self.alignment_ba_ - a) ** 2)),
        }

    # -- persistence (see equivtest.persist) -----------------------------------------
    def save(self, path) -> None:
        from .persist import save_transformation

        self._check_fitted()
        save_transformation(self, path)

    @classmethod
    def load(cls, path) -> "Transformation":
        from .persist import load_transformation

        return load_transformation(path)

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"Transformation({params})"
