r"""Weight-space distances between two flattened weight vectors.

The catalogue of the TransformerAE report (section 4.5), one function per measure.
Every function takes two vectors (NumPy arrays, torch tensors, lists, or torch modules,
which are flattened with :func:`~equivtest.weights.flatten_parameters`) and returns a
float; lower means closer. Bad input (different lengths where the measure is
element-wise, empty, NaN or inf) raises :class:`~equivtest.weights.WeightSpaceError`.

Two kinds of measure, and when each is meaningful:

- **element-wise** (quantile loss, MAPE, layer-wise MSE, FFT L1): compare weight i of A
  with weight i of B. Meaningful only when the coordinates correspond: the same
  architecture *and* the same neuron order, e.g. networks trained from one shared
  initialisation (the report's zoo) or a prediction of a known target. Two
  independently initialised networks that compute the same function can be far apart
  here, because hidden neurons can be permuted freely.
- **distributional** (norm difference, Jensen-Shannon, Wasserstein-2, Sinkhorn,
  Gromov-Wasserstein, bottleneck): compare the *multiset* (or, for the bottleneck
  distance, the ordered profile) of weight values; invariant to permuting the vector
  (bottleneck: not), and defined for vectors of different length. They say whether
  two weight distributions look alike, not whether the networks compute alike.

Gromov-Wasserstein and the bottleneck distance are computed with POT and GUDHI; both
are imported when first used and come with the extra ``pip install 'equivtest[weights]'``.
"""

from __future__ import annotations

import importlib
import warnings

import numpy as np

from ._check import as_vector, paired, positive
from .errors import WeightSpaceError


def _optional(module: str, distribution: str):
    """Import an optional dependency of the weight-space distances, or say how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"this weight-space distance needs {distribution} (module {module!r}), which is not installed; "
            "install the extra: pip install 'equivtest[weights]'"
        ) from exc


# ---------------------------------------------------------------------------- element-wise


def quantile_loss(a, b, q: float = 0.5) -> float:
    r"""Q-quantile (pinball) loss of the differences ``u = a - b`` (report 4.5.1).

    ``L_Q = 1/N sum_i rho_Q(u_i)``, ``rho_Q(u) = u (Q - 1[u < 0]) = max(Q u, (Q - 1) u)``.

    ``Q`` in (0, 1). ``Q = 0.5`` is half the mean absolute difference; ``Q`` near 1
    weighs the entries where A exceeds B (``Q`` near 0: where A falls short). Not
    symmetric: ``L_Q(a, b) = L_{1-Q}(b, a)``. Zero exactly when ``a == b``.
    Element-wise: meaningful for aligned weights of one architecture.
    """
    q = float(q)
    if not 0.0 < q < 1.0:
        raise WeightSpaceError(f"quantile q must lie strictly between 0 and 1, got {q!r}")
    x, y = paired(a, b, "quantile_loss")
    u = x - y
    return float(np.mean(np.maximum(q * u, (q - 1.0) * u)))


def norm_difference(a, b, ord: float = 2) -> float:
    r"""Difference of the vectors' norms (report 4.5.6): ``| ||a||_p - ||b||_p |``.

    ``ord`` is ``p`` (2, the report's formula, by default; 1 as in its text; ``np.inf``).
    Ignores direction entirely: any permutation or sign flips of either vector leave it
    unchanged, and it is at most ``||a - b||_p`` (reverse triangle inequality). Useful
    for norm drift (weight decay, initialisation scale), meaningless as evidence that
    two networks agree. Vectors may differ in length.
    """
    x, y = paired(a, b, "norm_difference", same_length=False)
    if not (ord == np.inf or (isinstance(ord, (int, float)) and ord >= 1)):
        raise WeightSpaceError(f"ord must be a number >= 1 or numpy.inf (a norm), got {ord!r}")
    return float(abs(np.linalg.norm(x, ord) - np.linalg.norm(y, ord)))


def mape(a, b, epsilon: float = 1e-3) -> float:
    r"""Mean absolute percentage error of ``a`` against the reference ``b`` (report 4.5.8).

    ``MAPE = 100 / N sum_i |a_i - b_i| / (|b_i| + epsilon)``, in percent.

    Not symmetric: ``b`` is the reference (the jointly trained network, the target).
    Weights cluster around zero, so the ratio is dominated by B's near-zero entries;
    ``epsilon`` caps that. The default 1e-3 is small against the typical magnitude of a
    trained small network's weights (0.01 to 1) yet keeps an exact zero in B from
    weighing more than 1000 times its absolute error. State the epsilon with any figure.
    """
    eps = positive(epsilon, "epsilon")
    x, y = paired(a, b, "mape")
    return float(100.0 * np.mean(np.abs(x - y) / (np.abs(y) + eps)))


def layerwise_mse(a, b, index=None, scales=None) -> float:
    r"""Layer-wise normalised MSE (report 4.5.9).

    ``L = sum_l 1/|Theta_l| ||(a_l - b_l) / s_l||^2``: the squared error of each layer's
    segment divided by its number of parameters, summed over layers, so a large dense
    layer cannot drown a small convolution. ``s_l`` (``scales``, one positive number per
    layer, default 1) optionally standardises each layer, e.g. by the spread of that
    layer's weights across a model zoo (the hyper-representation paper's normalisation,
    which the report continues).

    ``index`` says where the layers are: a :class:`~equivtest.weights.FlatIndex` (layers
    are modules: weight and bias together), a list of segment sizes, or ``None`` (when
    ``a`` is a torch module its own index; otherwise one segment: the plain MSE).
    Element-wise: meaningful for aligned weights of one architecture.
    """
    if index is None and hasattr(a, "named_parameters"):
        from .flat import flat_index

        index = flat_index(a)
    x, y = paired(a, b, "layerwise_mse")
    bounds = segment_bounds(index, x.size)
    if scales is None:
        s = np.ones(len(bounds))
    else:
        s = np.asarray(scales, dtype=np.float64).reshape(-1)
        if s.size != len(bounds) or not np.all(np.isfinite(s)) or np.any(s <= 0):
            raise WeightSpaceError(
                f"scales must be {len(bounds)} positive finite numbers (one per layer), got {np.asarray(scales)!r}"
            )
    return float(sum(np.mean(((x[lo:hi] - y[lo:hi]) / sc) ** 2) for (lo, hi), sc in zip(bounds, s)))


def segment_bounds(index, size: int) -> list[tuple[int, int]]:
    """``[(start, stop)]`` per layer from a FlatIndex, a list of sizes, or None (one segment)."""
    if index is None:
        return [(0, size)]
    if hasattr(index, "layers"):
        bounds = list(index.layers().values())
        total = index.size
    else:
        sizes = [int(n) for n in index]
        if any(n <= 0 for n in sizes):
            raise WeightSpaceError(f"layer sizes must be positive, got {sizes}")
        stops = np.cumsum(sizes)
        bounds = [(int(e - n), int(e)) for n, e in zip(sizes, stops)]
        total = int(stops[-1]) if sizes else 0
    if total != size:
        raise WeightSpaceError(
            f"the layer index covers {total} entries but the vectors have {size}; "
            "build the index from the same architecture (flat_index(net))"
        )
    return bounds


def fft_l1(a, b) -> float:
    r"""Mean absolute difference of the discrete Fourier transforms (report 4.5.11).

    ``L = 1/N sum_k |F(a)_k - F(b)_k|`` with ``F(w)_k = sum_n w_n exp(-2 pi i k n / N)``
    (NumPy's unnormalised forward FFT). By linearity it is ``1/N sum_k |F(a - b)_k|``:
    an L1 norm of the difference in the frequency domain. A difference concentrated in
    one weight (``a - b = c e_n``) gives ``|c|``; a constant offset ``c`` also gives
    ``|c|``. Invariant to shifting both vectors circularly by the same amount.
    Element-wise (through the difference): meaningful for aligned weights; the
    "frequencies" of a flattened weight vector reflect the layer layout, not physics.
    """
    x, y = paired(a, b, "fft_l1")
    return float(np.mean(np.abs(np.fft.fft(x - y))))


# ---------------------------------------------------------------------------- distributional


def histograms(a, b, bins: int = 64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The binning :func:`jensen_shannon` uses: ``bins`` equal-width bins over the pooled
    range ``[min(a, b), max(a, b)]`` (a zero range becomes ``[v - 0.5, v + 0.5]``), counts
    divided by each vector's length. Returns ``(p, q, edges)``."""
    if int(bins) != bins or bins < 1:
        raise WeightSpaceError(f"bins must be a positive integer, got {bins!r}")
    x, y = paired(a, b, "jensen_shannon", same_length=False)
    lo, hi = min(x.min(), y.min()), max(x.max(), y.max())
    if hi == lo:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, int(bins) + 1)
    p = np.histogram(x, edges)[0] / x.size
    q = np.histogram(y, edges)[0] / y.size
    return p, q, edges


def js_divergence(p, q) -> float:
    r"""Jensen-Shannon divergence of two histograms (probability vectors), in nats.

    ``JS(p, q) = 1/2 KL(p || m) + 1/2 KL(q || m)``, ``m = (p + q)/2``, with ``0 log 0 = 0``.
    Bounded by ``ln 2`` (disjoint supports); its square root is a metric. Histograms
    are normalised to sum to 1 first; negative entries are an error."""
    p = as_vector(p, "jensen_shannon: the first histogram")
    q = as_vector(q, "jensen_shannon: the second histogram")
    if p.size != q.size:
        raise WeightSpaceError(f"histograms need the same bins, got {p.size} and {q.size} bins")
    if (p < 0).any() or (q < 0).any() or p.sum() <= 0 or q.sum() <= 0:
        raise WeightSpaceError("histograms must be non-negative with a positive total")
    p, q = p / p.sum(), q / q.sum()
    m = 0.5 * (p + q)

    def kl(u):
        nz = u > 0
        return float(np.sum(u[nz] * np.log(u[nz] / m[nz])))

    return max(0.0, 0.5 * kl(p) + 0.5 * kl(q))


def jensen_shannon(a, b, bins: int = 64, distance: bool = False) -> float:
    r"""Jensen-Shannon divergence between the histograms of two weight vectors (report 4.5.10).

    Binning: :func:`histograms` (``bins`` equal-width bins over the pooled range of both
    vectors, so both histograms share their edges). Returns the divergence in nats,
    in ``[0, ln 2]``; ``distance=True`` returns its square root, the JS distance the
    report uses as a loss (a metric). Distributional: ignores weight order, allows
    different lengths. The value depends on ``bins``: always report it.
    """
    p, q, _ = histograms(a, b, bins)
    d = js_divergence(p, q)
    return float(np.sqrt(d)) if distance else d


def _quantile_points(x: np.ndarray, n: int) -> np.ndarray:
    """``n`` values at the mid-quantiles ``(i + 1/2)/n`` of ``x`` (a compact stand-in for
    a large empirical distribution; the identity when ``n >= len(x)``)."""
    if x.size <= n:
        return np.sort(x)
    return np.quantile(x, (np.arange(n) + 0.5) / n, method="inverted_cdf")


def wasserstein2(a, b) -> float:
    r"""Exact 2-Wasserstein distance between the empirical distributions of the weights.

    In one dimension the optimal coupling is monotone, so
    ``W2^2 = int_0^1 (F_a^{-1}(t) - F_b^{-1}(t))^2 dt`` with ``F^{-1}`` the empirical
    quantile functions (step functions). For equal lengths this is
    ``W2 = sqrt(1/N sum_i (a_(i) - b_(i))^2)`` over the sorted values (report 4.5.5);
    for different lengths the integral is taken exactly over the merged steps.
    Distributional: zero when one vector is a permutation of the other.
    """
    x, y = paired(a, b, "wasserstein2", same_length=False)
    x, y = np.sort(x), np.sort(y)
    if x.size == y.size:
        return float(np.sqrt(np.mean((x - y) ** 2)))
    # the step quantile functions are constant between the merged breakpoints i/n, j/m
    t = np.union1d(np.arange(1, x.size + 1) / x.size, np.arange(1, y.size + 1) / y.size)
    t[-1] = 1.0
    widths = np.diff(np.concatenate([[0.0], t]))
    mid = t - widths / 2
    qx = x[np.minimum((mid * x.size).astype(int), x.size - 1)]
    qy = y[np.minimum((mid * y.size).astype(int), y.size - 1)]
    return float(np.sqrt(np.sum(widths * (qx - qy) ** 2)))


def sinkhorn_w2(a, b, reg: float = 1e-3, max_points: int = 256, num_iter: int = 10_000) -> float:
    r"""Entropic (Sinkhorn) 2-Wasserstein distance between the weight distributions (report 4.5.5).

    ``P* = argmin_{P in Pi(mu, nu)} <P, C> - eps H(P)`` with ``C_ij = (x_i - y_j)^2``,
    uniform marginals and ``H(P) = -sum P log P``; returns ``sqrt(<P*, C>)`` (the
    transport cost of the regularised plan, which tends to the exact :func:`wasserstein2`
    as ``eps -> 0`` and exceeds it otherwise). ``eps = reg * mean(C)``, so ``reg`` is
    relative to the scale of the weights. Solved by POT's stabilised Sinkhorn with
    epsilon scaling (``ot.sinkhorn(method="sinkhorn_epsilon_scaling")``; the plain
    log-domain iteration needs minutes at this ``reg``). Vectors longer than ``max_points`` are
    first replaced by ``max_points`` mid-quantiles (see the module code), which keeps the
    cost matrix small; the exact 1-D distance is :func:`wasserstein2`.

    Not zero on identical vectors: the entropic plan spreads mass, which adds a bias that
    shrinks with ``reg`` (for 100 standard normal values: 0.30 at reg 0.1, 0.094 at
    0.01, 0.027 at 1e-3, in units of their standard deviation). Compare
    values computed with the same ``reg`` only.
    """
    ot = _optional("ot", "POT")

    reg = positive(reg, "reg")
    x, y = paired(a, b, "sinkhorn_w2", same_length=False)
    x, y = _quantile_points(x, int(max_points)), _quantile_points(y, int(max_points))
    cost = (x[:, None] - y[None, :]) ** 2
    scale = float(cost.mean())
    if scale == 0.0:
        return 0.0
    mu, nu = np.full(x.size, 1.0 / x.size), np.full(y.size, 1.0 / y.size)
    with warnings.catch_warnings():
        # epsilon scaling warns about its inner solves at intermediate eps; the final
        # plan's marginals are checked below instead
        warnings.filterwarnings("ignore", message="Sinkhorn did not converge")
        plan = ot.sinkhorn(mu, nu, cost, reg * scale, method="sinkhorn_epsilon_scaling", numItermax=int(num_iter),
                           stopThr=1e-9)
    # the solver stops with marginals off by up to ~5e-4 of their mass on weight vectors
    # (measured on the digit zoo); that moves the cost by about as much, well inside the
    # entropic bias, so only a larger miss is worth a warning
    off = max(np.abs(plan.sum(1) - mu).max() * x.size, np.abs(plan.sum(0) - nu).max() * y.size)
    if not off < 1e-3:
        warnings.warn(f"Sinkhorn's plan misses its marginals by {off:.2g} (relative); raise num_iter or reg",
                      RuntimeWarning, stacklevel=2)
    return float(np.sqrt(max(0.0, float(np.sum(plan * cost)))))


def gromov_wasserstein(a, b, max_points: int = 256) -> float:
    r"""Gromov-Wasserstein discrepancy between the weights as 1-D point clouds (report 4.5.14).

    ``GW = min_{T in Pi(mu, nu)} sum_{i,j,k,l} (d_a(i, k) - d_b(j, l))^2 T_ij T_kl`` with
    ``d_a(i, k) = |a_i - a_k|`` (likewise ``d_b``) and uniform ``mu``, ``nu``; computed by
    POT (``ot.gromov.gromov_wasserstein2``, square loss, conditional gradient started from the
    product coupling and from both monotone couplings, the best kept; a local optimum of
    a non-convex problem, exact for small clouds in practice). Compares the *internal
    geometry* of the two clouds only: invariant to translating, reflecting or permuting either vector (isometries of the line), not to
    scaling. The cost grows as N^3, so vectors longer than ``max_points`` are replaced by
    that many mid-quantiles first.
    """
    ot = _optional("ot", "POT")

    x, y = paired(a, b, "gromov_wasserstein", same_length=False)
    x, y = _quantile_points(x, int(max_points)), _quantile_points(y, int(max_points))
    cx, cy = np.abs(x[:, None] - x[None, :]), np.abs(y[:, None] - y[None, :])
    mu, nu = np.full(x.size, 1.0 / x.size), np.full(y.size, 1.0 / y.size)
    # Conditional gradient finds a local optimum that depends on where it starts: from the
    # product coupling alone, [0, 1, 2, 2] against its reflection [1, 2, 0, 0] gave 0 one
    # way and 0.5 the other (found by the symmetry property test). On the line the
    # isometries are shifts and reflections, so the increasing and the decreasing
    # monotone couplings are started from too, and the smallest value kept.
    starts = [None, ot.emd_1d(x, y, mu, nu), ot.emd_1d(x, -y, mu, nu)]
    values = [ot.gromov.gromov_wasserstein2(cx, cy, mu, nu, loss_fun="square_loss", G0=g0) for g0 in starts]
    return float(max(0.0, min(values)))


def persistence_diagram(w, filtration: str = "sublevel") -> np.ndarray:
    """0-dimensional persistence diagram of ``w`` as a function on a path (parameter index).

    Sublevel filtration: connected components of ``{i : w_i <= t}`` along the index,
    each born at a local minimum and dying when it merges with an older one at the
    maximum between them (the elder rule); the global minimum's component never dies
    (death ``inf``). ``"superlevel"`` does the same for ``-w``. Computed by GUDHI's
    cubical complex on the 1-D array. Returns an array ``(k, 2)`` of (birth, death)."""
    gudhi = _optional("gudhi", "GUDHI")

    x = as_vector(w, "persistence_diagram: the vector")
    if filtration == "superlevel":
        x = -x
    elif filtration != "sublevel":
        raise WeightSpaceError(f"filtration must be 'sublevel' or 'superlevel', got {filtration!r}")
    complex_ = gudhi.CubicalComplex(top_dimensional_cells=x)
    complex_.compute_persistence(homology_coeff_field=2, min_persistence=0.0)
    diagram = complex_.persistence_intervals_in_dimension(0)
    return np.asarray(diagram, dtype=np.float64).reshape(-1, 2)


def bottleneck(a, b, filtration: str = "both") -> float:
    r"""Bottleneck distance between the persistence diagrams of two weight profiles (report 4.5.15).

    ``d_B(D_a, D_b) = inf_gamma sup_p ||p - gamma(p)||_inf`` over matchings ``gamma`` of
    the diagrams' points, where a point may also be matched to the diagonal; computed by
    GUDHI (``gudhi.bottleneck_distance``, exact). Diagrams: :func:`persistence_diagram`
    of each vector read as a function of the parameter index; ``filtration="both"``
    (default) takes the larger of the sublevel and superlevel distances, so peaks and
    valleys both count. Stability: for vectors of equal length ``d_B <= ||a - b||_inf``.
    Depends on the parameter order (it is a profile along the index, not a multiset);
    vectors may differ in length.
    """
    gudhi = _optional("gudhi", "GUDHI")

    if filtration == "both":
        return max(bottleneck(a, b, "sublevel"), bottleneck(a, b, "superlevel"))
    da, db = persistence_diagram(a, filtration), persistence_diagram(b, filtration)
    return float(gudhi.bottleneck_distance(da, db))


# ---------------------------------------------------------------------------- functional


def jacobian_frobenius(net_a, net_b, inputs, batch_size: int = 256) -> float:
    r"""RMS over inputs of the Frobenius norm of the difference of input Jacobians (report 4.5.2).

    ``J(x)_ij = d f_i(x) / d x_j`` (outputs by input entries); returns
    ``sqrt(1/N sum_n ||J_a(x_n) - J_b(x_n)||_F^2)``. For a single input this is the
    report's ``||J_a - J_b||_F``; for linear maps ``x -> W x + c`` it is ``||W_a - W_b||_F``.
    Computed with ``torch.func.jacrev`` under ``vmap`` in float64 copies of the
    networks (left unchanged, in eval mode). Functional, not element-wise: the two
    networks need the same input and output shapes, not the same architecture; it is
    invariant to permuting hidden neurons. Meaningful on inputs from the data the
    networks are used on (the Jacobian is local).
    """
    import copy

    import torch
    from torch.func import jacrev, vmap

    if not all(hasattr(n, "parameters") for n in (net_a, net_b)):
        raise WeightSpaceError("jacobian_frobenius needs two torch modules (the networks), not weight vectors")
    x = torch.as_tensor(as_vector(inputs, "jacobian_frobenius: the inputs")).reshape(np.shape(inputs))
    if x.ndim < 2 or x.shape[0] == 0:
        raise WeightSpaceError(f"inputs must be a batch of shape (N, *input_shape), got {tuple(x.shape)}")
    nets = []
    for net in (net_a, net_b):
        twin = copy.deepcopy(net).double().eval()
        for p in twin.parameters():
            p.requires_grad_(False)
        nets.append(twin)

    def jac(net, xs):
        return vmap(jacrev(lambda one: net(one.unsqueeze(0)).squeeze(0)))(xs)

    total, count = 0.0, 0
    with torch.no_grad():
        outs = [n(x[:1]) for n in nets]
    if outs[0].shape != outs[1].shape:
        raise WeightSpaceError(
            f"the networks' outputs differ in shape ({tuple(outs[0].shape[1:])} vs. {tuple(outs[1].shape[1:])}); "
            "Jacobians are comparable only between networks with the same input and output shapes"
        )
    for chunk in x.split(int(batch_size)):
        diff = jac(nets[0], chunk) - jac(nets[1], chunk)
        total += float((diff.reshape(len(chunk), -1) ** 2).sum())
        count += len(chunk)
    return float(np.sqrt(total / count))
