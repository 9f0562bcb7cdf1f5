"""Experiment 2 of the thesis on real bearing recordings: LSTM vs. Conv1d + transformer.

Networks: ``equivtest_thesis.zoo.vibration`` (normal vs. bearing fault on 100-step windows of
the CWRU drive-end and fan-end accelerometers, white sensor noise at -5 dB).
Layers (thesis section 4.2): the LSTM's output sequence (hidden size 1, a tuple output:
index 0) and the last transformer encoder layer's output, every 4th of its 64 features.
Each sequence is cut into slices of p equidistant time steps (p = 25, 10, 2, 1), each
slice a sample; one fit per p gives both directions (stitched into the LSTM, Table 4.1,
and into the transformer, Table 4.2).

Samples are validation windows (the thesis draws them from its validation set), the
neighbourhoods Gaussian with delta 0.005 (variance delta/4) in the normalised input
units, as in the thesis. The stitched networks are scored on every test window.

Profiles: the thesis's sizes are 650 samples, neighbourhoods of 1024 and 60
eigenvectors (epsilon from the 35th neighbour, its k_min). A slice length p turns every
sample into 100/p rows, so the row count, not the sample count, sets the cost (dense
kernel: rows^2); each profile fits on at most ``max_rows`` rows drawn at random from all
samples' slices (``FitConfig(max_rows=...)``), the same rows of both networks. The fit's
departures from the thesis (``FIT``) are explained where they are set, and measured in
the README's vibration section.

Beside each fit, the ladder of maps (:mod:`equivtest_thesis.experiments.ladder`) on the
same slices of the test windows: rows are slices, split by window, stitched into either
network on the held-out quarter of the windows.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np

from equivtest.criteria import Criterion
from equivtest.engine import FitConfig, fit_slice_lengths
from equivtest.layers import LayerSpec
from equivtest.pairs import NetworkPair
from equivtest.record import write_run
from equivtest.report.tables import ResultTable
from equivtest.sampling import DatasetPoints, GaussianNeighbourhood, Sampler
from equivtest.outcome import ExperimentOutcome
from . import ladder

NAME = "vibration"
TITLE = "Experiment 2: LSTM vs. Conv1d + transformer on CWRU bearing windows, slices p = 25, 10, 2, 1"
WINDOW = 100
SLICE_LENGTHS = (25, 10, 2, 1)
DELTA = 0.005
NAMES = ("lstm", "transformer")
LAYERS = {
    "lstm": dict(path="lstm", output=0, layout="bsf"),
    # batch_first encoder: (batch, time, 64); every 4th feature as in the thesis
    "transformer": dict(path="encoder", layout="bsf", neurons=slice(None, None, 4)),
}
PROFILES = {
    "ci": {"samples": 200, "max_rows": 2000, "neighbourhood": 128, "n_eigenvectors": 20, "epsilon_k": 40,
           "ladder": ladder.CI_RUNGS},
    "full": {"samples": 650, "max_rows": 2600, "neighbourhood": 1024, "n_eigenvectors": 60, "epsilon_k": 40,
             "ladder": ladder.FULL_RUNGS},
}
# Departures from the thesis's fit, each measured (README, suite vibration):
# - a covariance ridge of 1 (median per-feature variance): without it the LSTM's
#   saturated windows sit at huge Mahalanobis distances from all others and the kernel
#   graph falls into dozens of pieces (eigenvalue 1 repeated);
# - local linear RBF interpolants over 10 neighbours: the global thin plate spline
#   extrapolates wildly on test windows (activation MSE up to 1e17);
# - at most max_rows rows drawn at random from all samples' slices, where the thesis
#   took every slice of each sample (up to 65,000 rows at p = 1).
# - smoothing 1e-8: where the kernel graph still has a few pieces (the LSTM at p = 1),
#   their samples share diffusion coordinates and a local system would be singular.
FIT = {"covariance_ridge": 1.0, "rbf_kernel": "linear", "rbf_neighbors": 10, "smoothing": 1e-8}
# Tables 4.1 and 4.2: accuracy of the untouched network and of the stitched ones.
THESIS_ACCURACY = {
    "lstm": {"own": 0.8789, 25: 0.8740, 10: 0.8760, 2: 0.8828, 1: 0.8604},
    "transformer": {"own": 0.9658, 25: 0.8184, 10: 0.8428, 2: 0.7988, 1: 0.7793},
}
# The bar, as accuracy drops (own - stitched): into the LSTM at most 0.01 at every
# slice length; into the transformer, at the best slice length, below the thesis's best
# drop (0.9658 - 0.8428 = 0.123), aiming for 0.05.
MAX_DROP = {"lstm": 0.01, "transformer": 0.9658 - 0.8428}
AIM_DROP = {"transformer": 0.05}


def thesis_drop(target: str, p: int) -> float:
    return THESIS_ACCURACY[target]["own"] - THESIS_ACCURACY[target][p]


def drop_thresholds(p: int) -> dict:
    """Per fit: into the LSTM the issue's 0.01; into the transformer no worse than the thesis at the same p."""
    return {"b->a": MAX_DROP["lstm"], "a->b": thesis_drop("transformer", p)}


def best_drops(outcome) -> dict[str, float]:
    """The smallest accuracy drop over the slice lengths, per target (what the issue's bar compares)."""
    return {target: min(r.value("accuracy_drop", direction) for r in outcome.results)
            for target, direction in (("lstm", "b->a"), ("transformer", "a->b"))}


# The Whitney check is reported, not asserted: the input windows are 200 noisy values,
# and the local-PCA dimension of such samples says little about the slices' manifold.
THRESHOLDS = {"whitney": None}


def classification_scores(predicted: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Accuracy, precision, recall, F1 and true-negative rate, class 1 (fault) positive."""
    predicted, labels = np.asarray(predicted).astype(int), np.asarray(labels).astype(int)
    tp = int(np.sum((predicted == 1) & (labels == 1)))
    tn = int(np.sum((predicted == 0) & (labels == 0)))
    fp = int(np.sum((predicted == 1) & (labels == 0)))
    fn = int(np.sum((predicted == 0) & (labels == 1)))
    precision = tp / (tp + fp) if tp + fp else float("nan")
    recall = tp / (tp + fn) if tp + fn else float("nan")
    f1 = 2 * precision * recall / (precision + recall) if tp else 0.0
    return {
        "accuracy": (tp + tn) / len(labels),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "tnr": tn / (tn + fp) if tn + fp else float("nan"),
    }


def networks(log=None, noise_snr_db: float | None = None):
    """Both trained networks and their data; ``noise_snr_db`` None: the suite's -5 dB."""
    from ..zoo.vibration import vibration_networks

    noise = {} if noise_snr_db is None else {"noise_snr_db": float(noise_snr_db)}
    return vibration_networks(log=log, **noise)


def pair(p: int | None, lstm, transformer, summaries: dict | None = None, noise_snr_db: float | None = None) -> NetworkPair:
    """The pair at slice length p; ``None`` leaves the sequences whole (``fit_slice_lengths`` cuts them)."""
    return NetworkPair(
        lstm, transformer,
        LayerSpec(**LAYERS["lstm"], slice_length=p), LayerSpec(**LAYERS["transformer"], slice_length=p),
        name=NAME if p is None else f"{NAME}-p{p}", names=NAMES, task="classification",
        metadata={"training": summaries or {}, **({} if p is None else {"slice_length": p}),
                  **({} if noise_snr_db is None else {"noise_snr_db": noise_snr_db})},
    )


def sampler(windows: np.ndarray, n: int, neighbourhood: int, seed: int = 0) -> Sampler:
    return Sampler(DatasetPoints(windows, n), GaussianNeighbourhood(neighbourhood, DELTA), seed=seed)


def config(profile: dict) -> FitConfig:
    return FitConfig(n_eigenvectors=profile["n_eigenvectors"], epsilon_k=profile["epsilon_k"],
                     max_rows=profile["max_rows"], **FIT)


def _tables(rows: dict, n_test: int, balance: float, profile_name: str) -> list[ResultTable]:
    tables = []
    for number, target in (("4.1", "lstm"), ("4.2", "transformer")):
        source = NAMES[1] if target == "lstm" else NAMES[0]
        table = ResultTable(
            f"Stitched into the {target} (thesis Table {number})",
            ["network", "slices", "accuracy", "precision", "recall", "F1", "TNR", "agreement", "thesis accuracy"],
            notes=(f"{n_test} test windows, {balance:.1%} fault; profile {profile_name}. 'agreement': share of "
                   f"test windows where the stitched network ({source} up to its layer, the transformation, "
                   f"{target} after it) predicts what the {target} itself predicts."),
        )
        for key, scores in rows[target]:
            label = f"{target} (own)" if key == "own" else f"stitched, p={key}"
            slices = "—" if key == "own" else f"{WINDOW // key} x {key}"
            table.add_row(label, slices, scores["accuracy"], scores["precision"], scores["recall"], scores["f1"],
                          scores["tnr"], scores.get("agreement"), THESIS_ACCURACY[target][key])
        tables.append(table)
    return tables


def run(
    *,
    profile: str = "ci",
    report_dir: str | Path | None = "reports",
    stage: Callable[[str], None] | None = None,
    null_shuffles: int = 0,
    slice_lengths: tuple[int, ...] = SLICE_LENGTHS,
    noise_snr_db: float | None = None,
) -> ExperimentOutcome:
    """Fit every slice length, score the stitched networks, build Tables 4.1 and 4.2.

    ``noise_snr_db``: the sensor noise the networks are trained and tested at (None: the
    suite's -5 dB); other levels are for probing how the task's difficulty moves the
    results (``thesis/tools/vibration_noise.py``).
    """
    settings = PROFILES[profile]
    t0 = time.perf_counter()
    lstm, transformer, info = networks(log=stage, noise_snr_db=noise_snr_db)
    splits = info["splits"]
    test_x, test_y = splits.test
    # per target: the untouched network's scores, and the stitched network's per slice length
    own_scores, stitched_scores = {}, {target: {} for target in NAMES}
    results, records, timings = {}, [], {"networks_s": time.perf_counter() - t0}
    balance = float(np.mean(test_y == 1))
    n = settings["samples"]
    # The capture is shared until the last fit is cut: fitting the largest slices (most
    # values per row) last keeps the peak memory to that fit's own (full profile: p = 25).
    order = sorted(slice_lengths)
    if stage:
        stage(f"{n} samples with neighbourhoods of {settings['neighbourhood']}, captured once for slice lengths "
              f"{', '.join(map(str, order))} (each fit on at most {settings['max_rows']} rows)")
    t = time.perf_counter()
    verdicts, ladder_tables = {}, {}
    fits = fit_slice_lengths(pair(None, lstm, transformer, info["networks"], splits.noise_snr_db),
                             sampler(splits.val.x, n, settings["neighbourhood"]), order, config(settings),
                             stage=stage)
    for p in order:
        # next(), not zip(order, fits): zip's reused result tuple keeps the previous fit
        # (and its activations) alive while the generator cuts and fits the next one
        fitted = next(fits)
        if stage:
            stage(f"slice length {p}: {n} samples x {WINDOW // p} slices")
        result = fitted.evaluate(test_x, stage=stage, null_shuffles=null_shuffles)
        fit_rows = {}
        for target in NAMES:
            side, direction = ("a", "b->a") if target == NAMES[0] else ("b", "a->b")
            own = np.asarray(result.arrays.outputs[side]).argmax(axis=1)
            stitched = np.asarray(result.arrays.stitched[direction]).argmax(axis=1)
            own_scores[target] = mine = classification_scores(own, test_y)
            stitched_scores[target][p] = scores = {**classification_scores(stitched, test_y),
                                                   "agreement": float(np.mean(stitched == own))}
            fit_rows[target] = [("own", mine), (p, scores)]
            drop = mine["accuracy"] - scores["accuracy"]
            result = result.derive(criteria=(*result.criteria, Criterion(
                "accuracy_drop", direction, float(drop), None, False,
                f"{target}'s own test accuracy {mine['accuracy']:.4f}, stitched {scores['accuracy']:.4f}",
            )))
        result = result.with_thresholds({**THRESHOLDS, "accuracy_drop": drop_thresholds(p)})
        # the ladder after the thesis's method, whose figures it leaves as they were
        result, ladder_tables[p], verdicts[p] = ladder.beside(
            pair(p, lstm, transformer, info["networks"], splits.noise_snr_db), test_x, result,
            settings.get("ladder"), timings, label=f"p={p}", stage=stage)
        t += timings.get(f"ladder_p{p}_s", 0.0)  # p{p}_s: the thesis's method alone
        if report_dir is not None:
            records.append(write_run(fitted, result, report_dir, suite=NAME, name=f"{NAME}-p{p}",
                                     tables=_tables(fit_rows, len(test_y), balance, profile) + ladder_tables[p]))
        # Written at once and let go: one fit's activations (full profile, p = 25: 2,600
        # neighbourhoods of 1024 x 400) must not outlive it while the next one is cut.
        del fitted
        timings[f"p{p}_s"] = time.perf_counter() - t  # the first includes the one capture
        t = time.perf_counter()
        results[p] = result
    # results and tables in the thesis's order
    rows = {target: [("own", own_scores[target])] + [(p, stitched_scores[target][p]) for p in slice_lengths]
            for target in NAMES}
    tables = _tables(rows, len(test_y), balance, profile) + [t for p in slice_lengths for t in ladder_tables[p]]
    timings["total_s"] = time.perf_counter() - t0
    return ExperimentOutcome([results[p] for p in slice_lengths], tables, records, timings,
                             [v for p in slice_lengths for v in verdicts[p]])
