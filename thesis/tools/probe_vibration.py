"""How far a slice-wise map can carry the vibration suite's networks (a by-hand ceiling).

    python thesis/tools/probe_vibration.py [--windows 200] [--k 10] [--pool val|train+val] [--all-features]
                                    [--noise-snr-db -5]

Not part of the product or the tests: it measures what the README's vibration section
quotes as the ceiling of the suite's stitched networks. On ``--windows`` validation
windows (the suite's samples, every slice of each) it fits supervised maps from one
network's slices to the other's, with no diffusion map: a ridge regression and a
distance-weighted k-nearest-neighbour regression. Each map takes the place of the
fitted transformation in the engine's own ``StitchedNetwork`` (same capture, slicing and
fill of the transformer's 48 unselected features with the per-position mean of the 16
predicted ones), which is scored on every test window as the suite scores it (accuracy
against the labels, agreement with the target's own prediction). It also scores the
transformer with its true 16 selected features and that fill, the ceiling the neuron
selection itself leaves.

``--pool train+val`` draws the windows from the training and validation sets (3,898 in
all with ``--windows 3898``), to see whether more data lifts the ceiling;
``--all-features`` maps from and to all 64 of the transformer's features instead of
every 4th. ``--noise-snr-db`` trains (and caches) both networks at another sensor noise
level than the suite's -5 dB, to see how the task's difficulty moves the ceiling.
"""

from __future__ import annotations

import argparse

import numpy as np
from sklearn.linear_model import Ridge
from sklearn.neighbors import KNeighborsRegressor

from equivtest.capture import capture, forward_batched
from equivtest_thesis.experiments import vibration
from equivtest.layers import LayerSpec
from equivtest.stitch import StitchedNetwork
from equivtest_thesis.zoo.vibration import NOISE_SNR_DB, vibration_networks


class SupervisedMap:
    """A fitted regression in the place of a ``Transformation``: what ``StitchedNetwork`` calls.
    Without a model it hands the activations through unchanged."""

    def __init__(self, model=None):
        self.model = model

    def side(self, network: str) -> str:
        return network

    def predict(self, activations: np.ndarray, to: str) -> np.ndarray:
        return activations if self.model is None else self.model.predict(activations)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--windows", type=int, default=200)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--pool", choices=("val", "train+val"), default="val")
    parser.add_argument("--all-features", action="store_true")
    parser.add_argument("--noise-snr-db", type=float, default=NOISE_SNR_DB)
    args = parser.parse_args()
    lstm, transformer, info = vibration_networks(noise_snr_db=args.noise_snr_db)
    nets = {"lstm": lstm, "transformer": transformer}
    splits = info["splits"]
    pool = splits.val.x if args.pool == "val" else np.concatenate([splits.train.x, splits.val.x])
    fit_x = pool[: args.windows]
    layers = dict(vibration.LAYERS)
    if args.all_features:
        layers["transformer"] = {**layers["transformer"], "neurons": None}
    print(f"{len(fit_x)} windows from {args.pool}; transformer features: {'all 64' if args.all_features else 'every 4th'}; "
          f"noise {args.noise_snr_db:g} dB")
    test_x, test_y = splits.test
    own = {name: forward_batched(net, test_x).argmax(axis=1) for name, net in nets.items()}
    whole = LayerSpec(**vibration.LAYERS["transformer"])
    # the transformer into itself: its true 16 selected features, the other 48 filled
    keep = StitchedNetwork(transformer, transformer, whole, whole, SupervisedMap(), to="b")(test_x).argmax(axis=1)
    print(f"own accuracy: lstm {np.mean(own['lstm'] == test_y):.3f}, transformer {np.mean(own['transformer'] == test_y):.3f}; "
          f"transformer with its true 16 features and the fill {np.mean(keep == test_y):.3f}")
    for p in vibration.SLICE_LENGTHS:
        specs = {name: LayerSpec(**layers[name], slice_length=p) for name in nets}
        rows = {name: capture(nets[name], fit_x, specs[name]) for name in nets}
        for label, make in (("ridge", lambda: Ridge(1e-3)),
                            (f"{args.k}-NN", lambda: KNeighborsRegressor(args.k, weights="distance"))):
            line = [f"p={p:2d} {label:6s}"]
            for source, target in (("transformer", "lstm"), ("lstm", "transformer")):
                model = make().fit(rows[source], rows[target])
                stitched = StitchedNetwork(nets[source], nets[target], specs[source], specs[target],
                                           SupervisedMap(model), to="b")(test_x).argmax(axis=1)
                line.append(f"into {target}: accuracy {np.mean(stitched == test_y):.3f} "
                            f"agreement {np.mean(stitched == own[target]):.3f}")
            print(" | ".join(line))


if __name__ == "__main__":
    main()
