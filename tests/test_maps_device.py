"""The rigid and affine maps on a torch device: the torch path (``device="cpu"`` here on every
machine, ``"cuda"`` where a GPU is present) computes what the numpy path (``device=None``)
computes, the verdict and the sweep pass the device to every rung that takes one, and a
device torch cannot use is a clear error naming the fix.

Tolerance: both paths evaluate the same formulas in float64; only the order of the sums
inside BLAS/LAPACK (numpy's OpenBLAS against torch's kernels, or cuBLAS/cuSOLVER) differs.
That moves a result by about the machine epsilon times the condition of the problem:
measured on these rows (CPU, torch against numpy) at most 6e-14 for the rotation, 1e-15
for the diagonal map, and for the ridge coefficients 1e-13 where the centred ``X^T X`` has
a condition of about 1e3 and 4e-11 where it has 3.8e5 (seed 2; the condition is in the
assertion message). 1e-10 relative is above that and far below what a mistake in a
formula gives (eigenvalues off by 1e-8 relative already move the coefficients by 3e-8).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import equivtest
from equivtest.errors import FitConfigError
from equivtest.maps import Affine, Diagonal, Identity, Nonlinear, Orthogonal, Permutation, load_map, make_rung
from equivtest.sweep import SWEEP_LADDER, sweep
from equivtest.verdict import decide
from tests._nets import permuted_copy, tanh_mlp

RTOL = 1e-10  # see the module docstring: summation order only
SEEDS = range(3)
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here (torch.cuda.is_available() is False)")
DEVICES = ["cpu", pytest.param("cuda", marks=CUDA)]


def rows(seed: int, p: int, q: int, n_inputs: int = 60, per_input: int = 8):
    """Correlated rows of ``p`` features, a noisy affine target of ``q``, and the rows again with one
    constant source column (the zero-variance branches of the correlations and the diagonal map)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_inputs * per_input, p)) @ rng.normal(size=(p, p)) + rng.normal(size=p)
    y = x @ rng.normal(size=(p, q)) + rng.normal(size=q) + 0.3 * rng.normal(size=(len(x), q))
    x_const = x.copy()
    x_const[:, 1] = 2.5
    return x, x_const, y, np.repeat(np.arange(n_inputs), per_input)


def maps(device):
    """Every map with a device parameter, in each of its settings that computes differently."""
    return [Identity(device=device), Permutation(device=device), Permutation(sign_flips=True, device=device),
            Orthogonal(device=device), Diagonal(device=device), Affine(device=device),
            Affine(alpha=1e-3, device=device)]


def assert_close(got, want, what: str, scale: float | None = None) -> None:
    """Largest difference at most RTOL of ``scale`` (default: the largest value of ``want``)."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape and got.dtype == want.dtype, (what, got.shape, want.shape, got.dtype, want.dtype)
    if scale is None:
        scale = float(np.max(np.abs(want))) if want.size else 0.0
    diff = float(np.max(np.abs(got - want))) if want.size else 0.0
    assert diff <= RTOL * scale, f"{what}: largest difference {diff:.3g} against largest value {scale:.3g}"


def assert_same_fit(on_device, numpy_map, x, y, label: str) -> None:
    """Fitted arrays, scalars and predictions of the two paths. A shift (``shift_``, ``intercept_``)
    is the target's mean less the mapped source mean: where the map is exact the two cancel and
    the shift is rounding of the target's size, so it is compared relative to the target's scale."""
    for name in on_device.fitted_arrays:
        value = getattr(on_device, name)
        assert type(value) is np.ndarray, (label, name, type(value))  # saved, loaded and compared as numpy
        scale = float(np.max(np.abs(y))) if name in ("shift_", "intercept_") else None
        assert_close(value, getattr(numpy_map, name), f"{label} {name}", scale)
    for name in on_device.fitted_scalars:
        value = getattr(on_device, name)
        assert isinstance(value, (int, float)) and not isinstance(value, bool), (label, name, type(value))
        assert math.isclose(value, getattr(numpy_map, name), rel_tol=RTOL), (label, name, value,
                                                                              getattr(numpy_map, name))
    assert_close(on_device.predict(x), numpy_map.predict(x), f"{label} predict")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("seed", SEEDS)
def test_each_map_on_a_device_fits_and_predicts_what_numpy_does(device, seed):
    x, x_const, y_wide, groups = rows(seed, 12, 12)
    for source in (x, x_const):
        for target in (y_wide, x[:, np.random.default_rng(seed).permutation(12)]):
            for numpy_map, on_device in zip(maps(None), maps(device)):
                if source is x_const and not isinstance(numpy_map, (Permutation, Diagonal)):
                    # a constant source column: the branches for it are the permutation's and the
                    # diagonal map's; the orthogonal map's rotation is not unique then (any rotation
                    # of the null direction fits as well), so the two paths may pick different ones
                    continue
                label = f"{on_device!r}"
                numpy_map.fit(source[:400], target[:400], groups[:400])
                on_device.fit(source[:400], target[:400], groups[:400])
                assert_same_fit(on_device, numpy_map, source[400:], target, label)
                assert on_device.get_params() == {**numpy_map.get_params(), "device": device}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("q", [5, 20])
def test_the_affine_map_between_widths_on_a_device(device, seed, q):
    x, _, y, groups = rows(seed, 12, q)
    for numpy_map, on_device in ((Affine(), Affine(device=device)), (Affine(alpha=1e-2), Affine(alpha=1e-2, device=device))):
        numpy_map.fit(x[:400], y[:400], groups[:400])
        on_device.fit(x[:400], y[:400], groups[:400])
        assert on_device.alpha_ == numpy_map.alpha_
        assert_same_fit(on_device, numpy_map, x[400:], y, f"{on_device!r} cond {numpy_map.condition_:.3g}")


# -- devices torch cannot use ------------------------------------------------------------------------


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here: the error is for machines without it")
def test_cuda_without_a_gpu_is_a_clear_error_naming_the_fix():
    x, _, y, groups = rows(0, 12, 12)
    for rung in maps("cuda"):
        with pytest.raises(FitConfigError, match=r"device 'cuda' is not available here \(torch.cuda.is_available\(\) "
                                                 r"is False\); use \w+\(device=None\) for the CPU's numpy path"):
            rung.fit(x, y, groups)
    with pytest.raises(FitConfigError, match=r"not available here.*pass device=None"):
        decide(x, y, groups, device="cuda")


@pytest.mark.parametrize("device, message", [("bogus", "is not a torch device name"), ("cuda:99", "not available here"),
                                             (3, "device must be None"), ("", "device must be None")])
def test_a_device_torch_cannot_use_is_a_clear_error(device, message):
    x, _, y, groups = rows(0, 12, 12)
    for rung in maps(device):
        with pytest.raises(FitConfigError, match=message):
            rung.fit(x, y, groups)
    with pytest.raises(FitConfigError, match=message):
        decide(x, y, groups, device=device)


def test_a_saved_map_keeps_its_device_and_a_loaded_one_whose_device_is_absent_says_so(tmp_path):
    x, _, y, groups = rows(1, 12, 12)
    for rung in (Orthogonal(device="cpu"), Affine(device="cpu"), Diagonal(device="cpu")):
        rung.fit(x, y, groups)
        loaded = load_map(rung.save(tmp_path / f"{rung.name}.npz"))
        assert loaded.device == "cpu" and loaded.get_params() == rung.get_params()
        assert np.array_equal(loaded.predict(x), rung.predict(x))
        rung.device = "cuda:99"  # saved from a machine with that device, loaded on one without it
        away = load_map(rung.save(tmp_path / f"{rung.name}-away.npz"))
        with pytest.raises(FitConfigError, match=r"'cuda:99' is not available here.*set map.device = None or 'cpu' "
                                                 "before predict"):
            away.predict(x)
        away.device = None  # the fix the message names: numpy, the same figures
        assert_close(away.predict(x), loaded.predict(x), f"{rung.name} loaded, numpy")


def test_make_rung_passes_the_device_to_the_maps_that_take_one():
    assert all(cls().device is None for cls in (Identity, Permutation, Orthogonal, Diagonal, Affine))  # numpy
    assert make_rung("orthogonal", "cpu").device == "cpu" and make_rung("affine").device is None
    assert make_rung(Affine(alpha=1e-3, device="cpu")).device == "cpu"  # a template keeps its own device
    assert make_rung(Affine(alpha=1e-3, device="cuda:3"), "cpu").get_params()["device"] == "cpu"  # unless given
    assert make_rung(Affine(alpha=1e-3), "cpu").alpha == 1e-3
    assert not hasattr(make_rung("nonlinear", "cpu"), "device") and not Nonlinear.takes_device()


# -- the verdict and the sweep ---------------------------------------------------------------------


def assert_same_verdict(on_device, numpy_verdict) -> None:
    """The same kind, rungs, passes and reasons' verdict; every figure to RTOL. Relative errors are
    fractions of the target's variance: a pair reached exactly (a permuted copy) gives errors at the
    rounding level (below 1e-25) that differ between the paths, so they are compared to 1e-12
    absolutely there, and the null ratio (a quotient of rounding noise then) only where the error is
    above it."""
    assert on_device.kind == numpy_verdict.kind and on_device.up_to == numpy_verdict.up_to
    assert [(r.direction, r.rung, r.passed, r.decidable) for r in on_device.rows] == \
        [(r.direction, r.rung, r.passed, r.decidable) for r in numpy_verdict.rows]
    for got, want in zip(on_device.rows, numpy_verdict.rows):
        label = f"{got.direction} {got.rung}"
        for name in ("heldout_rel_error", "null_rel_error", "control_rel_error", "stitched"):
            g, w = getattr(got, name), getattr(want, name)
            assert (g is None) == (w is None) and (g is None or math.isclose(g, w, rel_tol=RTOL, abs_tol=1e-12)), \
                (label, name, g, w)
        for name, error in (("null_ratio", "heldout_rel_error"), ("control_null_ratio", "control_rel_error")):
            g, w = getattr(got, name), getattr(want, name)
            if getattr(want, error) is not None and getattr(want, error) > 1e-12:
                assert math.isclose(g, w, rel_tol=RTOL), (label, name, g, w)
        assert got.details.keys() == want.details.keys()
        for key, w in want.details.items():
            assert math.isclose(got.details[key], w, rel_tol=RTOL), (label, key, got.details[key], w)


def permuted_pair(seed: int):
    net = tanh_mlp(seed, widths=(16, 12, 12, 3))
    twin = permuted_copy(net, "fc2", "out", np.random.default_rng(seed).permutation(12))
    return net, twin


@pytest.mark.parametrize("seed", SEEDS)
def test_the_verdict_on_a_device_is_the_numpy_verdict_for_a_permuted_copy_and_a_shuffled_pairing(seed):
    net, twin = permuted_pair(seed)
    x = np.random.default_rng(seed).normal(size=(300, 16))
    pair = equivtest.NetworkPair(net, twin, "act2", "act2", task="classification")
    found = {device: equivtest.ladder_verdict(pair, x, rungs=SWEEP_LADDER, stop_at_pass=False, device=device)
             for device in (None, "cpu")}
    assert found[None].kind == "equivalent" and found[None].up_to == "permutation", found[None].text
    assert_same_verdict(found["cpu"], found[None])

    with torch.no_grad():
        a = net[:4](torch.as_tensor(x)).numpy()  # rows of act2
    b = a[np.random.default_rng(seed + 10).permutation(len(a))]  # the pairing shuffled
    null = {device: decide(a, b, rungs=SWEEP_LADDER, device=device) for device in (None, "cpu")}
    assert null[None].kind == "not_equivalent", null[None].text
    assert_same_verdict(null["cpu"], null[None])


@CUDA
@pytest.mark.parametrize("seed, networks_on_cuda", [(0, False), (2, True)])
def test_the_verdict_on_cuda_is_the_cpu_verdict(seed, networks_on_cuda):
    # the maps on the GPU; with networks_on_cuda the networks too (NetworkPair(device="cuda")):
    # capture, the stitched networks' agreement and the maps all there, against everything on the CPU
    import copy

    net, twin = permuted_pair(seed)
    x = np.random.default_rng(seed).normal(size=(300, 16))
    cpu = equivtest.NetworkPair(net, twin, "act2", "act2", task="classification")
    gpu = cpu if not networks_on_cuda else equivtest.NetworkPair(
        copy.deepcopy(net), copy.deepcopy(twin), "act2", "act2", task="classification", device="cuda")
    want = equivtest.ladder_verdict(cpu, x, rungs=SWEEP_LADDER, stop_at_pass=False)
    got = equivtest.ladder_verdict(gpu, x, rungs=SWEEP_LADDER, stop_at_pass=False, device="cuda")
    assert want.kind == "equivalent" and want.up_to == "permutation", want.text
    assert_same_verdict(got, want)


def test_a_sweep_on_a_device_gives_the_numpy_sweep_and_refuses_a_bad_device_before_capturing():
    net, twin = permuted_pair(1)
    x = np.random.default_rng(1).normal(size=(200, 16))
    pair = equivtest.NetworkPair(net, twin, "fc1", "fc1", task="classification")
    layers = ["fc1", "act1", "act2"]
    here, there = (sweep(pair, x, layers, layers, device=device).to_dict() for device in (None, "cpu"))
    assert [c["kind"] for c in there["cells"]] == [c["kind"] for c in here["cells"]]
    assert [c["up_to"] for c in here["cells"]] == ["identity", "identity", "permutation"]
    for got, want in zip(there["cells"], here["cells"]):
        for d in ("a->b", "b->a"):
            g, w = got["directions"][d], want["directions"][d]
            assert (g["status"], g["rung"]) == (w["status"], w["rung"])
            assert math.isclose(g["rel_error"], w["rel_error"], rel_tol=RTOL, abs_tol=1e-12), (got["layer_a"], d)
    with pytest.raises(FitConfigError, match="is not a torch device name"):
        sweep(pair, x, layers, layers, device="bogus")


def test_the_sweep_command_takes_a_device(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from equivtest.cli import app
    from tests.test_sweep import SWEEP_TEST

    (tmp_path / "pairs.py").write_text(SWEEP_TEST)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    ok = runner.invoke(app, ["sweep", "pairs.py::twins", "--device", "cpu", "--no-record"])
    assert ok.exit_code == 0 and "every layer equivalent up to affine" in ok.output, ok.output
    bad = runner.invoke(app, ["sweep", "pairs.py::twins", "--device", "bogus", "--no-record"])
    assert bad.exit_code == 2 and "'bogus' is not a torch device name" in bad.output, bad.output
