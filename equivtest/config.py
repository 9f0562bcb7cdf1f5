"""The hyper-parameters of a fit (:class:`FitConfig`), checked when the config is made.

Every option is validated in ``FitConfig.__post_init__``, so a typo fails at once with
the option's name and what it accepts, not after the capture and the diffusion maps;
counts must be integers (3.7 eigenvectors is an error, not 3).
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from numbers import Real

from ._memory import check_budget_value, parse_bytes
from ._validation import as_whole_number
from .errors import FitConfigError
from .geometry import DEFAULT_RCOND
from .transform import Transformation

# scipy's RBFInterpolator kernels that need no shape parameter (its other kernels need an
# `epsilon` of their own, which equivtest does not pass)
RBF_KERNELS = ("thin_plate_spline", "cubic", "quintic", "linear")


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
    # Bytes the fit's rows may hold in memory (an int, or "4GiB", "500MB"; None: no limit).
    # Rows beyond it (neighbourhood rows, precision factors) go to files on disk, in a
    # temporary folder under scratch_dir (None: the system's temporary folder).
    memory_budget: int | str | None = None
    scratch_dir: str | None = None

    def __post_init__(self):
        def whole(name: str, minimum: int, optional: bool = False) -> None:
            value = getattr(self, name)
            if not (optional and value is None):
                as_whole_number(value, name, minimum=minimum, error=FitConfigError)

        def real(name: str, low: float = 0.0, below: float = math.inf) -> None:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, Real) or not low <= value < below:
                interval = f"in [{low:g}, {below:g})" if math.isfinite(below) else f"at least {low:g} and finite"
                raise FitConfigError(f"{name} must be a number {interval}, got {value!r}")

        whole("n_eigenvectors", 2)  # the constant eigenvector and at least one more
        if not (self.epsilon == "median" if isinstance(self.epsilon, str) else
                isinstance(self.epsilon, Real) and not isinstance(self.epsilon, bool) and 0 < self.epsilon < math.inf):
            raise FitConfigError(
                f"epsilon must be \"median\" or a positive finite kernel bandwidth, got {self.epsilon!r}"
            )
        whole("epsilon_k", 1)
        real("rcond", below=1.0)
        real("covariance_ridge")
        whole("k_neighbours", 1, optional=True)
        real("smoothing")
        if self.rbf_kernel not in RBF_KERNELS:
            raise FitConfigError(
                f"rbf_kernel must be one of {', '.join(RBF_KERNELS)}, got {self.rbf_kernel!r} (scipy's other "
                "kernels need a shape parameter that equivtest does not pass)"
            )
        whole("rbf_neighbors", 1, optional=True)
        if not (self.kernel_device is None or isinstance(self.kernel_device, str) and self.kernel_device):
            raise FitConfigError(f"kernel_device must be None (the CPU) or a torch device name such as \"cuda\", "
                                 f"got {self.kernel_device!r}")
        whole("batch_size", 1)
        whole("max_rows", 2, optional=True)
        check_budget_value(self.memory_budget)
        if not (self.scratch_dir is None or isinstance(self.scratch_dir, (str, os.PathLike)) and str(self.scratch_dir)):
            raise FitConfigError(f"scratch_dir must be None (the system's temporary folder) or a folder path, "
                                 f"got {self.scratch_dir!r}")

    @property
    def budget_bytes(self) -> int | None:
        """``memory_budget`` in bytes (``None``: no limit)."""
        return None if self.memory_budget is None else parse_bytes(self.memory_budget)

    def row_store(self):
        """A :class:`equivtest._memory.RowStore` for this config's budget and scratch folder."""
        from ._memory import RowStore

        return RowStore(self.budget_bytes, None if self.scratch_dir is None else os.fspath(self.scratch_dir))

    def transformation(self, names: tuple[str, str]) -> Transformation:
        params = asdict(self)
        for name in ("batch_size", "max_rows", "memory_budget", "scratch_dir"):  # the engine's, not the estimator's
            params.pop(name)
        return Transformation(**params, names=names)
