"""Suite ``merge``: the TransformerAE report's weight merger on the digit zoo.

For each held-out task (a pair of disjoint digit class sets C1, C2 whose union was
never a training target of the merger), the suite compares on the test images of C1,
C2 and C1 u C2:

- each parent (the zoo CNN trained on C1, on C2);
- the merger's predicted network, before and after a short fine-tune (at most one
  epoch on the training images of C1 u C2: the report's "how fast it catches up");
- plain weight averaging of the parents, also fine-tuned the same way (the baseline
  the merger must beat);
- an output ensemble of the parents (mean of their softmax outputs);
- the network trained on C1 u C2 from the same initialisation (the upper reference),

with normalised accuracy (accuracy on C1 u C2 over the jointly trained network's), the
weight-space distances between predicted and jointly trained weights (and, for
reference, between averaged and jointly trained), and the engine's transformation
between the predicted network and the jointly trained one (hidden layer ``act4``, 20
wide) with its criteria.

Profiles (sizes in the README): ``ci`` builds a small zoo and merger in a few minutes on
two cores; ``full`` uses every pair of digits as parent sets, more seeds and epochs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from equivtest.criteria import EquivalenceResult, criterion
from equivtest.report.tables import ResultTable
from .merge_model import MergerConfig, cached_merger, predict
from ..zoo.digits import PROFILES as ZOO_PROFILES
from ..zoo.digits import ZooSpec, accuracy, build_zoo, initial_network, load_digit_data, train_steps
from equivtest.outcome import ExperimentOutcome

NAME = "merge"
TITLE = "Weight merging: the TransformerAE report's double-encoder merger on digit CNNs"
# one epoch at the zoo's own learning rate; batch 8 gives 60-70 steps on the ~500 training images of 4 classes
FINE_TUNE = {"epochs": 1.0, "lr": 3e-3, "batch_size": 8}
# the bar: after <= 1 epoch of fine-tuning, >= 95% of the joint network's accuracy
THRESHOLDS = {"normalised_accuracy": {"finetuned": 0.95, "predicted": None, "averaged": None,
                                      "averaged_finetuned": None, "ensemble": None}}
JACOBIAN_INPUTS = 64  # the first 64 test images of C1 u C2
DISTANCES = ("weight_layerwise_mse", "weight_quantile_loss", "weight_mape", "weight_norm_difference", "weight_js",
             "weight_w2", "weight_sinkhorn_w2", "weight_fft_l1", "weight_gromov_wasserstein", "weight_bottleneck",
             "jacobian_frobenius")


@dataclass(frozen=True)
class MergeProfile:
    zoo: ZooSpec
    merger: MergerConfig
    fit_seeds: tuple[int, ...]  # held-out tasks of these seeds also get the engine's transformation
    n_samples: int = 150
    neighbourhood: int = 48
    delta: float = 0.04
    no_skip_too: bool = False  # also train the report's direct merger (no skip) and report its prediction


PROFILES = {
    "ci": MergeProfile(ZOO_PROFILES["ci"], MergerConfig(epochs=200), fit_seeds=(0,)),
    "full": MergeProfile(ZOO_PROFILES["full"], MergerConfig(epochs=300), fit_seeds=(0, 1),
                         n_samples=250, neighbourhood=64, no_skip_too=True),
}


class OutputEnsemble(nn.Module):
    """Mean of the networks' softmax outputs (log of it, so arg-max and accuracy work as for logits)."""

    def __init__(self, *nets: nn.Module):
        super().__init__()
        self.nets = nn.ModuleList(nets)

    def forward(self, x):
        return torch.stack([torch.softmax(n(x), dim=1) for n in self.nets]).mean(0).log()


def _network(vector: torch.Tensor, seed: int) -> nn.Module:
    from equivtest.weights.flat import load_flat

    return load_flat(initial_network(seed), vector).eval()


def _fine_tuned(vector: torch.Tensor, seed: int, classes, task_seed: int) -> nn.Module:
    net = _network(vector, seed)
    train_steps(net, classes, seed=task_seed, **FINE_TUNE)
    return net


def _label(classes) -> str:
    return "".join(map(str, classes))


def run(*, profile: str = "ci", report_dir: str | Path | None = "reports", stage: Callable[[str], None] | None = None,
        null_shuffles: int = 0, merge_profile: MergeProfile | None = None) -> ExperimentOutcome:
    from equivtest.engine import FitConfig, fit_pair
    from equivtest.pairs import NetworkPair
    from equivtest.record import write_run
    from equivtest.sampling import DatasetPoints, GaussianNeighbourhood, Sampler
    from equivtest.weights.criteria import weight_criteria
    from equivtest.weights.flat import flat_index

    say = stage or (lambda message: None)
    prof = merge_profile or PROFILES[profile]
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    say(f"digit zoo ({profile}): {len(prof.zoo.seeds)} seeds")
    zoo = build_zoo(prof.zoo, log=say)
    timings["zoo_s"] = time.perf_counter() - t0
    data = load_digit_data()
    index = flat_index(next(iter(zoo.networks.values())))

    def union(a, b):
        return tuple(sorted(a + b))

    def stacked(triples):
        return tuple(torch.stack([zoo.vector(s, c(a, b)) for s, a, b in triples])
                     for c in (lambda a, b: a, lambda a, b: b, union))

    t1 = time.perf_counter()
    train = zoo.triples(zoo.train_tasks)
    say(f"merger: training on {len(train)} triples")
    triples = stacked(train)
    model, merger_info = cached_merger(*triples, index, prof.merger, stage=say)
    direct = None
    if prof.no_skip_too:
        say("merger without skip (the report's direct prediction)")
        direct, _ = cached_merger(*triples, index, replace(prof.merger, skip=False), stage=say)
    timings["merger_s"] = time.perf_counter() - t1

    accuracy_table = ResultTable(
        "Held-out merges: accuracy on the test images of C1, C2 and C1 u C2",
        ["seed", "C1", "C2", "network", "acc C1", "acc C2", "acc C1uC2", "normalised"],
        notes=("normalised = accuracy on C1 u C2 / that of the network trained on C1 u C2. Fine-tune: "
               f"{FINE_TUNE['epochs']:g} epoch(s) of Adam (lr {FINE_TUNE['lr']:g}, batch {FINE_TUNE['batch_size']}) "
               "on the training images of C1 u C2. Arg-max over all 10 logits."),
    )
    distance_table = ResultTable(
        "Weight-space distances to the jointly trained network's weights",
        ["seed", "C1", "C2", "weights", *DISTANCES],
        notes=("lower is closer; MAPE in percent (epsilon 1e-3), JS in nats (64 bins), Sinkhorn reg 1e-3 x mean "
               "cost, Jacobian Frobenius RMS over the first 64 C1 u C2 test images"),
    )
    results, records, per_method, fits = [], [], {}, []
    t2 = time.perf_counter()
    heldout = zoo.triples(zoo.heldout_tasks)
    for k, (seed, a, b) in enumerate(heldout):
        u = union(a, b)
        say(f"held-out {k + 1}/{len(heldout)}: seed {seed}, {_label(a)} + {_label(b)}")
        task_seed = 7919 * (seed + 1) + int(_label(u))
        pa, pb = zoo.vector(seed, a), zoo.vector(seed, b)
        predicted_vec = predict(model, pa, pb)
        averaged_vec = 0.5 * (pa + pb)
        nets = {
            "parent C1": zoo.networks[(seed, a)],
            "parent C2": zoo.networks[(seed, b)],
            "predicted": _network(predicted_vec, seed),
            "finetuned": _fine_tuned(predicted_vec, seed, u, task_seed),
            "averaged": _network(averaged_vec, seed),
            "averaged_finetuned": _fine_tuned(averaged_vec, seed, u, task_seed),
            "ensemble": OutputEnsemble(zoo.networks[(seed, a)], zoo.networks[(seed, b)]).eval(),
            "joint": zoo.networks[(seed, u)],
        }
        if direct is not None:
            nets["predicted_noskip"] = _network(predict(direct, pa, pb), seed)
        accs = {name: [accuracy(net, cs, data=data) for cs in (a, b, u)] for name, net in nets.items()}
        joint_acc = accs["joint"][2]
        for name, (ca, cb, cu) in accs.items():
            normalised = cu / joint_acc if joint_acc > 0 else float("nan")
            accuracy_table.add_row(seed, _label(a), _label(b), name, ca, cb, cu, normalised)
            per_method.setdefault(name, []).append((cu, normalised))
        x_union = data.subset(u, "test")[0].numpy()
        distances = {}
        for label in ("predicted", "averaged"):
            distances[label] = weight_criteria(nets[label], nets["joint"], DISTANCES, inputs=x_union[:JACOBIAN_INPUTS])
            distance_table.add_row(seed, _label(a), _label(b), label, *[c.value for c in distances[label]])
        pair_name = f"merge-s{seed}-{_label(a)}+{_label(b)}"
        found = [criterion("normalised_accuracy", m, accs[m][2] / joint_acc)
                 for m in ("predicted", "finetuned", "averaged", "averaged_finetuned", "ensemble")]
        found += [criterion("merge_gain", "predicted-averaged", accs["predicted"][2] - accs["averaged"][2])]
        found += distances["predicted"]
        results.append(EquivalenceResult(pair_name, found, {"seed": seed, "C1": list(a), "C2": list(b)})
                       .with_thresholds(THRESHOLDS))
        if seed in prof.fit_seeds:
            say(f"transformation: predicted vs. joint network, {pair_name}")
            pair = NetworkPair(nets["predicted"], nets["joint"], "act4", "act4", name=f"{pair_name}-transformation",
                               names=("predicted", "joint"), task="classification")
            x_train_u = data.subset(u, "train")[0].numpy().astype(np.float64)
            sampler = Sampler(DatasetPoints(x_train_u, min(prof.n_samples, len(x_train_u))),
                              GaussianNeighbourhood(prof.neighbourhood, prof.delta), seed=seed)
            fitted = fit_pair(pair, sampler, FitConfig(n_eigenvectors=4))
            fit_result = fitted.evaluate(x_union.astype(np.float64), null_shuffles=null_shuffles,
                                         thresholds={"whitney": None})
            results.append(fit_result)
            fits.append((fitted, fit_result, pair_name))
    timings["heldout_s"] = time.perf_counter() - t2

    summary = ResultTable(
        "Summary over held-out merges",
        ["network", "mean acc C1uC2", "mean normalised", "min normalised", "pairs"],
        notes=(f"zoo: {len(prof.zoo.seeds)} seeds, {len(prof.zoo.parent_sets)} parent class sets, "
               f"{prof.zoo.epochs} epochs per CNN; merger: {len(train)} training triples, "
               f"{merger_info['n_parameters']} parameters, {prof.merger.epochs} epochs, skip={prof.merger.skip}, "
               f"final layer-wise loss {merger_info['loss_history'][-1]:.4f}"),
    )
    for name, values in per_method.items():
        arr = np.array(values)
        summary.add_row(name, arr[:, 0].mean(), arr[:, 1].mean(), arr[:, 1].min(), len(arr))
    wins = sum(p > q for (p, _), (q, _) in zip(per_method["predicted"], per_method["averaged"]))
    summary.notes += (f"; predicted beats averaging on C1 u C2 in {wins} of {len(heldout)} held-out merges")
    tables = [summary, accuracy_table, distance_table]
    if report_dir is not None:  # written once the tables are complete; the first record carries them
        for k, (fitted, fit_result, pair_name) in enumerate(fits):
            records.append(write_run(fitted, fit_result, report_dir, suite=NAME, tables=tables if k == 0 else None,
                                     name=pair_name))
    timings["total_s"] = time.perf_counter() - t0
    return ExperimentOutcome(results, tables=tables, records=records,
                             timings=timings)
