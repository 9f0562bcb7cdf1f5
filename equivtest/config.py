"""The hyper-parameters of a fit (:class:`FitConfig`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .errors import FitConfigError
from .geometry import DEFAULT_RCOND
from .transform import Transformation


@dataclass(frozen=True)
class FitConfig:
    """Hyper-parameters of the transformation (see :class:`Transformation`)."""

    n_eigenvectors: int = 3
    epsilon: float | str = "median"
    epsilon_k: int = 10
    rcond: float = DEFAULT_RCOND
    covariance_ridge: float = 0.0
    k_neighbours: int | None = None
    smoothing: float = 0.0
    rbf_kernel: str = "thin_plate_spline"
    rbf_neighbors: int | None = None
    kernel_device: str | None = None
    batch_size: int = 8192
    # Fit on at most this many rows, drawn at random (seeded by the sampler). A sliced
    # sequence layer gives samples x slices rows; drawing rows from many samples covers
    # the inputs better than every slice of a few samples at the same kernel cost.
    max_rows: int | None = None

    def __post_init__(self):
        if self.max_rows is not None and int(self.max_rows) < 2:
            raise FitConfigError(f"max_rows must be at least 2, got {self.max_rows}")

    def transformation(self, names: tuple[str, str]) -> Transformation:
        params = asdict(self)
        params.pop("batch_size")
        params.pop("max_rows")
        return Transformation(**params, names=names)
