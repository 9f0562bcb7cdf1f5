"""The few array operations the rigid and affine maps need, on numpy or on a torch device.

Each map writes its formula once against an ops object: :data:`NUMPY` (``device=None``)
runs exactly the numpy calls the maps made before they took a device, so the CPU's figures
are unchanged bit for bit; :class:`TorchOps` runs the same formula in torch float64 on a
device ("cpu", "cuda", "cuda:1", ...). Arrays go in with :meth:`asarray` and come back with
:meth:`numpy`; Python scalars come out of either with ``float()``.
"""

from __future__ import annotations

import numpy as np

from ..errors import FitConfigError


class NumpyOps:
    """numpy, as the maps computed before they took a device."""

    device = None

    def asarray(self, a):
        return a

    def numpy(self, a) -> np.ndarray:
        return a

    def rows(self, a, index: np.ndarray):
        return a[index]

    def mean(self, a, axis=None):
        return np.mean(a, axis=axis)

    def sum(self, a, axis=None):
        return np.sum(a, axis=axis)

    def sqrt(self, a):
        return np.sqrt(a)

    def outer(self, a, b):
        return np.outer(a, b)

    def svd(self, a):
        return np.linalg.svd(a)

    def eigh(self, a):
        return np.linalg.eigh(a)

    def clip_min(self, a, low: float):
        return np.clip(a, low, None)

    def finite_quotient(self, num, den):
        """``num / den``, 0 where that is not finite (a constant column's correlations)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            q = num / den
        return np.where(np.isfinite(q), q, 0.0)

    def quotient_where_positive(self, num, den):
        """``num / den`` where ``den > 0``, else 0 (a constant neuron's scale)."""
        return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


NUMPY = NumpyOps()


class TorchOps:
    """The same operations in torch float64 on ``device`` (a checked ``torch.device``)."""

    def __init__(self, device):
        self.device = device

    def asarray(self, a):
        import torch

        from ..geometry._tensors import as_tensor

        return as_tensor(np.asarray(a, dtype=np.float64), self.device).to(torch.float64)

    def numpy(self, a) -> np.ndarray:
        return a.detach().cpu().numpy()

    def rows(self, a, index: np.ndarray):
        import torch

        return a[torch.as_tensor(index, device=self.device)]

    def mean(self, a, axis=None):
        return a.mean() if axis is None else a.mean(dim=axis)

    def sum(self, a, axis=None):
        return a.sum() if axis is None else a.sum(dim=axis)

    def sqrt(self, a):
        return a.sqrt()

    def outer(self, a, b):
        import torch

        return torch.outer(a, b)

    def svd(self, a):
        import torch

        return torch.linalg.svd(a)

    def eigh(self, a):
        import torch

        return torch.linalg.eigh(a)

    def clip_min(self, a, low: float):
        return a.clamp(min=low)

    def finite_quotient(self, num, den):
        import torch

        q = num / den
        return torch.where(torch.isfinite(q), q, torch.zeros_like(q))

    def quotient_where_positive(self, num, den):
        import torch

        positive = den > 0
        return torch.where(positive, num / torch.where(positive, den, torch.ones_like(den)), torch.zeros_like(num))


FIX = "pass device=None for the CPU's numpy path or device='cpu'"


def ops_for(device, fix: str = FIX) -> NumpyOps | TorchOps:
    """:data:`NUMPY` for ``device=None``, else :class:`TorchOps` on that device, checked to be usable here."""
    if device is None:
        return NUMPY
    return TorchOps(check_device(device, fix))


def check_device(device, fix: str = FIX):
    """``device`` as a ``torch.device`` that torch can use here, or a :class:`FitConfigError` ending in ``fix``
    (``None``, numpy's path, passes as ``None``)."""
    if device is None:
        return None
    if not isinstance(device, str) or not device:
        raise FitConfigError(f"device must be None (numpy) or a torch device name such as 'cpu' or 'cuda', "
                             f"got {device!r}")
    import torch

    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise FitConfigError(f"device {device!r} is not a torch device name ({exc}); {fix}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise FitConfigError(f"device {device!r} is not available here (torch.cuda.is_available() is False); "
                                 f"{fix}") from None
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise FitConfigError(f"device {device!r} is not available here (torch sees "
                                 f"{torch.cuda.device_count()} CUDA device(s)); {fix}") from None
    try:
        torch.zeros(1, dtype=torch.float64, device=dev)
    except (RuntimeError, AssertionError, TypeError) as exc:
        raise FitConfigError(f"device {device!r} cannot hold float64 tensors here ({exc}); {fix}") from None
    return dev
