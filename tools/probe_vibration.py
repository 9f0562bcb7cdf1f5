"""How far a slice-wise map can carry the vibration suite's networks (a by-hand ceiling).

    python tools/probe_vibration.py [--windows 200] [--k 10]

Not part of the product or the tests: it measures what the README's vibration section
quotes as the ceiling of the suite's stitched networks. On ``--windows`` validation
windows (the suite's samples, every slice of each) it fits supervised maps from one
network's slices to the other's, with no diffusion map: a ridge regression and a
distance-weighted k-nearest-neighbour regression. Each map is applied slice by slice to
every test window and the result scored as the suite scores its stitched networks
(accuracy against the labels, agreement with the target's own prediction; the
transformer's 48 unselected features filled with the per-position mean of the 16
predicted ones). It also scores the transformer with its true 16 selected features and
that fill, the ceiling the neuron selection itself leaves.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from sklearn.linear_model import Ridge
from sklearn.neighbors import KNeighborsRegressor

from equivtest.experiments import vibration


def sequences(lstm, transformer, x):
    with torch.no_grad():
        x = torch.as_tensor(x)
        return lstm.lstm(x)[0].numpy(), transformer.encoder(transformer.conv(x.transpose(1, 2)).transpose(1, 2)).numpy()


def heads(lstm, transformer):
    def lstm_head(h):
        with torch.no_grad():
            return lstm.head(torch.as_tensor(h[..., 0], dtype=torch.float32)).argmax(1).numpy()

    def transformer_head(h16):
        full = np.repeat(h16.mean(-1, keepdims=True), 64, -1)  # the suite's fill
        full[..., ::4] = h16
        with torch.no_grad():
            h = torch.as_tensor(full, dtype=torch.float32).mean(dim=1)
            return transformer.fc2(transformer.act(transformer.fc1(h))).argmax(1).numpy()

    return lstm_head, transformer_head


def to_slices(a: np.ndarray, p: int) -> np.ndarray:
    """(B, T, F) -> (B * T/p, p * F); slice k holds positions k, k + T/p, ... (as LayerSpec)."""
    b, t, f = a.shape
    return a.reshape(b, p, t // p, f).transpose(0, 2, 1, 3).reshape(b * (t // p), p * f)


def from_slices(rows: np.ndarray, b: int, p: int, f: int, t: int = vibration.WINDOW) -> np.ndarray:
    return rows.reshape(b, t // p, p, f).transpose(0, 2, 1, 3).reshape(b, t, f)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--windows", type=int, default=200)
    parser.add_argument("--k", type=int, default=10)
    args = parser.parse_args()
    lstm, transformer, info = vibration.networks()
    splits = info["splits"]
    test_x, test_y = splits.test
    lstm_head, transformer_head = heads(lstm, transformer)
    fit_l, fit_t = sequences(lstm, transformer, splits.val.x[: args.windows])
    test_l, test_t = sequences(lstm, transformer, test_x)
    fit_t, own_t_full = fit_t[..., ::4], test_t
    test_t = test_t[..., ::4]
    own_l = lstm_head(test_l)
    with torch.no_grad():
        own_t = transformer.fc2(transformer.act(transformer.fc1(torch.as_tensor(own_t_full).mean(dim=1)))).argmax(1).numpy()
    filled = transformer_head(test_t)
    print(f"own accuracy: lstm {np.mean(own_l == test_y):.3f}, transformer {np.mean(own_t == test_y):.3f}; "
          f"transformer with its true 16 features and the fill {np.mean(filled == test_y):.3f}")
    b = len(test_x)
    for p in vibration.SLICE_LENGTHS:
        for name, make in (("ridge", lambda: Ridge(1e-3)), (f"{args.k}-NN", lambda: KNeighborsRegressor(args.k, weights="distance"))):
            into_l = lstm_head(from_slices(make().fit(to_slices(fit_t, p), to_slices(fit_l, p)).predict(to_slices(test_t, p)), b, p, 1))
            into_t = transformer_head(from_slices(make().fit(to_slices(fit_l, p), to_slices(fit_t, p)).predict(to_slices(test_l, p)), b, p, 16))
            print(f"p={p:2d} {name:6s} into lstm: accuracy {np.mean(into_l == test_y):.3f} agreement {np.mean(into_l == own_l):.3f}"
                  f" | into transformer: accuracy {np.mean(into_t == test_y):.3f} agreement {np.mean(into_t == own_t):.3f}")


if __name__ == "__main__":
    main()
